"""The fleet backend: DuckLake for the log, PostgreSQL for the small mutable tables.

    every replica --spool--> FleetSink --DuckLake--> Parquet under the shared data path
                                        (catalog: PostgreSQL schema `ducklake`)
                                     --INSERT OR IGNORE--> PostgreSQL (feedback, rollouts, ...)

One in-memory DuckDB per process holds both attached; each unit of work takes a cursor whose
search path makes every contract table readable by its bare name, so the SQL of the embedded
store runs unchanged. A spool segment lands in the lake exactly once: its key
(`<replica>-<boot>-<seq>`, unique per process life) is committed in the same DuckLake
transaction as its rows and checked before a replay.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from urllib.parse import urlsplit

import duckdb
import psycopg

from gateway.store.extensions import engine, load_httpfs
from gateway.store.spool import Segment
from gateway.store.writer import select_from_segment, table_columns

log = logging.getLogger("distill.store")

# The append-only log lives in the lake; the other tables are small and updated in place.
LAKE_TABLES = ("requests",)
MIGRATION_LOCK = 0x44495354  # pg advisory lock key ("DIST") held while creating tables
SEARCH_PATH = "pg.public,lake.main"


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def sync_schema(db: duckdb.DuckDBPyConnection, columns: dict[str, dict[str, str]]) -> None:
    """Create missing tables and columns (the contract's, from the migrations) in both places.

    Additive only, like the migrations themselves; creating is idempotent, so replicas that
    start together need only be serialised (the caller holds MIGRATION_LOCK).
    """
    tables = dict(columns) | {"ingested_segments": {"key": "VARCHAR", "ts": "TIMESTAMPTZ"}}
    tables.pop("schema_migrations", None)
    present: dict[tuple[str, str], set[str]] = {}
    for catalog, table, column in db.execute(
        "SELECT table_catalog, table_name, column_name FROM information_schema.columns "
        "WHERE (table_catalog, table_schema) IN (('lake', 'main'), ('pg', 'public'))"
    ).fetchall():
        present.setdefault((catalog, table), set()).add(column)
    for table, cols in tables.items():
        where = "lake.main" if table in (*LAKE_TABLES, "ingested_segments") else "pg.public"
        if where == "pg.public":
            # JSON as text: DuckDB's updates through the Postgres extension send VARCHAR, which
            # Postgres will not put in a json column; DuckDB reads either the same way.
            cols = {c: ("VARCHAR" if t == "JSON" else t) for c, t in cols.items()}
        have = present.get((where.split(".")[0], table))
        if have is None:
            key = "" if where.startswith("lake") or "id" not in cols else ", PRIMARY KEY (id)"
            spec = ", ".join(f'"{c}" {t}' for c, t in cols.items())
            db.execute(f"CREATE TABLE IF NOT EXISTS {where}.{table} ({spec}{key})")
            continue
        for column, dtype in cols.items():
            if column not in have:
                db.execute(f'ALTER TABLE {where}.{table} ADD COLUMN "{column}" {dtype}')


def s3_secret_sql(env: Mapping[str, str]) -> str:
    """DuckDB's S3 secret from the standard AWS variables (pure). AWS_ENDPOINT_URL points at
    an S3-compatible store (MinIO, Ceph, moto): path-style URLs, TLS as its scheme says."""
    parts = ["TYPE s3"]
    for option, names in (
        ("KEY_ID", ("AWS_ACCESS_KEY_ID",)),
        ("SECRET", ("AWS_SECRET_ACCESS_KEY",)),
        ("SESSION_TOKEN", ("AWS_SESSION_TOKEN",)),
        ("REGION", ("AWS_REGION", "AWS_DEFAULT_REGION")),
    ):
        value = next((env[n] for n in names if env.get(n)), None)
        if value:
            parts.append(f"{option} {_quote(value)}")
    endpoint = env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL")
    if endpoint:
        url = urlsplit(endpoint)
        parts.append(f"ENDPOINT {_quote(url.netloc or url.path)}")
        parts.append("URL_STYLE 'path'")
        parts.append(f"USE_SSL {'false' if url.scheme == 'http' else 'true'}")
    return f"CREATE OR REPLACE SECRET distill_s3 ({', '.join(parts)})"


class FleetStore:
    """Many replicas, one log and one set of control tables."""

    kind = "fleet"

    def __init__(self, dsn: str, data_path: str) -> None:
        if not dsn:
            raise ValueError("the fleet store needs a PostgreSQL DSN")
        self.dsn = dsn
        self.data_path = data_path.rstrip("/") + "/"
        self._db: duckdb.DuckDBPyConnection | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"fleet store (data {self.data_path})"

    def exists(self) -> bool:
        return True

    def _engine(self) -> duckdb.DuckDBPyConnection:
        with self._lock:
            if self._db is None:
                db = engine()
                try:
                    if self.data_path.startswith("s3://"):
                        load_httpfs(db)
                        db.execute(s3_secret_sql(os.environ))
                    with psycopg.connect(self.dsn, autocommit=True, connect_timeout=5) as pg:
                        pg.execute("SELECT pg_advisory_lock(%s)", [MIGRATION_LOCK])
                        db.execute(
                            f"ATTACH {_quote('ducklake:postgres:' + self.dsn)} AS lake "
                            f"(DATA_PATH {_quote(self.data_path)}, METADATA_SCHEMA 'ducklake')"
                        )
                        db.execute(f"ATTACH {_quote(self.dsn)} AS pg (TYPE postgres)")
                        sync_schema(db, table_columns())
                except BaseException:
                    db.close()
                    raise
                self._db = db
            return self._db

    def reset(self) -> None:
        """Drop the attached engine (after Postgres went away): the next use attaches anew."""
        with self._lock:
            if self._db is not None:
                with contextlib.suppress(duckdb.Error):
                    self._db.close()
                self._db = None

    @contextmanager
    def connect(
        self, *, read_only: bool = False, timeout_s: float = 30.0, migrated: bool = False
    ) -> Iterator[duckdb.DuckDBPyConnection]:
        try:
            cursor = self._engine().cursor()
        except (duckdb.Error, psycopg.Error) as exc:
            self.reset()
            raise StoreUnavailableError(
                f"fleet store unreachable ({exc}); check {self.data_path} and the PostgreSQL "
                "DSN (store.postgres_dsn_env)"
            ) from exc
        try:
            cursor.execute(f"SET search_path = {_quote(SEARCH_PATH)}")
            yield cursor
        except duckdb.ConnectionException:
            self.reset()
            raise
        finally:
            cursor.close()

    def sink(self, replica: str, columns: dict[str, dict[str, str]]) -> FleetSink:
        return FleetSink(self, replica, columns)

    def close(self) -> None:
        self.reset()


class StoreUnavailableError(RuntimeError):
    """The fleet store's PostgreSQL or data path cannot be reached now."""


class FleetSink:
    """Spool segments into the fleet store, each exactly once."""

    def __init__(self, store: FleetStore, replica: str, columns: dict[str, dict[str, str]]) -> None:
        self.store = store
        self.replica = replica
        self.columns = columns

    def ingest(self, segments: list[Segment], *, source: str | None = None) -> None:
        owner = source or self.replica
        lake = {f"{owner}-{s.table}-{s.key}": s for s in segments if s.table in LAKE_TABLES}
        try:
            with self.store.connect() as cur:
                if lake:
                    cur.execute("BEGIN")
                    try:
                        done = {
                            k
                            for (k,) in cur.execute(
                                "SELECT key FROM lake.main.ingested_segments "
                                "WHERE key IN (SELECT unnest(?))",
                                [list(lake)],
                            ).fetchall()
                        }
                        for key, seg in lake.items():
                            if key in done:
                                log.warning("segment %s was already in the lake; skipped", key)
                                continue
                            select = select_from_segment(seg.path, self.columns[seg.table])
                            cur.execute(f"INSERT INTO lake.main.{seg.table} BY NAME {select}")
                            cur.execute(
                                "INSERT INTO lake.main.ingested_segments VALUES (?, now())",
                                [key],
                            )
                        cur.execute("COMMIT")
                    except BaseException:
                        with contextlib.suppress(duckdb.Error):
                            cur.execute("ROLLBACK")
                        raise
                for seg in segments:
                    if seg.table not in LAKE_TABLES:  # keyed by id: a replay changes nothing
                        select = select_from_segment(seg.path, self.columns[seg.table])
                        cur.execute(f"INSERT OR IGNORE INTO pg.public.{seg.table} BY NAME {select}")
        except (duckdb.Error, psycopg.Error, StoreUnavailableError):
            self.store.reset()  # a broken Postgres connection: attach afresh next batch
            raise

    def close(self) -> None:
        pass
