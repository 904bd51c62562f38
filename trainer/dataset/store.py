"""Read a route's candidate rows from a DuckDB file or a directory of Parquet segments."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from gateway.store.backend import StoreRef, as_store, has_table
from trainer.dataset.annotations import AnnotationRow
from trainer.dataset.query import Query, params_for

# (id, endpoint, request JSON, response JSON, user, session, worst feedback score)
Row = tuple[str, str, str | None, str | None, str | None, str | None, float | None]


class StoreError(RuntimeError):
    """The store cannot be read as asked; the message says what to do."""


@dataclass(frozen=True)
class Snapshot:
    """What the build needs from the store, read in one short visit."""

    counts: dict[str, int]  # SQL filter name -> rows removed; 'kept' -> rows passed
    rows: list[Row]
    routes: list[tuple[str | None, int]]  # only filled when the route had no rows
    source: str  # the Store's kind: embedded | parquet | fleet
    # kept row id -> (pair id, synthetic): a row is synthetic by column or by tag
    meta: dict[str, tuple[str, bool]] = field(default_factory=dict)
    # pair id -> [(secondary teacher name, endpoint, response JSON)], oldest first
    secondary: dict[str, list[tuple[str, str, str | None]]] = field(default_factory=dict)
    annotations: list[AnnotationRow] = field(default_factory=list)


@contextmanager
def open_store(path: StoreRef) -> Iterator[tuple[duckdb.DuckDBPyConnection, str]]:
    """A short-lived read-only connection on which `requests` and `feedback` can be queried."""
    store = as_store(path)
    if not store.exists():
        raise StoreError(
            f"log store {path} does not exist: pass --store (or set DISTILL_STORE) to the "
            "gateway's DuckDB file, a directory of Parquet segments (DIR/requests/*.parquet) "
            "or a fleet store (postgresql://…?data_path=…)"
        )
    if store.kind == "parquet" and not any(Path(str(path), "requests").glob("*.parquet")):
        raise StoreError(
            f"{path} is a directory without Parquet segments in {path}/requests/: "
            "point --store at a DuckDB file or at a directory holding requests/*.parquet"
        )
    try:
        with store.connect(read_only=True) as conn:
            yield conn, store.kind
    except duckdb.Error as exc:
        raise StoreError(
            f"cannot read {path} as a Distill log store ({exc}); pass the gateway's store"
        ) from exc


def read_snapshot(path: StoreRef, query: Query) -> Snapshot:
    """Run the filter counts and fetch the kept rows, then let go of the store at once."""
    with open_store(path) as (conn, source):
        if not has_table(conn, "requests"):
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
            return Snapshot(counts=counts, rows=[], routes=routes, source=source)
        rows = _execute(conn, query.rows, query.params).fetchall()
        columns = {str(c[0]) for c in conn.execute("DESCRIBE requests").fetchall()}
        meta_sql, secondary_sql = extras_sql(query, columns)
        meta = {
            str(rid): (str(pair), bool(synthetic))
            for rid, pair, synthetic in _execute(conn, meta_sql, query.params).fetchall()
        }
        secondary: dict[str, list[tuple[str, str, str | None]]] = {}
        if secondary_sql:
            for pair, variant, endpoint, response in _execute(
                conn, secondary_sql, query.params
            ).fetchall():
                secondary.setdefault(str(pair), []).append((str(variant), endpoint, response))
        annotations: list[AnnotationRow] = []
        if has_table(conn, "annotations"):
            annotations = conn.execute(
                "SELECT request_id, kind, ts, answer, label FROM annotations ORDER BY ts, id"
            ).fetchall()
    return Snapshot(
        counts=counts,
        rows=rows,
        routes=routes,
        source=source,
        meta=meta,
        secondary=secondary,
        annotations=annotations,
    )


def extras_sql(query: Query, columns: set[str]) -> tuple[str, str | None]:
    """SQL for the kept rows' pair id and synthetic flag, and for their secondary answers.

    Older Parquet segments may lack newer columns, so each is used only when present.
    """
    pair = "coalesce(t.pair_id, t.id)" if "pair_id" in columns else "t.id"
    flags = []
    if "synthetic" in columns:
        flags.append("coalesce(t.synthetic, false)")
    if "tags" in columns:
        flags.append(
            "coalesce(lower(json_extract_string(t.tags::JSON, '$.synthetic')) IN ('true', '1'), "
            "false)"
        )
    synthetic = " OR ".join(flags) or "false"
    kept = f"SELECT * FROM ({query.tagged}) t WHERE t.reason IS NULL"
    meta = f"SELECT t.id, {pair}, {synthetic} FROM ({kept}) t"
    if "pair_id" not in columns:
        return meta, None
    secondary = (
        "SELECT s.pair_id, s.variant, s.endpoint, s.response::VARCHAR FROM requests s "
        f"WHERE s.kind = 'secondary' AND s.status = 200 AND coalesce(s.error, '') = '' "
        "AND s.finish_reason IS DISTINCT FROM 'length' "
        f"AND s.pair_id IN (SELECT {pair} FROM ({kept}) t) ORDER BY s.ts, s.id"
    )
    return meta, secondary


def _execute(
    conn: duckdb.DuckDBPyConnection, sql: str, params: dict[str, Any]
) -> duckdb.DuckDBPyConnection:
    return conn.execute(sql, params_for(sql, params))
