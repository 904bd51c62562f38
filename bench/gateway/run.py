"""Run the gateway benchmark in one go: nginx upstream, gateway, bare forwarders, wrk, TTFT.

    python bench/gateway/run.py            # full: 10 s runs, 500 TTFT samples (~2 min)
    python bench/gateway/run.py --quick    # smoke: 3 s runs

Servers (gateway, forwarders) are pinned to one core and the load side (wrk, nginx, the TTFT
client, this script) to the other, so that the server under test has a core of its own.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import re
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Iterator
from dataclasses import replace
from importlib import metadata
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `bench` importable from the repo root
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import duckdb
import orjson
import yaml

from bench.gateway.fixed_upstream import FixedUpstream
from bench.gateway.load import WrkResult, run_wrk
from bench.gateway.procs import Server, free_port
from bench.gateway.report import (
    BEFORE,
    DIRECT,
    FASTAPI,
    GATEWAY,
    STARLETTE,
    BenchResult,
    LogCheck,
    render,
)
from bench.gateway.ttft import measure_ttft
from distill_demo.teacher.task import SYSTEM_PROMPT

REPO = Path(__file__).resolve().parents[2]
MODEL, STREAM_MODEL = "gpt-4o", "gpt-4o-stream"
PHASES = ("throughput", "latency", "ttft")
TARGETS = (DIRECT, GATEWAY, FASTAPI, STARLETTE)
TTFT_WARMUP = 20  # streamed requests per target before the samples count
TICKET = "Hi, I was charged twice for my invoice this month. Please refund one. Thanks."
_REQUESTS_TOTAL = re.compile(r"^distill_requests_total\{[^}]*\} ([0-9.e+]+)$", re.MULTILINE)


def request_body(*, stream: bool) -> bytes:
    """A typical triage request (~330 bytes), as the demo app sends it."""
    body: dict[str, object] = {
        "model": STREAM_MODEL if stream else MODEL,
        "messages": [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": TICKET},
        ],
        "max_tokens": 8,
        "temperature": 0,
    }
    if stream:
        body["stream"] = True
    return orjson.dumps(body)


def gateway_config(upstream: FixedUpstream, store: Path) -> dict[str, object]:
    return {
        "server": {"replica": "bench"},
        "store": {"path": str(store)},
        "upstreams": {
            "teacher": {"base_url": upstream.base_url},
            "teacher-stream": {"base_url": upstream.stream_base_url},
        },
        "routes": [
            {"name": "bench", "match": [MODEL], "teacher": {"upstream": "teacher", "model": MODEL}},
            {
                "name": "bench-stream",
                "match": [STREAM_MODEL],
                "teacher": {"upstream": "teacher-stream", "model": MODEL},
            },
        ],
    }


def versions() -> dict[str, str]:
    def tool(cmd: list[str], pattern: str) -> str:
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, check=False)
        except OSError:
            return "missing"
        match = re.search(pattern, out.stdout + out.stderr)
        return match.group(1) if match else "?"

    found = {
        "python": platform.python_version(),
        "wrk": tool(["wrk", "-v"], r"wrk (\S+)"),
        "nginx": tool(["nginx", "-v"], r"nginx/(\S+)"),
    }
    for package in ("uvicorn", "uvloop", "httptools", "fastapi", "starlette", "aiohttp", "duckdb"):
        found[package] = metadata.version(package)
    return found


def scrape_answered(base_url: str) -> int:
    with urllib.request.urlopen(f"{base_url}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    return round(sum(float(v) for v in _REQUESTS_TOTAL.findall(text)))


def count_rows(store: Path) -> int:
    conn = duckdb.connect(str(store), read_only=True)
    try:
        row = conn.execute("SELECT count(*) FROM requests").fetchone()
    finally:
        conn.close()
    return int(row[0]) if row else 0


def count_spooled(spool: Path) -> int:
    if not spool.is_dir():
        return 0
    return sum(p.read_bytes().count(b"\n") for p in spool.glob("*.jsonl"))


def uvicorn_cmd(app: str, port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "uvicorn",
        app,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--loop",
        "uvloop",
        "--http",
        "httptools",
        "--no-access-log",
        "--log-level",
        "warning",
    ]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="3 s runs, 100 TTFT samples (smoke test)")
    p.add_argument("--duration", type=float, help="seconds per wrk run (default 10, quick 3)")
    p.add_argument("--connections", type=int, default=32, help="wrk connections for req/s")
    p.add_argument("--rounds", type=int, default=1, help="throughput rounds, median reported")
    p.add_argument("--ttft-n", type=int, help="streamed requests per target (default 500)")
    p.add_argument("--warmup", type=float, default=1.0, help="seconds of wrk warm-up per target")
    p.add_argument("--server-cpus", default="1", help="taskset CPU list for the servers")
    p.add_argument("--load-cpus", default="0", help="CPU list for wrk, nginx and the client")
    p.add_argument("--no-pin", action="store_true", help="let the scheduler place everything")
    p.add_argument(
        "--nice",
        type=int,
        default=0,
        help="niceness for everything the benchmark runs (negative needs root): on a machine\n"
        "shared with other work, -10 keeps their load from dominating the figures",
    )
    p.add_argument("--json", type=Path, help="also write the results as JSON here")
    p.add_argument(
        "--phases",
        default=",".join(PHASES),
        help=f"which measurements, comma-separated (default: {','.join(PHASES)})",
    )
    p.add_argument(
        "--targets",
        default=",".join(TARGETS),
        help=f"which servers to load, comma-separated (default: {','.join(TARGETS)})",
    )
    p.add_argument(
        "--compare",
        type=Path,
        metavar="DIR",
        help="also run the gateway package found in DIR (e.g. `git archive HEAD gateway | tar "
        "-x -C DIR`), interleaved with the working tree's: before/after in one go",
    )
    args = p.parse_args(argv)
    args.phases = [x for x in args.phases.split(",") if x]
    args.targets = [x for x in args.targets.split(",") if x]
    for name, chosen, allowed in (
        ("phases", args.phases, PHASES),
        ("targets", args.targets, TARGETS),
    ):
        unknown = sorted(set(chosen) - set(allowed))
        if unknown:
            p.error(f"--{name}: unknown {', '.join(unknown)} (choose from {', '.join(allowed)})")
    if args.compare is not None:
        if not (args.compare / "gateway" / "__init__.py").is_file():
            p.error(f"--compare {args.compare}: no gateway package there")
        args.targets.append(BEFORE)
    if args.duration is None:
        args.duration = 3.0 if args.quick else 10.0
    if args.ttft_n is None:
        args.ttft_n = 100 if args.quick else 500
    for name in ("duration", "connections", "rounds", "ttft_n"):
        if getattr(args, name) <= 0:
            p.error(f"--{name.replace('_', '-')} must be positive, got {getattr(args, name)}")
    return args


AUTOGROUP = Path("/proc/self/autogroup")


@contextlib.contextmanager
def session_priority(nice: int) -> Iterator[None]:
    """Raise (negative nice) this session's CPU weight for the benchmark, then restore it.

    With autogroup scheduling (Linux's default on many machines) a process's niceness only
    ranks it within its own session; sessions share the CPU by the session's weight, set
    through /proc/self/autogroup. Processes started inside inherit both.
    """
    if not nice:
        yield
        return
    os.nice(nice)
    previous = None
    with contextlib.suppress(OSError, ValueError):
        previous = int(AUTOGROUP.read_text().split("nice")[1])
        AUTOGROUP.write_text(str(nice))
    try:
        yield
    finally:
        if previous is not None:
            with contextlib.suppress(OSError):
                AUTOGROUP.write_text(str(previous))


def pin_load(args: argparse.Namespace) -> tuple[str | None, str]:
    """Pin this process (and so wrk, nginx, the TTFT client) to the load CPUs.

    The servers are re-pinned to their own CPUs by taskset.
    """
    nice = getattr(args, "nice", 0)
    priority = f", nice {nice}" if nice else ""
    if args.no_pin or (os.cpu_count() or 1) < 2:
        return None, f"no CPU pinning{priority}"
    os.sched_setaffinity(0, {int(c) for c in args.load_cpus.split(",")})
    pinning = f"servers on CPU {args.server_cpus}, load on CPU {args.load_cpus}"
    return args.server_cpus, pinning + priority


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with session_priority(args.nice):
        return run(args)


def run(args: argparse.Namespace) -> int:
    server_cpus, pinning = pin_load(args)
    result = BenchResult(
        mode="quick" if args.quick else "full",
        duration_s=args.duration,
        connections=args.connections,
        pinning=pinning,
        versions=versions(),
    )
    with tempfile.TemporaryDirectory(prefix="distill-bench-") as tmp_name:
        tmp = Path(tmp_name)
        body = tmp / "body.json"
        body.write_bytes(request_body(stream=False))
        store = tmp / "bench.duckdb"
        with FixedUpstream() as upstream:
            (tmp / "distill.yaml").write_text(yaml.safe_dump(gateway_config(upstream, store)))
            servers = build_servers(upstream, tmp / "distill.yaml", server_cpus)
            servers = {t: s for t, s in servers.items() if t in args.targets or t == GATEWAY}
            if args.compare is not None:
                before_store = tmp / "before" / "bench.duckdb"
                before_store.parent.mkdir()
                config = tmp / "before" / "distill.yaml"
                config.write_text(yaml.safe_dump(gateway_config(upstream, before_store)))
                servers[BEFORE] = gateway_server(
                    config, server_cpus, {"PYTHONPATH": str(args.compare.resolve())}
                )
                result.labels[BEFORE] = f"Distill gateway from {args.compare}"
            with contextlib.ExitStack() as stack:
                for server in servers.values():
                    stack.enter_context(server)
                result.log = run_all(args, result, upstream, servers, body)
            if servers[GATEWAY].exited_early:
                gateway = servers[GATEWAY]
                print(
                    f"gateway died during the run ({gateway.returncode}):\n{gateway.stderr_text}",
                    file=sys.stderr,
                )
        # The gateway has stopped (and flushed its log): count what reached the store.
        result.log = replace(
            result.log,
            rows=count_rows(store),
            spool_left=count_spooled(Path(f"{store}.spool")),
        )
    print(render(result))
    if args.json:
        args.json.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    if result.log is None or result.log.dropped or result.log.spool_left:
        print("FAIL: the gateway answered requests it did not log", file=sys.stderr)
        return 1
    return 0


def gateway_server(config: Path, cpus: str | None, env: dict[str, str] | None = None) -> Server:
    """`distill serve` as a user runs it (uvicorn, uvloop, httptools, one process)."""
    port = free_port()
    serve = [sys.executable, "-m", "gateway", "serve", "--config", str(config)]
    return Server(
        [*serve, "--port", str(port)],
        port=port,
        ready_path="/healthz",
        cpus=cpus,
        env=env,
        cwd=config.parent,
    )


def build_servers(
    upstream: FixedUpstream, config: Path, cpus: str | None, *, only_gateway: bool = False
) -> dict[str, Server]:
    """The gateway (`distill serve`) and the two bare forwarders, not started yet."""
    ports = {FASTAPI: free_port(), STARLETTE: free_port()}
    env = {"UPSTREAM_URL": upstream.base_url}
    return {
        GATEWAY: gateway_server(config, cpus),
        **{
            target: Server(
                uvicorn_cmd(f"bench.gateway.baselines.{module}:app", ports[target]),
                port=ports[target],
                ready_path="/v1/chat/completions",
                ready_method="POST",
                cpus=cpus,
                env=env,
                cwd=REPO,
            )
            for target, module in ((FASTAPI, "fastapi_aiohttp"), (STARLETTE, "starlette_aiohttp"))
            if not only_gateway
        },
    }


def run_all(
    args: argparse.Namespace,
    result: BenchResult,
    upstream: FixedUpstream,
    servers: dict[str, Server],
    body: Path,
) -> LogCheck:
    """Every measurement, in order; returns the gateway's request counts (rows come later)."""
    urls = {
        DIRECT: f"{upstream.base_url}/chat/completions",
        **{t: f"{s.url}/v1/chat/completions" for t, s in servers.items()},
    }
    urls = {t: u for t, u in urls.items() if t in args.targets}
    pids = {DIRECT: upstream.pid, **{t: s.pid for t, s in servers.items()}}
    gateway_runs: list[WrkResult] = []
    _measure(args, result, urls, pids, body, gateway_runs)
    streamed, stream_errors = 0, 0
    if "ttft" in args.phases:
        print("streaming TTFT ...", file=sys.stderr)
        ttft_targets = {
            DIRECT: f"{upstream.stream_base_url}/chat/completions",
            GATEWAY: f"{servers[GATEWAY].url}/v1/chat/completions",
        }
        if BEFORE in servers:
            ttft_targets[BEFORE] = f"{servers[BEFORE].url}/v1/chat/completions"
        samples = measure_ttft(
            list(ttft_targets.values()),
            request_body(stream=True),
            n=args.ttft_n,
            warmup=TTFT_WARMUP,
        )
        result.ttft = dict(zip(ttft_targets, samples, strict=True))
        streamed, stream_errors = args.ttft_n + TTFT_WARMUP, result.ttft[GATEWAY].errors
    return LogCheck(
        sent=sum(r.sent for r in gateway_runs) + streamed,
        completed=sum(r.requests for r in gateway_runs) + streamed - stream_errors,
        answered=scrape_answered(servers[GATEWAY].url),
        rows=0,
        spool_left=0,
    )


def _measure(
    args: argparse.Namespace,
    result: BenchResult,
    urls: dict[str, str],
    pids: dict[str, int],
    body: Path,
    gateway_runs: list[WrkResult],
) -> None:
    """Throughput rounds (targets back to back), then latency at concurrency 1."""

    def wrk(target: str, connections: int, duration: float, latency: bool) -> WrkResult:
        run = run_wrk(
            urls[target],
            body,
            connections=connections,
            duration_s=duration,
            latency=latency,
            server_pid=pids[target],
        )
        if target == GATEWAY:
            gateway_runs.append(run)
        return run

    for round_no in range(args.rounds if "throughput" in args.phases else 0):
        for target in urls:
            print(f"req/s round {round_no + 1}: {target} ...", file=sys.stderr)
            wrk(target, args.connections, args.warmup, False)
            run = wrk(target, args.connections, args.duration, False)
            result.throughput.setdefault(target, []).append(run)
    for target in urls if "latency" in args.phases else ():
        print(f"latency c=1: {target} ...", file=sys.stderr)
        wrk(target, 1, args.warmup, False)
        result.latency[target] = wrk(target, 1, args.duration, True)


if __name__ == "__main__":
    sys.exit(main())
