"""Soak: a bounded open-loop load on a gateway process, sampled every second, then a verdict.

    python bench/soak.py --duration 600 --rate 100    # the long form (10 minutes)
    python bench/soak.py --duration 20                # about what CI runs

The demo teacher and the gateway run as their own processes on 127.0.0.1; an aiohttp client
sends `rate` requests a second (at most `concurrency` at once) for `duration` seconds and
stops by itself. Every second it samples the gateway's RSS (psutil), the log queue depth
(`distill_log_queue_depth` on /metrics) and the errors so far. At the end: memory slope
(MB/min, least squares), queue drained, error rate, and rows logged == requests acknowledged.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import duckdb
import orjson
import psutil
import yaml
from prometheus_client.parser import text_string_to_metric_families

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import contextlib

from bench.gateway.procs import Server, free_port

TICKETS = [
    "I was charged twice for my invoice this month.",
    "The API returns a timeout when I upload files.",
    "I cannot reset my password, the link expired.",
]


@dataclass
class Sample:
    t_s: float
    rss_mb: float
    queue_depth: float
    acknowledged: int
    errors: int


@dataclass
class SoakReport:
    duration_s: float
    rate: float
    sent: int
    acknowledged: int
    errors: int
    error_kinds: dict[str, int]
    rows_logged: int
    rows_missing: int
    rows_duplicated: int
    queue_drained: bool
    rss_start_mb: float
    rss_end_mb: float
    rss_slope_mb_per_min: float
    p50_ms: float
    p99_ms: float
    samples: list[Sample] = field(default_factory=list)

    @property
    def error_rate(self) -> float:
        return self.errors / self.sent if self.sent else 0.0

    def verdict(self, max_slope_mb_per_min: float) -> list[str]:
        """What failed; empty when the soak held."""
        problems = []
        if self.errors:
            problems.append(f"{self.errors} errors {self.error_kinds}")
        if not self.queue_drained:
            problems.append("the log queue did not drain")
        if self.rows_missing or self.rows_duplicated:
            problems.append(f"rows missing {self.rows_missing}, duplicated {self.rows_duplicated}")
        if self.rss_slope_mb_per_min > max_slope_mb_per_min:
            problems.append(
                f"RSS grows {self.rss_slope_mb_per_min:.2f} MB/min (limit {max_slope_mb_per_min})"
            )
        return problems


def slope_per_min(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, value) points, per minute; 0 for fewer than 2."""
    if len(points) < 2:
        return 0.0
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_v = sum(v for _, v in points) / n
    var = sum((t - mean_t) ** 2 for t, _ in points)
    if var == 0:
        return 0.0
    cov = sum((t - mean_t) * (v - mean_v) for t, v in points)
    return cov / var * 60


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def metric(text: str, name: str) -> float:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and not sample.labels:
                return float(sample.value)
    raise KeyError(name)


