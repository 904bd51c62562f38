"""Gateway and teacher as real OS processes on 127.0.0.1: start, scrape, signal, count rows."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import psutil
import yaml
from prometheus_client.parser import text_string_to_metric_families

from gateway.store.db import connect
from tests.fixtures.servers import free_port, gateway_config_dict

BODY = {"model": "gpt-4o", "messages": [{"role": "user", "content": "my invoice is wrong"}]}


def wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"exited with {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"{url} not ready in {timeout_s}s: {log.read_text()[-2000:]}")


class TeacherProcess:
    """`distill teacher` in its own process, so a test can kill it mid-request."""

    def __init__(self, tmp_path: Path, port: int | None = None) -> None:
        self.port = port or free_port()
        self.log = tmp_path / f"teacher-{self.port}.log"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gateway", "teacher", "--port", str(self.port)],
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
        )
        wait_ready(f"http://127.0.0.1:{self.port}/health", self.proc, self.log)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)


class GatewayProcess:
    """`distill serve` on a free port with a config written to tmp_path."""

    def __init__(
        self,
        tmp_path: Path,
        teacher_base_url: str,
        edit: Callable[[dict[str, Any]], None] | None = None,
        *,
        name: str = "gw",
        env: dict[str, str] | None = None,
    ) -> None:
        self.env = {**os.environ, **(env or {})}
        self.config = gateway_config_dict(teacher_base_url, tmp_path / f"{name}.duckdb")
        if edit:
            edit(self.config)
        self.store = Path(self.config["store"]["path"])
        self.config_path = tmp_path / f"{name}.yaml"
        self.config_path.write_text(yaml.safe_dump(self.config))
        self.log = tmp_path / f"{name}.log"
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start_args(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "gateway",
            "serve",
            "--config",
            str(self.config_path),
            "--port",
            str(self.port),
        ]

    def start(self) -> None:
        self.proc = subprocess.Popen(
            self.start_args(),
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
            env=self.env,
        )
        wait_ready(f"{self.url}/readyz", self.proc, self.log)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def rss(self) -> int:
        return int(psutil.Process(self.pid).memory_info().rss)

    def metrics(self) -> dict[str, float]:
        """Every sample on /metrics, keyed `name{label="v",...}` (labels sorted) or `name`."""
        text = httpx.get(f"{self.url}/metrics", timeout=5).text
        samples: dict[str, float] = {}
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
                samples[f"{s.name}{{{labels}}}" if labels else s.name] = s.value
        return samples

    def wait_drained(self, timeout_s: float = 30) -> None:
        """Until every spooled record is in the store (queue depth 0)."""
        deadline = time.monotonic() + timeout_s
        while self.metrics()["distill_log_queue_depth"] > 0:
            if time.monotonic() > deadline:
                raise AssertionError(f"log queue not drained: {self.log.read_text()[-2000:]}")
            time.sleep(0.1)

    def terminate(self, timeout_s: float = 30) -> bool:
        """SIGTERM (graceful: in-flight requests finish, the spool is flushed); True if clean.

        uvicorn re-raises the signal once its shutdown is done, so a clean exit reads -15.
        """
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout_s) in (0, -signal.SIGTERM)

    def kill9(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def close(self) -> None:
        if self.alive():
            try:
                self.terminate(15)
            except subprocess.TimeoutExpired:
                self.kill9()

    def spooled_segments(self) -> list[Path]:
        spool = Path(self.config["store"].get("spool_dir") or f"{self.store}.spool")
        return sorted(spool.glob("*.jsonl"))


def stored(path: Path, columns: str = "id, status") -> list[tuple[Any, ...]]:
    with connect(path, read_only=True) as conn:
        return conn.execute(f"SELECT {columns} FROM requests").fetchall()


def stored_ids(path: Path) -> list[str]:
    return [row[0] for row in stored(path, "id")]
