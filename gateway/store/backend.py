"""One `Store` for every reader and writer: the embedded DuckDB file, or the fleet store.

The only place that decides where the tables live. `open_store(config.store)` for the
gateway; `store_at(spec)` for a `--store` argument (a DuckDB file, a directory of Parquet
segments as older gateways wrote, or `postgresql://…?data_path=…` for a fleet).
`connect()` yields a DuckDB connection on which every contract table is queried and written
by its bare name, whatever the backend.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Protocol
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import duckdb

from gateway.config import StoreConfig
from gateway.store import db
from gateway.store.fleet import FleetStore
from gateway.store.schema import migrate
from gateway.store.writer import DuckDBSink, ParquetSink, Sink

# Tables that live in the control file beside Parquet segments; they stay small (people and
# rollouts write them).
SMALL_TABLES = ("annotations", "adapters", "rollouts", "rollout_decisions", "runs")
SEGMENT_TABLES = ("requests", "feedback")


class Store(Protocol):
    kind: str  # embedded | parquet | fleet

    def connect(
        self, *, read_only: bool = False, timeout_s: float = 30.0, migrated: bool = False
    ) -> AbstractContextManager[duckdb.DuckDBPyConnection]: ...

    def exists(self) -> bool: ...

    def sink(self, replica: str, columns: dict[str, dict[str, str]]) -> Sink: ...

    def close(self) -> None: ...


class EmbeddedStore:
    """One machine: a DuckDB file, held only for one unit of work at a time."""

    kind = "embedded"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return str(self.path)

    def exists(self) -> bool:
        return self.path.exists()

    def connect(
        self, *, read_only: bool = False, timeout_s: float = 30.0, migrated: bool = False
    ) -> AbstractContextManager[duckdb.DuckDBPyConnection]:
        return db.connect(self.path, read_only=read_only, timeout_s=timeout_s, migrated=migrated)

    def sink(self, replica: str, columns: dict[str, dict[str, str]]) -> Sink:
        return DuckDBSink(self.path, columns)

    def close(self) -> None:
        pass


def _glob(directory: Path) -> str:
    return str(directory / "*.parquet").replace("'", "''")


class ParquetStore:
    """A directory of Parquet segments (`format: parquet`, superseded by the fleet store).

    Read-only connections see the segments as views and the control file's small tables;
    writable ones are the control file, where annotations, rollouts and the registry live.
    """

    kind = "parquet"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.control = self.path / "control.duckdb"

    def __repr__(self) -> str:
        return str(self.path)

    def exists(self) -> bool:
        return self.path.is_dir()

    def connect(
        self, *, read_only: bool = False, timeout_s: float = 30.0, migrated: bool = False
    ) -> AbstractContextManager[duckdb.DuckDBPyConnection]:
        return self._connect(read_only, timeout_s)

    @contextmanager
    def _connect(self, read_only: bool, timeout_s: float) -> Iterator[duckdb.DuckDBPyConnection]:
        """Segments as views in memory, the control file attached behind them: every table
        reads by its bare name, and writes land in the control file."""
        conn = duckdb.connect()
        try:
            migrate(conn)  # empty tables with the contract's columns, where nothing is yet
            for table in SEGMENT_TABLES:
                if any((self.path / table).glob("*.parquet")):
                    conn.execute(f"DROP TABLE {table}")
                    conn.execute(
                        f"CREATE VIEW {table} AS SELECT * FROM "
                        f"read_parquet('{_glob(self.path / table)}', union_by_name = true)"
                    )
            if not read_only or self.control.exists():
                self.path.mkdir(parents=True, exist_ok=True)
                for table in SMALL_TABLES:  # these live in the control file
                    conn.execute(f"DROP TABLE {table}")
                literal = str(self.control).replace("'", "''")
                mode = " (READ_ONLY)" if read_only else ""
                db.retry_while_locked(
                    lambda: conn.execute(f"ATTACH '{literal}' AS control{mode}"),
                    self.control,
                    timeout_s,
                )
                if not read_only:
                    conn.execute("USE control")
                    migrate(conn)
                    conn.execute("USE memory")
                conn.execute("SET search_path = 'memory.main,control.main'")
            yield conn
        finally:
            conn.close()

    def sink(self, replica: str, columns: dict[str, dict[str, str]]) -> Sink:
        return ParquetSink(self.path, replica, columns)

    def close(self) -> None:
        pass


def fleet_dsn(config: StoreConfig, environ: dict[str, str] | None = None) -> str:
    env = os.environ if environ is None else environ
    dsn = env.get(config.postgres_dsn_env, "")
    if not dsn:
        raise ValueError(
            f"store.format is fleet but {config.postgres_dsn_env} is not set: export it to the "
            "PostgreSQL DSN (e.g. postgresql://distill@db:5432/distill)"
        )
    return dsn


def open_store(config: StoreConfig, environ: dict[str, str] | None = None) -> Store:
    if config.format == "fleet":
        return FleetStore(fleet_dsn(config, environ), config.path)
    if config.format == "parquet":
        return ParquetStore(config.path)
    return EmbeddedStore(config.path)


def split_fleet_url(spec: str) -> tuple[str, str]:
    """`postgresql://host/db?data_path=/shared/lake` -> (the DSN without it, the data path)."""
    parts = urlsplit(spec)
    query = parse_qsl(parts.query, keep_blank_values=True)
    data = [v for k, v in query if k == "data_path"]
    if not data or not data[0]:
        raise ValueError(
            f"a fleet store URL needs ?data_path=<shared directory or s3:// prefix>: {spec!r}"
        )
    rest = urlencode([(k, v) for k, v in query if k != "data_path"])
    return urlunsplit(parts._replace(query=rest)), data[0]


def store_at(spec: str | Path) -> Store:
    """The store a `--store` argument names."""
    text = str(spec)
    if text.startswith(("postgresql://", "postgres://")):
        return FleetStore(*split_fleet_url(text))
    path = Path(text)
    return ParquetStore(path) if path.is_dir() else EmbeddedStore(path)


StoreRef = Store | str | Path  # a Store, or where one is (a --store argument)


def as_store(store: StoreRef) -> Store:
    """A Store passed through; a path or URL (a caller's --store) opened as `store_at` does."""
    return store_at(store) if isinstance(store, str | Path) else store


def has_table(conn: duckdb.DuckDBPyConnection, name: str) -> bool:
    """Whether `name` resolves on this connection (a table or view, in any attached store)."""
    try:
        conn.execute(f'SELECT * FROM "{name}" LIMIT 0')
    except duckdb.CatalogException:
        return False
    return True
