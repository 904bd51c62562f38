"""bench/heldout.py's pure parts: its gateway config is valid and routes each held-out task."""

from __future__ import annotations

from pathlib import Path

from bench.heldout import gateway_config
from distill_demo.heldout import tasks
from gateway.config import parse_config


def test_gateway_config_routes_every_task_to_the_teacher(tmp_path: Path) -> None:
    config = parse_config(gateway_config(tmp_path / "s.duckdb", "http://127.0.0.1:1/v1"))
    routes = {route.name: route for route in config.routes}
    assert set(routes) == set(tasks.TASKS)
    for name, route in routes.items():
        assert route.match == [name] and route.teacher.model == name
