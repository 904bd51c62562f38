"""Fixtures for the deployment tests: a real Prometheus server against chosen targets."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.deploy.prometheus import PrometheusServer, start_prometheus

PrometheusFactory = Callable[..., PrometheusServer]


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[PrometheusFactory]:
    """`prometheus({"distill-gateway": ["127.0.0.1:PORT"]}, rule_files=[...])` starts one;
    every server started is stopped after the test."""
    started: list[PrometheusServer] = []

    def factory(
        targets: dict[str, list[str]], *, rule_files: list[Path] | None = None
    ) -> PrometheusServer:
        server = start_prometheus(
            tmp_path / f"prometheus-{len(started)}", targets, rule_files=rule_files
        )
        started.append(server)
        return server

    yield factory
    for server in started:
        server.stop()
