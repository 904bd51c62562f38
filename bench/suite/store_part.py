"""Log store figures, from bench/store.py and bench/dataset_build.py, at several sizes."""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

from bench import store
from bench.dataset_build import ROUTE, generate
from bench.suite.table import Row
from trainer.dataset.build import build_dataset
from trainer.dataset.config import BuildConfig

PART = "log store"


def run_store(sizes: tuple[int, ...]) -> list[Row]:
    """Writer ingest, spool append and replay rows/s, DuckDB MB per 1M rows, per size."""
    rows: list[Row] = []
    for n in sizes:
        print(f"log store: {n:,} rows ...", file=sys.stderr)
        r = store.run(n)
        size = f"{n:,} rows"
        rows += [
            Row(PART, "writer ingest into DuckDB", size, r["ingest_rows_per_s"], "rows/s",
                target=">= 50000"),
            Row(PART, "spool append (request path)", size, r["append_per_s"], "rows/s"),
            Row(PART, "spool replay after a crash", size, r["replay_rows_per_s"], "rows/s"),
            Row(PART, "DuckDB file per 1M rows", size, r["duckdb_mb_per_1m_rows"], "MB",
                higher_is_better=False),
        ]  # fmt: skip
    return rows


def run_dataset_build(sizes: tuple[int, ...]) -> list[Row]:
    """`distill dataset build` wall time on generated logs of each size (and rows/s)."""
    rows: list[Row] = []
    for n in sizes:
        print(f"dataset build: {n:,} rows ...", file=sys.stderr)
        work = Path(tempfile.mkdtemp(prefix="distill-suite-ds-"))
        try:
            db = work / "bench.duckdb"
            generate(db, n, 0.5)
            t0 = time.perf_counter()
            build_dataset(db, BuildConfig(route=ROUTE), work / "out")
            seconds = time.perf_counter() - t0
        finally:
            shutil.rmtree(work, ignore_errors=True)
        size = f"{n:,} rows"
        rows.append(Row(PART, "dataset build time", size, seconds, "s", higher_is_better=False))
        rows.append(Row(PART, "dataset build rate", size, n / seconds, "rows/s"))
    return rows
