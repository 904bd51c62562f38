"""Short-lived DuckDB connections that wait out another process's lock instead of failing."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from gateway.store.schema import migrate


class StoreBusyError(RuntimeError):
    """The DuckDB file stayed locked by another process for longer than we would wait."""


def _is_lock_error(exc: duckdb.Error) -> bool:
    text = str(exc)
    # Another process holds the file, or (same process) a connection opened with the other
    # read_only setting is still open: both clear when that holder closes.
    return "lock" in text.lower() or "Conflicting" in text or "different configuration" in text


@contextmanager
def connect(
    path: str | Path,
    *,
    read_only: bool = False,
    timeout_s: float = 30.0,
    migrated: bool = False,
) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the store file, retrying while another process holds it; migrate on write.

    DuckDB allows one writing process per file, so every user of the store (gateway writer,
    trainer, CLI) holds it only for as long as one unit of work takes.
    """
    path = Path(path)
    if read_only and not path.exists():
        raise FileNotFoundError(
            f"log store {path} does not exist: point --store at the gateway's DuckDB file "
            "(store.path in distill.yaml) or a directory of Parquet segments"
        )
    deadline = time.monotonic() + timeout_s
    delay = 0.02
    while True:
        try:
            conn = duckdb.connect(str(path), read_only=read_only)
            break
        except duckdb.Error as exc:
            if not _is_lock_error(exc) or time.monotonic() > deadline:
                if _is_lock_error(exc):
                    raise StoreBusyError(
                        f"log store {path} stayed locked for {timeout_s:.0f}s by another "
                        "process; retry, or read an exported snapshot (distill store export)"
                    ) from exc
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.5)
    try:
        if not read_only and not migrated:  # `migrated`: the caller knows it is current
            migrate(conn)
        yield conn
    finally:
        conn.close()
