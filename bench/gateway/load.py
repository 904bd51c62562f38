"""Load with wrk: POST a fixed body for a while, read back its JSON summary."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass, replace
from pathlib import Path

import orjson

from bench.gateway.procs import cpu_seconds

LUA_SCRIPT = Path(__file__).with_name("post.lua")
_SUMMARY = re.compile(rb"^WRK_JSON (\{.*\})$", re.MULTILINE)


@dataclass(frozen=True)
class WrkResult:
    """One wrk run: requests completed and sent, errors, latency percentiles in ms."""

    requests: int  # responses received
    sent: int  # requests written (completed + those in flight when wrk stopped)
    duration_s: float
    errors: dict[str, int]
    p50_ms: float
    p90_ms: float
    p99_ms: float
    p999_ms: float
    mean_ms: float
    max_ms: float
    server_cpu_s: float | None = None  # CPU the server under load used during the run

    @property
    def cpu_us_per_request(self) -> float:
        """Server CPU per request: robust to other load on the machine, unlike req/s."""
        if self.server_cpu_s is None or not self.requests:
            return float("nan")
        return self.server_cpu_s / self.requests * 1e6

    @property
    def rps(self) -> float:
        return self.requests / self.duration_s if self.duration_s else 0.0

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())


def parse_wrk(output: bytes) -> WrkResult:
    """The `WRK_JSON` line post.lua's done() prints; ValueError if it is missing."""
    match = _SUMMARY.search(output)
    if match is None:
        tail = output.decode(errors="replace")[-500:]
        raise ValueError(f"wrk printed no WRK_JSON summary line; its output ended with: {tail}")
    data = orjson.loads(match.group(1))
    lat = {k: v / 1000 for k, v in data["latency_us"].items()}  # us -> ms
    return WrkResult(
        requests=int(data["requests"]),
        sent=int(data["sent"]),
        duration_s=data["duration_us"] / 1e6,
        errors={k: int(v) for k, v in data["errors"].items()},
        p50_ms=lat["p50"],
        p90_ms=lat["p90"],
        p99_ms=lat["p99"],
        p999_ms=lat["p999"],
        mean_ms=lat["mean"],
        max_ms=lat["max"],
    )


def run_wrk(
    url: str,
    body_file: Path,
    *,
    connections: int,
    duration_s: float,
    threads: int = 1,
    latency: bool = False,
    timeout_s: float = 10.0,
    server_pid: int | None = None,
) -> WrkResult:
    """Run wrk (on the CPUs this process is pinned to) and return its summary.

    With server_pid, the server's CPU time over the run is recorded too.
    """
    binary = shutil.which("wrk")
    if binary is None:
        raise RuntimeError("wrk is not installed: `apt-get install -y wrk` (scripts/setup.sh)")
    cmd = [
        binary,
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(duration_s, 1):.0f}s",
        f"--timeout={timeout_s:.0f}s",
        "-s",
        str(LUA_SCRIPT),
    ]
    if latency:
        cmd.append("--latency")
    cmd.append(url)
    env = {**os.environ, "WRK_BODY_FILE": str(body_file)}
    cpu_before = cpu_seconds(server_pid) if server_pid else 0.0
    proc = subprocess.run(cmd, env=env, capture_output=True, timeout=duration_s + 60, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {proc.stderr.decode().strip()}")
    result = parse_wrk(proc.stdout)
    if server_pid:
        result = replace(result, server_cpu_s=cpu_seconds(server_pid) - cpu_before)
    return result
