"""Time `distill dataset build` on N generated rows: `python bench/dataset_build.py --rows 1000000`.

Rows are generated inside DuckDB from a pool of demo tickets, so generating a million takes
seconds. A share of the traffic is noise the build must drop (shadow, errors, refusals,
duplicates); `--unique` sets the share of prompts made distinct with a case number, the rest
repeat pool tickets, as real traffic repeats itself.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

import duckdb

from distill_demo.teacher.task import SYSTEM_PROMPT, classify, generate_ticket
from gateway.store.schema import migrate
from trainer.dataset.build import build_dataset
from trainer.dataset.config import BuildConfig

ROUTE = "support-triage"


def generate(path: Path, rows: int, unique: float, pool_size: int = 5000, seed: int = 0) -> None:
    """Write `rows` logged exchanges for ROUTE (plus 2 % for another route) into `path`."""
    rng = random.Random(seed)
    pool = []
    for _ in range(pool_size):
        ticket, _ = generate_ticket(rng)
        pool.append((ticket, classify(ticket)))
    with duckdb.connect(str(path)) as conn:
        migrate(conn)
        conn.execute("CREATE TEMP TABLE pool (k INTEGER, ticket VARCHAR, label VARCHAR)")
        conn.executemany(
            "INSERT INTO pool VALUES (?, ?, ?)", [(i, t, a) for i, (t, a) in enumerate(pool)]
        )
        conn.execute(
            """
            INSERT INTO requests (id, ts, route, variant, kind, endpoint, model, request, response,
                                  status, error, stream, finish_reason, "user", session)
            SELECT
                'req-' || i,
                TIMESTAMPTZ '2025-01-01 00:00:00+00' + to_milliseconds(i * 10),
                CASE WHEN i % 50 = 0 THEN 'other-route' ELSE $route END,
                CASE WHEN i % 20 = 1 THEN 'student-a' ELSE 'teacher' END,
                CASE WHEN i % 20 = 1 THEN 'shadow' ELSE 'primary' END,
                'chat', $route,
                json_object('model', $route, 'messages', json_array(
                    json_object('role', 'system', 'content', $system),
                    json_object('role', 'user', 'content', prompt))),
                json_object('id', 'cmpl-' || i, 'object', 'chat.completion', 'choices', json_array(
                    json_object('index', 0, 'finish_reason', 'stop', 'message', json_object(
                        'role', 'assistant',
                        'content', CASE WHEN i % 97 = 0 THEN 'I''m sorry, but I can''t help.'
                                        ELSE label END)))),
                CASE WHEN i % 40 = 3 THEN 502 ELSE 200 END,
                CASE WHEN i % 40 = 3 THEN 'upstream returned 502' END,
                false,
                CASE WHEN i % 101 = 0 THEN 'length' ELSE 'stop' END,
                'user-' || (hash(i) % 5000),
                NULL
            FROM (
                SELECT i, p.label,
                       CASE WHEN (hash(i || 'u') % 1000000) / 1000000.0 < $unique
                            THEN 'Case ' || i || ': ' || p.ticket ELSE p.ticket END AS prompt
                FROM range($rows) AS r(i) JOIN pool p ON p.k = i % $pool
            )
            """,
            {
                "route": ROUTE,
                "system": SYSTEM_PROMPT,
                "rows": rows,
                "unique": unique,
                "pool": pool_size,
            },
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--unique", type=float, default=0.5, help="share of distinct prompts")
    parser.add_argument("--per-user-cap", type=int, default=None)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="distill-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    store = workdir / "bench.duckdb"
    store.unlink(missing_ok=True)

    started = time.perf_counter()
    generate(store, args.rows, args.unique)
    generated = time.perf_counter() - started
    print(f"generated {args.rows} rows in {generated:.1f}s ({store.stat().st_size / 1e6:.0f} MB)")

    timings: dict[str, float] = {}
    config = BuildConfig(route=ROUTE, per_user_cap=args.per_user_cap)
    started = time.perf_counter()
    out, card = build_dataset(store, config, workdir / f"out-{time.time_ns()}", timings=timings)
    total = time.perf_counter() - started
    removed = {k: v["removed"] for k, v in card["filters"].items() if v["removed"]}
    print(f"build: {total:.1f}s, {card['rows_in'] / total:,.0f} rows/s")
    print("stages (s):", json.dumps({k: round(v, 2) for k, v in timings.items()}))
    print(f"rows in {card['rows_in']}, kept {card['rows_kept']}, removed {removed}")
    print(f"train {card['split']['train']}, eval {card['split']['eval']} -> {out}")


if __name__ == "__main__":
    main()
