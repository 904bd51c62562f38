"""Time the review console's queries on a big store: `python bench/ui_queries.py --rows 1000000`.

Rows are generated inside DuckDB (primary teacher rows, a shadow student on a tenth of them,
errors, feedback, annotations), then each console query runs a few times on a fresh
short-lived connection, as the gateway runs it; the table shows the best and median time.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb

from distill_demo.teacher.task import SYSTEM_PROMPT, classify, generate_ticket
from gateway.store.schema import migrate
from gateway.ui import queries
from gateway.ui.source import open_store

ROUTE = "support-triage"


def generate(path: Path, rows: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    pool = [generate_ticket(rng)[0] for _ in range(2000)]
    start = datetime(2025, 1, 1, tzinfo=UTC)
    with duckdb.connect(str(path)) as conn:
        migrate(conn)
        conn.execute("CREATE TEMP TABLE pool (k INTEGER, ticket VARCHAR, label VARCHAR)")
        conn.executemany(
            "INSERT INTO pool VALUES (?, ?, ?)",
            [(i, t, classify(t)) for i, t in enumerate(pool)],
        )
        n_pool = len(pool)
        system = SYSTEM_PROMPT.replace("'", "''")
        common = (
            "json_object('model', 'gpt-4o', 'messages', json_array("
            f"json_object('role', 'system', 'content', '{system}'),"
            "json_object('role', 'user', 'content', p.ticket || ' case ' || g.i::VARCHAR)))"
        )
        conn.execute(
            "INSERT INTO requests (id, ts, route, variant, kind, pair_id, endpoint, model, request,"
            " response, status, error, stream, latency_ms, ttft_ms, prompt_tokens,"
            ' completion_tokens, finish_reason, "user") '
            f"SELECT 'req_' || g.i, $start + to_seconds(g.i), "
            f"CASE WHEN g.i % 50 = 0 THEN 'other' ELSE '{ROUTE}' END, 'teacher', 'primary', "
            f"'req_' || g.i, 'chat', 'gpt-4o', {common}, "
            "CASE WHEN g.i % 97 = 0 THEN NULL ELSE json_object('choices', json_array(json_object("
            "'message', json_object('role', 'assistant', 'content', p.label)))) END, "
            "CASE WHEN g.i % 97 = 0 THEN 502 ELSE 200 END, "
            "CASE WHEN g.i % 97 = 0 THEN 'upstream refused' END, false, 5 + g.i % 40, NULL, "
            "60, 2, 'stop', 'user-' || (g.i % 20000) "
            f"FROM range($rows) g(i) JOIN pool p ON p.k = g.i % {n_pool}",
            {"start": start, "rows": rows},
        )
        # A shadow student on a tenth of the traffic, wrong on a third of its answers.
        conn.execute(
            "INSERT INTO requests (id, ts, route, variant, kind, pair_id, endpoint, model, request,"
            ' response, status, stream, latency_ms, "user") '
            "SELECT 'sh_' || r.id, r.ts + INTERVAL 1 SECOND, r.route, 'student-a', 'shadow', "
            "r.id, 'chat', 'gpt-4o', r.request, CASE WHEN hash(r.id) % 3 = 0 THEN "
            "json_object('choices', json_array(json_object('message', json_object('role', "
            "'assistant', 'content', 'billing')))) ELSE r.response END, 200, false, 20, r.\"user\" "
            "FROM requests r WHERE r.kind = 'primary' AND r.status = 200 "
            "AND hash(r.id) % 10 = 0"
        )
        conn.execute(
            "INSERT INTO feedback (id, ts, request_id, score) SELECT 'fb_' || id, ts, id, "
            "CASE WHEN hash(id) % 2 = 0 THEN 0 ELSE 1 END FROM requests "
            "WHERE kind = 'primary' AND hash(id) % 100 = 0"
        )
        conn.execute(
            "INSERT INTO annotations (id, ts, request_id, kind, answer, author) SELECT "
            "'ann_' || id, ts, id, 'correction', 'account', 'bench' FROM requests "
            "WHERE kind = 'primary' AND hash(id) % 1000 = 0"
        )


def timed(path: Path, work: Callable[[duckdb.DuckDBPyConnection], Any], repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        with open_store(path) as conn:
            work(conn)
        times.append(time.perf_counter() - began)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000, help="primary rows to generate")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--store", type=Path, help="reuse (or create) this store file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = args.store or Path(tmp) / "bench.duckdb"
        if not path.exists():
            began = time.perf_counter()
            generate(path, args.rows)
            print(f"generated {args.rows} rows (+ shadows) in {time.perf_counter() - began:.1f}s")
        with duckdb.connect(str(path), read_only=True) as conn:
            row = conn.execute("SELECT count(*) FROM requests").fetchone()
            some = conn.execute(
                "SELECT id FROM requests WHERE kind = 'primary' ORDER BY id LIMIT 1 OFFSET 12345"
            ).fetchone()
        total = row[0] if row else 0
        rid = str(some[0]) if some else "req_1"
        since = datetime(2025, 1, 5, tzinfo=UTC)
        cases: list[tuple[str, Callable[[duckdb.DuckDBPyConnection], Any]]] = [
            ("traffic, newest page", lambda c: queries.traffic_page(c, queries.TrafficFilter())),
            (
                "traffic, page 200 (offset 10k)",
                lambda c: queries.traffic_page(c, queries.TrafficFilter(offset=10_000)),
            ),
            (
                "traffic, route+kind+status+since",
                lambda c: queries.traffic_page(
                    c,
                    queries.TrafficFilter(
                        route=ROUTE,
                        kind="primary",
                        status="ok",
                        since=since,
                        until=since + timedelta(days=2),
                    ),
                ),
            ),
            (
                "traffic, user",
                lambda c: queries.traffic_page(c, queries.TrafficFilter(user="user-42")),
            ),
            (
                "traffic, text search",
                lambda c: queries.traffic_page(c, queries.TrafficFilter(text="case 123456")),
            ),
            (
                "traffic, negative feedback",
                lambda c: queries.traffic_page(c, queries.TrafficFilter(feedback="negative")),
            ),
            (
                "traffic, corrected",
                lambda c: queries.traffic_page(c, queries.TrafficFilter(annotated="correction")),
            ),
            ("exchange + pair", lambda c: queries.exchange(c, rid)),
            (
                "pairs, worst first",
                lambda c: queries.pairs_page(c, queries.PairFilter(student="student-a")),
            ),
            ("overview", queries.overview),
            ("annotation counts", lambda c: queries.annotation_counts(c, ROUTE)),
        ]
        print(f"store: {path} ({total} rows)")
        print(f"{'query':36} {'best s':>8} {'median s':>9}")
        for name, work in cases:
            times = timed(path, work, args.repeat)
            print(f"{name:36} {min(times):8.3f} {statistics.median(times):9.3f}")


if __name__ == "__main__":
    main()
