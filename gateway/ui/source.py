"""One short-lived connection on which the console's tables can be queried, whatever the store."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from gateway.store.db import connect
from gateway.store.schema import migrate

# Tables that live in the control file beside Parquet segments; they stay small (people and
# rollouts write them), so copying them into memory for one query is cheap.
SMALL_TABLES = ("annotations", "adapters", "rollouts", "rollout_decisions", "runs")
SEGMENT_TABLES = ("requests", "feedback")


def control_file(store: Path) -> Path:
    """Where annotations, rollouts and the registry live: the file itself, or beside segments."""
    return store / "control.duckdb" if store.is_dir() else store


def _glob(directory: Path) -> str:
    return str(directory / "*.parquet").replace("'", "''")


@contextmanager
def open_store(store: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """Yield a connection with every store table; the file is held only inside the block.

    A DuckDB file is opened read-write (as the gateway's own writer does, so the two share one
    database instance in the gateway process); a directory of Parquet segments becomes views
    in an in-memory database, with the control file's small tables copied in.
    """
    if not store.is_dir():
        with connect(store) as conn:
            yield conn
        return
    conn = duckdb.connect()
    try:
        migrate(conn)  # empty tables with the contract's columns
        for table in SEGMENT_TABLES:
            if any((store / table).glob("*.parquet")):
                conn.execute(f"DROP TABLE {table}")
                conn.execute(
                    f"CREATE VIEW {table} AS SELECT * FROM "
                    f"read_parquet('{_glob(store / table)}', union_by_name = true)"
                )
        control = control_file(store)
        if control.exists():
            with connect(control) as ctl:
                for table in SMALL_TABLES:
                    rows = ctl.execute(f"SELECT * FROM {table}").fetchall()
                    if rows:
                        marks = ", ".join("?" * len(rows[0]))
                        conn.executemany(f"INSERT INTO {table} VALUES ({marks})", rows)
        yield conn
    finally:
        conn.close()
