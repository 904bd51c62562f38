"""A real Prometheus server for tests: scrapes given targets every second, answers PromQL."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

SCRAPE_INTERVAL_S = 1


def require_binary(name: str) -> str:
    """The binary's path; skip without it locally, fail in CI (where setup.sh installs it)."""
    path = shutil.which(name)
    if path is None:
        message = (
            f"`{name}` is not installed (Debian package `prometheus`; scripts/setup.sh installs it)"
        )
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class QueryError(AssertionError):
    """Prometheus refused a query (bad PromQL, unknown function...): the message is its own."""


@dataclass
class PrometheusServer:
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path
    client: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=10))

    def query(self, expr: str) -> list[dict[str, Any]]:
        """Instant query through the HTTP API; the result vector (or scalar as one item)."""
        reply = self.client.get(f"{self.url}/api/v1/query", params={"query": expr})
        body = reply.json()
        if body.get("status") != "success":
            raise QueryError(f"{body.get('errorType')}: {body.get('error')}\n  query: {expr}")
        data = body["data"]
        if data["resultType"] in ("scalar", "string"):
            return [{"metric": {}, "value": data["result"]}]
        result: list[dict[str, Any]] = data["result"]
        return result

    def rules(self) -> list[dict[str, Any]]:
        body = self.client.get(f"{self.url}/api/v1/rules").json()
        return [rule for group in body["data"]["groups"] for rule in group["rules"]]

    def targets(self) -> list[dict[str, Any]]:
        body = self.client.get(f"{self.url}/api/v1/targets").json()
        active: list[dict[str, Any]] = body["data"]["activeTargets"]
        return active

    def wait_for(self, expr: str, timeout: float = 30) -> list[dict[str, Any]]:
        """Poll until `expr` returns data (e.g. enough scrapes have happened)."""
        deadline = time.monotonic() + timeout
        while True:
            result = self.query(expr)
            if result:
                return result
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"no data for {expr} after {timeout} s; targets: {self.targets()}"
                )
            time.sleep(0.25)

    def stop(self) -> None:
        self.client.close()
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)


def write_config(directory: Path, targets: dict[str, list[str]], rule_files: list[Path]) -> Path:
    config = {
        "global": {
            "scrape_interval": f"{SCRAPE_INTERVAL_S}s",
            "scrape_timeout": f"{SCRAPE_INTERVAL_S}s",
            "evaluation_interval": f"{SCRAPE_INTERVAL_S}s",
        },
        "rule_files": [str(p) for p in rule_files],
        "scrape_configs": [
            {"job_name": job, "static_configs": [{"targets": addresses}]}
            for job, addresses in targets.items()
        ],
    }
    path = directory / "prometheus.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def start_prometheus(
    directory: Path,
    targets: dict[str, list[str]],
    *,
    rule_files: list[Path] | None = None,
    timeout: float = 30,
) -> PrometheusServer:
    """Start Prometheus on a free 127.0.0.1 port scraping `targets` ({job: ["host:port"]})."""
    binary = require_binary("prometheus")
    directory.mkdir(parents=True, exist_ok=True)
    config = write_config(directory, targets, rule_files or [])
    port = free_port()
    log_path = directory / "prometheus.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={directory / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--storage.tsdb.retention.time=1h",
                "--log.level=warn",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = PrometheusServer(f"http://127.0.0.1:{port}", process, log_path)
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(
                f"prometheus exited with {process.returncode}:\n" + log_path.read_text()[-3000:]
            )
        try:
            if server.client.get(f"{server.url}/-/ready").status_code == 200:
                return server
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            server.stop()
            raise RuntimeError(
                f"prometheus not ready after {timeout} s:\n" + log_path.read_text()[-3000:]
            )
        time.sleep(0.1)
