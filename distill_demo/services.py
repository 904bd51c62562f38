"""The demo's child processes (teacher, gateway, vLLM): start, wait for health, stop, measure."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import httpx

from trainer.serving.vllm_process import log_tail

SERVICES_FILE = "services.json"  # what a --keep-running demo left running, for --stop


class ServiceError(RuntimeError):
    """A service exited or did not become healthy; the message names its log."""


@dataclass
class Service:
    """One child process in its own process group, logging to a file."""

    name: str
    process: subprocess.Popen[bytes]
    url: str  # its root URL
    health_path: str
    log_path: Path
    log_file: IO[bytes] | None = None

    def wait_healthy(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServiceError(
                    f"{self.name} exited with code {self.process.returncode}; "
                    f"log {self.log_path}:\n{log_tail(self.log_path)}"
                )
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + self.health_path, timeout=2.0).status_code == 200:
                    return
            time.sleep(0.2)
        raise ServiceError(
            f"{self.name} was not healthy after {timeout:.0f} s; log {self.log_path}"
        )

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM the whole group (vLLM forks an engine), SIGKILL what is left after timeout."""
        stop_group(self.process.pid, timeout, self.process)
        if self.log_file is not None:
            self.log_file.close()
            self.log_file = None


def _group_alive(pgid: int) -> bool:
    """Whether any process of the group still runs (zombies, awaiting their parent, do not)."""
    import psutil

    for proc in psutil.process_iter(["status"]):
        with contextlib.suppress(psutil.Error, ProcessLookupError):
            if os.getpgid(proc.pid) == pgid and proc.info["status"] != psutil.STATUS_ZOMBIE:
                return True
    return False


def stop_group(
    pgid: int, timeout: float = 20.0, process: subprocess.Popen[bytes] | None = None
) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=0.1)
        if not _group_alive(pgid):
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)
    if process is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=10)


def start_service(
    name: str,
    argv: Sequence[str],
    *,
    url: str,
    health_path: str,
    log_path: Path,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> Service:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log_file = log_path.open("wb")
    process = subprocess.Popen(
        list(argv),
        stdout=log_file,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=env,
        cwd=cwd,
        start_new_session=True,  # its own group: stopping it reaches its children too
    )
    return Service(name, process, url, health_path, log_path, log_file)


def distill_argv(*args: str) -> list[str]:
    """Run a `distill` subcommand with this interpreter (works without the venv on PATH)."""
    return [sys.executable, "-m", "gateway", *args]


def write_services(workdir: Path, services: dict[str, dict[str, Any]]) -> Path:
    path = workdir / SERVICES_FILE
    path.write_text(json.dumps(services, indent=2))
    return path


def stop_recorded(workdir: Path) -> list[str]:
    """Stop what a --keep-running demo left in `workdir`; returns the names stopped."""
    path = workdir / SERVICES_FILE
    if not path.exists():
        return []
    services: dict[str, dict[str, Any]] = json.loads(path.read_text())
    stopped = []
    for name, info in services.items():
        pgid = int(info["pgid"])
        if _group_alive(pgid):
            stop_group(pgid)
            stopped.append(name)
    path.unlink()
    return stopped


def running_recorded(workdir: Path) -> list[str]:
    """Names of services a previous --keep-running demo in `workdir` still runs."""
    path = workdir / SERVICES_FILE
    if not path.exists():
        return []
    services: dict[str, dict[str, Any]] = json.loads(path.read_text())
    return [name for name, info in services.items() if _group_alive(int(info["pgid"]))]


class PeakMemory:
    """Samples the resident memory of this process and all its descendants; keeps the peak."""

    def __init__(self, interval_s: float = 0.25) -> None:
        self.interval_s = interval_s
        self.peak_bytes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="peak-memory", daemon=True)

    def sample(self) -> int:
        import psutil

        me = psutil.Process()
        total = 0
        for proc in [me, *me.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):
                total += int(proc.memory_info().rss)
        self.peak_bytes = max(self.peak_bytes, total)
        return total

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            with contextlib.suppress(Exception):
                self.sample()

    def __enter__(self) -> PeakMemory:
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
