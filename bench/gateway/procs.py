"""Server processes for the benchmark: free ports, CPU pinning, readiness, graceful stop."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process (all its threads) has used so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of proc(5)
    return (utime + stime) / os.sysconf("SC_CLK_TCK")


def pinned(cmd: Sequence[str], cpus: str | None) -> list[str]:
    """The command under `taskset -c cpus` (unchanged when cpus is None)."""
    return ["taskset", "-c", cpus, *cmd] if cpus else list(cmd)


def read_log(log: IO[bytes]) -> str:
    log.seek(0)
    return log.read().decode(errors="replace").strip()


def wait_http(
    url: str,
    proc: subprocess.Popen[bytes],
    log: IO[bytes],
    *,
    method: str = "GET",
    timeout_s: float = 60.0,
) -> None:
    """Poll url until it answers (any HTTP status); fail early if the process died."""
    deadline = time.monotonic() + timeout_s
    data = b"{}" if method == "POST" else None
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}: {read_log(log)}")
        try:
            req = urllib.request.Request(url, data=data, method=method)
            with urllib.request.urlopen(req, timeout=2):
                return
        except urllib.error.HTTPError:
            return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} did not answer within {timeout_s:.0f}s") from None
            time.sleep(0.1)


class Server:
    """A server process pinned to cpus: `with Server(...)` starts it and waits until it answers."""

    def __init__(
        self,
        cmd: Sequence[str],
        *,
        port: int,
        ready_path: str,
        cpus: str | None,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        ready_method: str = "GET",
    ) -> None:
        self.cmd = pinned(cmd, cpus)
        self.port = port
        self.ready_url = f"{self.url}{ready_path}"
        self.ready_method = ready_method
        self.env = {**os.environ, **(env or {})}
        self.cwd = cwd
        self.proc: subprocess.Popen[bytes] | None = None
        # A file, not a pipe: a chatty server must never block on a full pipe mid-benchmark.
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 (outlives this method; closed in stop)
        self.stderr_text = ""
        self.exited_early = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None, "server not started"
        return self.proc.pid

    @property
    def returncode(self) -> int | None:
        return self.proc.returncode if self.proc else None

    def __enter__(self) -> Server:
        self.proc = subprocess.Popen(
            self.cmd, env=self.env, cwd=self.cwd, stdout=self.log, stderr=subprocess.STDOUT
        )
        try:
            wait_http(self.ready_url, self.proc, self.log, method=self.ready_method)
        except Exception:
            self.stop()
            raise
        return self

    def stop(self, timeout_s: float = 60.0) -> int:
        """SIGTERM, as an orchestrator stops it (uvicorn shuts down gracefully and the gateway
        flushes its log), then wait. `exited_early` tells whether it had died before that."""
        proc = self.proc
        if proc is None:
            return 0
        if self.log.closed:  # stopped already
            return proc.returncode
        self.exited_early = proc.poll() is not None
        if not self.exited_early:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        self.stderr_text = read_log(self.log)
        self.log.close()
        return proc.returncode

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
