"""Read a route's candidate rows from a DuckDB file or a directory of Parquet segments."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from gateway.store.db import connect
from trainer.dataset.query import Query, params_for

# (id, endpoint, request JSON, response JSON, user, session, worst feedback score)
Row = tuple[str, str, str | None, str | None, str | None, str | None, float | None]

_NO_FEEDBACK = (
    "CREATE VIEW feedback AS SELECT NULL::VARCHAR AS request_id, NULL::DOUBLE AS score WHERE false"
)


class StoreError(RuntimeError):
    """The store cannot be read as asked; the message says what to do."""


@dataclass(frozen=True)
class Snapshot:
    """What the build needs from the store, read in one short visit."""

    counts: dict[str, int]  # SQL filter name -> rows removed; 'kept' -> rows passed
    rows: list[Row]
    routes: list[tuple[str | None, int]]  # only filled when the route had no rows
    source: str  # 'duckdb' | 'parquet'


def _glob(directory: Path) -> str:
    return str(directory / "*.parquet").replace("'", "''")


@contextmanager
def open_store(path: Path) -> Iterator[tuple[duckdb.DuckDBPyConnection, str]]:
    """A short-lived connection on which `requests` and `feedback` can be queried."""
    if not path.exists():
        raise StoreError(
            f"log store {path} does not exist: pass --store (or set DISTILL_STORE) to the "
            "gateway's DuckDB file or a directory of Parquet segments (DIR/requests/*.parquet)"
        )
    if path.is_dir():
        requests_dir = path / "requests"
        if not any(requests_dir.glob("*.parquet")):
            raise StoreError(
                f"{path} is a directory without Parquet segments in {requests_dir}/: "
                "point --store at a DuckDB file or at a directory holding requests/*.parquet"
            )
        conn = duckdb.connect()
        try:
            conn.execute(
                "CREATE VIEW requests AS SELECT * FROM "
                f"read_parquet('{_glob(requests_dir)}', union_by_name = true)"
            )
            if any((path / "feedback").glob("*.parquet")):
                conn.execute(
                    "CREATE VIEW feedback AS SELECT * FROM "
                    f"read_parquet('{_glob(path / 'feedback')}', union_by_name = true)"
                )
            else:
                conn.execute(_NO_FEEDBACK)
            yield conn, "parquet"
        finally:
            conn.close()
        return
    try:
        with connect(path, read_only=True) as conn:
            yield conn, "duckdb"
    except duckdb.Error as exc:
        raise StoreError(
            f"cannot read {path} as a DuckDB log store ({exc}); pass the gateway's store file"
        ) from exc


def read_snapshot(path: Path, query: Query) -> Snapshot:
    """Run the filter counts and fetch the kept rows, then let go of the store at once."""
    with open_store(path) as (conn, source):
        tables = {name for (name,) in conn.execute("SHOW TABLES").fetchall()}
        if "requests" not in tables:
            raise StoreError(
                f"{path} has no `requests` table, so it is not a Distill log store: pass the "
                "file the gateway writes (store.path in distill.yaml) or its Parquet segments"
            )
        counts = {
            str(reason): int(n)
            for reason, n in _execute(conn, query.counts, query.params).fetchall()
        }
        rows: list[Row] = []
        routes: list[tuple[str | None, int]] = []
        if counts.get("route", 0) == sum(counts.values()):
            routes = [(r, int(n)) for r, n in _execute(conn, query.routes, query.params).fetchall()]
        else:
            rows = _execute(conn, query.rows, query.params).fetchall()
    return Snapshot(counts=counts, rows=rows, routes=routes, source=source)


def _execute(
    conn: duckdb.DuckDBPyConnection, sql: str, params: dict[str, Any]
) -> duckdb.DuckDBPyConnection:
    return conn.execute(sql, params_for(sql, params))