class Load:
    """Open-loop requests at a fixed rate; bounded in count, concurrency and time."""

    def __init__(self, url: str, rate: float, duration_s: float, concurrency: int) -> None:
        self.url = url
        self.rate = rate
        self.duration_s = duration_s
        self.slots = asyncio.Semaphore(concurrency)
        self.sent = 0
        self.acknowledged: list[str] = []
        self.errors: dict[str, int] = {}
        self.latencies_ms: list[float] = []

    def error(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1

    async def one(self, http: aiohttp.ClientSession, i: int) -> None:
        stream = i % 4 == 3  # a quarter streamed
        body = {
            "model": "gpt-4o",
            "messages": [{"role": "user", "content": TICKETS[i % len(TICKETS)]}],
            "stream": stream,
        }
        started = time.perf_counter()
        try:
            async with (
                self.slots,
                http.post(f"{self.url}/v1/chat/completions", data=orjson.dumps(body)) as response,
            ):
                data = await response.read()
                complete = not stream or data.rstrip().endswith(b"data: [DONE]")
                if response.status == 200 and complete:
                    self.acknowledged.append(response.headers["x-distill-request-id"])
                    self.latencies_ms.append((time.perf_counter() - started) * 1000)
                else:
                    self.error(f"http_{response.status}" if response.status != 200 else "stream")
        except (TimeoutError, aiohttp.ClientError) as exc:
            self.error(type(exc).__name__)

    async def run(self) -> None:
        timeout = aiohttp.ClientTimeout(total=30)
        headers = {"Content-Type": "application/json"}
        async with aiohttp.ClientSession(timeout=timeout, headers=headers) as http:
            tasks: set[asyncio.Task[None]] = set()
            start = time.perf_counter()
            total = int(self.rate * self.duration_s)
            for i in itertools.count():
                if i >= total:
                    break
                delay = start + i / self.rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                self.sent += 1
                task = asyncio.create_task(self.one(http, i))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            if tasks:
                await asyncio.wait(tasks, timeout=60)


async def sample_every_second(
    gateway_url: str, pid: int, load: Load, started: float, stop: asyncio.Event
) -> list[Sample]:
    process = psutil.Process(pid)
    samples = []
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http:
        while not stop.is_set():
            async with http.get(f"{gateway_url}/metrics") as response:
                depth = metric(await response.text(), "distill_log_queue_depth")
            samples.append(
                Sample(
                    t_s=round(time.perf_counter() - started, 3),
                    rss_mb=process.memory_info().rss / 2**20,
                    queue_depth=depth,
                    acknowledged=len(load.acknowledged),
                    errors=sum(load.errors.values()),
                )
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=1.0)
    return samples


async def wait_drained(gateway_url: str, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            async with http.get(f"{gateway_url}/metrics") as response:
                if metric(await response.text(), "distill_log_queue_depth") == 0:
                    return True
            await asyncio.sleep(0.2)
    return False


def stored_ids(store: Path) -> list[str]:
    conn = duckdb.connect(str(store), read_only=True)
    try:
        return [row[0] for row in conn.execute("SELECT id FROM requests").fetchall()]
    finally:
        conn.close()


def soak(
    workdir: Path,
    *,
    duration_s: float = 600,
    rate: float = 100,
    concurrency: int = 64,
    warmup_s: float = 5,
) -> SoakReport:
    """Run the whole soak in workdir (store, config, logs) and return its figures."""
    teacher_port, gateway_port = free_port(), free_port()
    store = workdir / "soak.duckdb"
    config = {
        "store": {"path": str(store)},
        "upstreams": {"teacher": {"base_url": f"http://127.0.0.1:{teacher_port}/v1"}},
        "routes": [
            {
                "name": "support-triage",
                "match": ["gpt-4o"],
                "teacher": {"upstream": "teacher", "model": "gpt-4o"},
            }
        ],
    }
    config_path = workdir / "distill.yaml"
    config_path.write_text(yaml.safe_dump(config))
    python = sys.executable
    teacher_cmd = [python, "-m", "gateway", "teacher", "--port", str(teacher_port)]
    gateway_cmd = [python, "-m", "gateway", "serve", "--config", str(config_path)]
    gateway_cmd += ["--port", str(gateway_port)]
    with (
        Server(teacher_cmd, port=teacher_port, ready_path="/health", cpus=None),
        Server(gateway_cmd, port=gateway_port, ready_path="/readyz", cpus=None) as gateway,
    ):
        assert gateway.proc is not None
        load = Load(gateway.url, rate, duration_s, concurrency)

        async def main() -> tuple[list[Sample], bool]:
            started = time.perf_counter()
            stop = asyncio.Event()
            sampler = asyncio.create_task(
                sample_every_second(gateway.url, gateway.proc.pid, load, started, stop)  # type: ignore[union-attr]
            )
            await load.run()
            drained = await wait_drained(gateway.url, 60)
            stop.set()
            return await sampler, drained

        samples, drained = asyncio.run(main())
        gateway.stop()  # graceful: the writer flushes what is left
    ids = stored_ids(store)
    acknowledged = set(load.acknowledged)
    steady = [(s.t_s, s.rss_mb) for s in samples if s.t_s >= warmup_s] or [
        (s.t_s, s.rss_mb) for s in samples
    ]
    return SoakReport(
        duration_s=duration_s,
        rate=rate,
        sent=load.sent,
        acknowledged=len(load.acknowledged),
        errors=sum(load.errors.values()),
        error_kinds=dict(load.errors),
        rows_logged=len(ids),
        rows_missing=len(acknowledged - set(ids)),
        rows_duplicated=len(ids) - len(set(ids)),
        queue_drained=drained,
        rss_start_mb=steady[0][1] if steady else 0.0,
        rss_end_mb=steady[-1][1] if steady else 0.0,
        rss_slope_mb_per_min=slope_per_min(steady),
        p50_ms=percentile(load.latencies_ms, 0.5),
        p99_ms=percentile(load.latencies_ms, 0.99),
        samples=samples,
    )


def summary(report: SoakReport) -> str:
    return "\n".join(
        [
            f"soak {report.duration_s:.0f} s at {report.rate:.0f} req/s",
            f"sent {report.sent}, acknowledged {report.acknowledged}, "
            f"errors {report.errors} (rate {report.error_rate:.4%}) {report.error_kinds}",
            f"rows logged {report.rows_logged}, missing {report.rows_missing}, "
            f"duplicated {report.rows_duplicated}, queue drained {report.queue_drained}",
            f"RSS {report.rss_start_mb:.1f} -> {report.rss_end_mb:.1f} MB, "
            f"slope {report.rss_slope_mb_per_min:+.2f} MB/min",
            f"latency p50 {report.p50_ms:.1f} ms, p99 {report.p99_ms:.1f} ms",
            f"max queue depth {max((s.queue_depth for s in report.samples), default=0):.0f}",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=600, help="seconds of load")
    parser.add_argument("--rate", type=float, default=100, help="requests per second")
    parser.add_argument("--concurrency", type=int, default=64, help="most requests at once")
    parser.add_argument("--max-slope", type=float, default=5.0, help="RSS MB/min allowed")
    parser.add_argument("--out", type=Path, help="write the report (with samples) as JSON")
    args = parser.parse_args(argv)
    if args.duration <= 0 or args.rate <= 0 or args.concurrency <= 0:
        parser.error("--duration, --rate and --concurrency must be positive")
    with tempfile.TemporaryDirectory(prefix="distill-soak-") as tmp:
        report = soak(
            Path(tmp), duration_s=args.duration, rate=args.rate, concurrency=args.concurrency
        )
    print(summary(report))
    if args.out:
        data: dict[str, Any] = asdict(report)
        data["error_rate"] = report.error_rate
        args.out.write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2))
    problems = report.verdict(args.max_slope)
    for problem in problems:
        print(f"FAIL: {problem}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
