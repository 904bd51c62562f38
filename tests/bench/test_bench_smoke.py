"""`bench/gateway/run.py --quick` end to end: the table parses and every request was logged."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def table_rows(text: str) -> dict[str, list[str]]:
    """First cell -> the other cells, for every Markdown table row in text."""
    rows = {}
    for line in text.splitlines():
        if line.startswith("| ") and not re.match(r"^\|-", line):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            rows[cells[0]] = cells[1:]
    return rows


@pytest.mark.slow
@pytest.mark.skipif(
    shutil.which("nginx") is None or shutil.which("wrk") is None,
    reason="needs nginx and wrk (scripts/setup.sh installs them)",
)
def test_quick_benchmark_prints_a_table_and_logs_every_request() -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "bench/gateway/run.py",
            "--quick",
            "--duration",
            "1",
            "--warmup",
            "1",
            "--ttft-n",
            "20",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = table_rows(proc.stdout)
    for target in ("direct (nginx)", "Distill gateway, logging on", "bare FastAPI + aiohttp"):
        req_s, _, cpu_us, per_cpu_s, p50, p99, errors = rows[target]
        assert float(req_s) > 0 and float(p50) > 0 and float(p99) >= float(p50)
        assert float(cpu_us) > 0 and float(per_cpu_s) > 0
        assert errors == "0", proc.stdout
    assert float(rows["gateway / bare Starlette+aiohttp"][0]) > 0
    for figure in ("added latency p50 ms (c=1)", "streaming TTFT added p50 ms"):
        assert re.fullmatch(r"-?\d+\.\d{3}", rows[figure][0]), rows[figure]
    ttft_p50, ttft_p99 = rows["streaming TTFT gateway p50 / p99 ms"][0].split(" / ")
    assert 0 < float(ttft_p50) <= float(ttft_p99)
    sent = int(rows["requests sent to the gateway"][0])
    answered = int(rows["requests answered (distill_requests_total)"][0])
    logged = int(rows["rows logged"][0])
    assert sent > 20  # wrk runs plus the streamed requests
    assert logged == sent == answered, proc.stdout
    assert rows["rows dropped"][0] == "0"
    assert rows["records left in the spool"][0] == "0"
