"""`distill serve --workers 2` against one worker: req/s with every exchange logged, rows lost.

    python -m bench.gateway.workers                    # 3 rounds of 10 s per worker count
    python -m bench.gateway.workers --workers 1 2 4 --duration 5 --rounds 1

Each run: a fresh DuckDB store, `distill serve --workers N` as a user starts it, the fixed
nginx upstream of bench/gateway/run.py, 1 s of warm-up, then wrk (-t1 -cC -dD); SIGTERM (every
worker flushes its spool), then the rows in the store are counted against the responses wrk
received. Worker counts alternate within a round; the median of the rounds is reported. Nothing
is pinned: gateway workers, wrk and nginx share the machine's cores, as on a small host.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `bench` importable from the repo root
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import duckdb
import yaml

from bench.gateway.fixed_upstream import FixedUpstream
from bench.gateway.load import run_wrk
from bench.gateway.procs import Server, free_port
from bench.gateway.run import count_rows, count_spooled, gateway_config, request_body


def workers_server(config: Path, workers: int) -> Server:
    port = free_port()
    cmd = [sys.executable, "-m", "gateway", "serve", "--config", str(config)]
    return Server(
        [*cmd, "--port", str(port), "--workers", str(workers)],
        port=port,
        ready_path="/healthz",
        cpus=None,
        cwd=config.parent,
    )


def one_run(
    upstream: FixedUpstream, tmp: Path, workers: int, args: argparse.Namespace
) -> dict[str, float]:
    """One worker count, one fresh store: req/s, responses, rows, rows lost."""
    run_dir = Path(tempfile.mkdtemp(prefix=f"w{workers}-", dir=tmp))
    store = run_dir / "bench.duckdb"
    config = run_dir / "distill.yaml"
    config.write_text(yaml.safe_dump(gateway_config(upstream, store)))
    body = run_dir / "body.json"
    body.write_bytes(request_body(stream=False))
    with workers_server(config, workers) as server:
        url = f"{server.url}/v1/chat/completions"
        warm = run_wrk(url, body, connections=args.connections, duration_s=1)
        load = run_wrk(url, body, connections=args.connections, duration_s=args.duration)
    busy = server.stderr_text.count("store unavailable")  # a batch that waited out the file
    answered = warm.requests + load.requests - warm.error_count - load.error_count
    rows = count_rows(store)
    shares = rows_by_replica(store)
    left = sum(count_spooled(spool) for spool in run_dir.glob("bench.duckdb.spool*"))
    return {
        "rps": load.rps,
        "errors": load.error_count + warm.error_count,
        "answered": answered,
        "rows": rows,
        # wrk counts only responses it read to the end; a request in flight when wrk stopped
        # may be answered and logged too, so rows >= answered when nothing was lost.
        "lost": max(0, answered - rows) + left,
        "p50_ms": load.p50_ms,
        "p99_ms": load.p99_ms,
        # how evenly the kernel spread the connections: the busiest worker's share of rows
        "busiest_share": max(shares.values()) / rows if rows else 0.0,
        # batches retried later because the other worker held the DuckDB file past the wait
        "busy_batches": busy,
    }


def rows_by_replica(store: Path) -> dict[str, int]:
    conn = duckdb.connect(str(store), read_only=True)
    try:
        found = conn.execute("SELECT replica, count(*) FROM requests GROUP BY 1").fetchall()
    finally:
        conn.close()
    return {str(replica): int(n) for replica, n in found}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    runs: dict[int, list[dict[str, float]]] = {n: [] for n in args.workers}
    with (
        tempfile.TemporaryDirectory(prefix="distill-bench-workers-") as name,
        FixedUpstream() as upstream,
    ):
        for round_no in range(args.rounds):
            for n in args.workers:
                result = one_run(upstream, Path(name), n, args)
                runs[n].append(result)
                print(
                    f"round {round_no + 1} workers={n}: {result['rps']:.0f} req/s, "
                    f"p50 {result['p50_ms']:.1f} ms, p99 {result['p99_ms']:.1f} ms, "
                    f"{result['answered']:.0f} answered, {result['rows']:.0f} rows, "
                    f"{result['lost']:.0f} lost, {result['errors']:.0f} errors, "
                    f"busiest worker {result['busiest_share']:.0%} of rows, "
                    f"{result['busy_batches']:.0f} batches retried (file busy)",
                    flush=True,
                )
    base = statistics.median(r["rps"] for r in runs[args.workers[0]])
    print(f"\nmedian of {args.rounds} rounds, wrk -t1 -c{args.connections} -d{args.duration:.0f}s")
    lost_any = False
    for n, results in runs.items():
        rps = statistics.median(r["rps"] for r in results)
        lost = sum(r["lost"] for r in results)
        lost_any = lost_any or lost > 0
        print(f"workers={n}: {rps:.0f} req/s ({rps / base:.2f}x), rows lost {lost:.0f}")
    return 1 if lost_any else 0


if __name__ == "__main__":
    sys.exit(main())
