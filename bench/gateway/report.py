"""The benchmark's results and their Markdown tables (pure: numbers in, text out)."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

from bench.gateway.load import WrkResult
from bench.gateway.ttft import TTFTResult

DIRECT, GATEWAY, FASTAPI, STARLETTE = "direct", "gateway", "fastapi", "starlette"
BEFORE = "before"  # --compare: another checkout's gateway, for before/after figures
LABELS = {
    DIRECT: "direct (nginx)",
    GATEWAY: "Distill gateway, logging on",
    FASTAPI: "bare FastAPI + aiohttp",
    STARLETTE: "bare Starlette + aiohttp",
}
TARGET_RPS = 3000.0
TARGET_ADDED_P50_MS = 0.3
TARGET_ADDED_P99_MS = 3.0
TARGET_TTFT_ADDED_MS = 0.5


@dataclass(frozen=True)
class LogCheck:
    """Did every exchange the gateway served land in the store?"""

    sent: int  # requests written to the gateway by wrk and the TTFT client
    completed: int  # responses received back
    answered: int  # the gateway's own count (distill_requests_total)
    rows: int  # rows in the DuckDB `requests` table after a graceful stop
    spool_left: int  # records still in the spool after the stop (not yet ingested)

    @property
    def dropped(self) -> int:
        """Exchanges the gateway answered but did not log."""
        return max(0, self.answered - self.rows)


@dataclass
class BenchResult:
    mode: str
    duration_s: float
    connections: int
    pinning: str
    versions: dict[str, str]
    throughput: dict[str, list[WrkResult]] = field(default_factory=dict)  # one per round
    latency: dict[str, WrkResult] = field(default_factory=dict)  # concurrency 1
    ttft: dict[str, TTFTResult] = field(default_factory=dict)  # direct, gateway
    log: LogCheck | None = None
    labels: dict[str, str] = field(default_factory=lambda: dict(LABELS))

    def rps(self, target: str) -> float:
        runs = self.throughput.get(target) or []
        return statistics.median(r.rps for r in runs) if runs else float("nan")

    def cpu_us(self, target: str) -> float:
        """Median server CPU per request over the throughput rounds (µs)."""
        runs = self.throughput.get(target) or []
        return statistics.median(r.cpu_us_per_request for r in runs) if runs else float("nan")

    def added(self, attr: str) -> float:
        """Gateway minus direct for a latency attribute of the c=1 runs (ms)."""
        gateway, direct = self.latency.get(GATEWAY), self.latency.get(DIRECT)
        if gateway is None or direct is None:
            return float("nan")
        value: float = getattr(gateway, attr) - getattr(direct, attr)
        return value

    def ttft_added(self, q: float) -> float:
        gateway, direct = self.ttft.get(GATEWAY), self.ttft.get(DIRECT)
        if gateway is None or direct is None:
            return float("nan")
        return gateway.percentile(q) - direct.percentile(q)


def _fmt(value: float, digits: int = 3) -> str:
    return "n/a" if value != value else f"{value:.{digits}f}"  # NaN != NaN


def _met(ok: bool | None) -> str:
    return "" if ok is None else ("yes" if ok else "**no**")


def markdown_table(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def targets_table(result: BenchResult) -> str:
    rows = []
    for target, label in result.labels.items():
        runs = result.throughput.get(target) or []
        lat = result.latency.get(target)
        errors = sum(r.error_count for r in runs) + (lat.error_count if lat else 0)
        rows.append(
            [
                label,
                _fmt(result.rps(target), 0),
                " / ".join(_fmt(r.rps, 0) for r in runs) or "n/a",
                _fmt(result.cpu_us(target), 0),
                _fmt(1e6 / result.cpu_us(target), 0),
                _fmt(lat.p50_ms) if lat else "n/a",
                _fmt(lat.p99_ms) if lat else "n/a",
                str(errors),
            ]
        )
    headers = [
        "target",
        f"req/s (c={result.connections}, median)",
        "req/s per round",
        "server CPU µs/req",
        "req/s per CPU-second",
        "p50 ms (c=1)",
        "p99 ms (c=1)",
        "errors",
    ]
    return markdown_table(headers, rows)


def summary_table(result: BenchResult) -> str:
    """The figures issue 2 asks for, with their targets."""
    gw = result.rps(GATEWAY)
    p50, p99 = result.added("p50_ms"), result.added("p99_ms")
    t50, t99 = result.ttft_added(50), result.ttft_added(99)
    rows: list[list[str]] = [
        ["gateway req/s", _fmt(gw, 0), f"≥ {TARGET_RPS:.0f}", _met(gw >= TARGET_RPS)],
        [
            "gateway req/s per CPU-second (capacity of one core)",
            _fmt(1e6 / result.cpu_us(GATEWAY), 0),
            f"≥ {TARGET_RPS:.0f}",
            _met(1e6 / result.cpu_us(GATEWAY) >= TARGET_RPS),
        ],
        ["gateway CPU µs per request", _fmt(result.cpu_us(GATEWAY), 0), "", ""],
        ["gateway / bare FastAPI+aiohttp", _fmt(gw / result.rps(FASTAPI), 2), "", ""],
        ["gateway / bare Starlette+aiohttp", _fmt(gw / result.rps(STARLETTE), 2), "", ""],
        ["gateway / direct", _fmt(gw / result.rps(DIRECT), 2), "", ""],
        [
            "added latency p50 ms (c=1)",
            _fmt(p50),
            f"≤ {TARGET_ADDED_P50_MS}",
            _met(p50 <= TARGET_ADDED_P50_MS),
        ],
        [
            "added latency p99 ms (c=1)",
            _fmt(p99),
            f"≤ {TARGET_ADDED_P99_MS}",
            _met(p99 <= TARGET_ADDED_P99_MS),
        ],
    ]
    if BEFORE in result.throughput:
        rows.append(["gateway / gateway before", _fmt(gw / result.rps(BEFORE), 2), "", ""])
        cpu_ratio = result.cpu_us(GATEWAY) / result.cpu_us(BEFORE)
        rows.append(["gateway CPU/req / gateway before", _fmt(cpu_ratio, 2), "", ""])
    for target in (DIRECT, GATEWAY, BEFORE):
        ttft = result.ttft.get(target)
        if ttft is not None:
            value = f"{_fmt(ttft.percentile(50))} / {_fmt(ttft.percentile(99))}"
            rows.append([f"streaming TTFT {target} p50 / p99 ms", value, "", ""])
    rows += [
        [
            "streaming TTFT added p50 ms",
            _fmt(t50),
            f"≤ {TARGET_TTFT_ADDED_MS}",
            _met(t50 <= TARGET_TTFT_ADDED_MS),
        ],
        ["streaming TTFT added p99 ms", _fmt(t99), "", ""],
    ]
    log = result.log
    if log is not None:
        rows += [
            ["requests sent to the gateway", str(log.sent), "", ""],
            ["responses received from the gateway", str(log.completed), "", ""],
            ["requests answered (distill_requests_total)", str(log.answered), "", ""],
            ["rows logged", str(log.rows), "= answered", _met(log.rows == log.answered)],
            ["rows dropped", str(log.dropped), "0", _met(log.dropped == 0)],
            ["records left in the spool", str(log.spool_left), "0", _met(log.spool_left == 0)],
        ]
    return markdown_table(["figure", "value", "target", "met"], rows)


def render(result: BenchResult) -> str:
    head = (
        f"Gateway benchmark ({result.mode}: {result.duration_s:.0f} s per run, "
        f"wrk -t1 -c{result.connections}; latency at c=1; {result.pinning})\n"
        + ", ".join(f"{k} {v}" for k, v in result.versions.items())
    )
    return f"{head}\n\n{targets_table(result)}\n\n{summary_table(result)}\n"
