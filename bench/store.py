"""Log store benchmark: spool append rate, writer ingest rows/s, replay rate, bytes per row.

    python bench/store.py --rows 100000 300000 1000000

Each size runs in a fresh temp dir: N realistic chat exchanges are submitted to a LogWriter
(the request path's cost: serialise + one write() each), then ingested into DuckDB by one
flush (the writer thread's batch), then the same N are replayed from a spool by a new writer
(restart after a crash). Reports rows/s for each and the DuckDB file size per 1M rows.
"""

from __future__ import annotations

import argparse
import random
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from distill_demo.teacher.task import SYSTEM_PROMPT, generate_ticket
from gateway.config import StoreConfig
from gateway.metrics import Metrics
from gateway.store.writer import LogWriter


def records(n: int, seed: int = 0) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        ticket, label = generate_ticket(rng)
        request = {
            "model": "gpt-4o",
            "user": f"user-{rng.randrange(5000)}",
            "messages": [
                {"role": "system", "content": SYSTEM_PROMPT},
                {"role": "user", "content": ticket},
            ],
        }
        response = {
            "id": f"chatcmpl-{i}",
            "object": "chat.completion",
            "created": 1,
            "model": "gpt-4o",
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "message": {"role": "assistant", "content": label},
                }
            ],
            "usage": {"prompt_tokens": 40, "completion_tokens": 2, "total_tokens": 42},
        }
        out.append(
            {
                "id": f"req_{i:012d}",
                "ts": 1_790_000_000 + i * 0.01,
                "route": "support-triage",
                "variant": "teacher",
                "kind": "primary",
                "pair_id": f"req_{i:012d}",
                "endpoint": "chat",
                "model": "gpt-4o",
                "upstream": "teacher",
                "upstream_model": "gpt-4o",
                "request": orjson.Fragment(orjson.dumps(request)),
                "response": orjson.Fragment(orjson.dumps(response)),
                "status": 200,
                "stream": i % 3 == 0,
                "latency_ms": 3.2,
                "ttft_ms": None,
                "upstream_ms": 2.9,
                "prompt_tokens": 40,
                "completion_tokens": 2,
                "finish_reason": "stop",
                "user": request["user"],
                "replica": "bench",
            }
        )
    return out


def run(n: int) -> dict[str, float]:
    rows = records(n)
    root = Path(tempfile.mkdtemp(prefix="distill-bench-store-"))
    try:
        config = StoreConfig(path=str(root / "store.duckdb"), segment_max_records=10**9)
        writer = LogWriter(config, Metrics(), replica="bench")
        t0 = time.perf_counter()
        for record in rows:
            writer.submit("requests", record)
        append_s = time.perf_counter() - t0
        spool_bytes = writer.spool.pending_bytes()
        t0 = time.perf_counter()
        assert writer.flush(), writer.last_error
        ingest_s = time.perf_counter() - t0
        writer.spool.close()
        size = (root / "store.duckdb").stat().st_size

        replay_config = StoreConfig(
            path=str(root / "replay.duckdb"), spool_dir=str(root / "replay.spool")
        )
        crashed = LogWriter(replay_config, Metrics(), replica="bench")
        for record in rows:
            crashed.submit("requests", record)
        crashed.spool.close()  # as if killed: everything is still in the spool
        t0 = time.perf_counter()
        again = LogWriter(replay_config, Metrics(), replica="bench")
        assert again.flush(), again.last_error
        replay_s = time.perf_counter() - t0
        return {
            "rows": n,
            "append_per_s": n / append_s,
            "append_us": append_s / n * 1e6,
            "ingest_rows_per_s": n / ingest_s,
            "replay_rows_per_s": n / replay_s,
            "spool_bytes_per_row": spool_bytes / n,
            "duckdb_mb_per_1m_rows": size / n * 1_000_000 / 2**20,
        }
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000])
    args = parser.parse_args()
    header = (
        "rows",
        "append/s",
        "µs/append",
        "ingest rows/s",
        "replay rows/s",
        "spool B/row",
        "DuckDB MB/1M",
    )
    print(" | ".join(header))
    for n in args.rows:
        r = run(n)
        print(
            f"{n:,} | {r['append_per_s']:,.0f} | {r['append_us']:.1f} | "
            f"{r['ingest_rows_per_s']:,.0f} | {r['replay_rows_per_s']:,.0f} | "
            f"{r['spool_bytes_per_row']:.0f} | {r['duckdb_mb_per_1m_rows']:.0f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
