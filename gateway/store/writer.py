"""The single log writer: the event loop spools records, one thread ingests them in batches.

    request path --append--> Spool (JSONL segments on disk) --rotate/ingest--> Sink
                                                   (the Store's: DuckDB file | fleet)

A segment is deleted only after its rows are committed, and ingesting is idempotent (rows
are keyed by id), so a crash at any point replays without loss or duplicates.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import duckdb
import orjson

from gateway.config import StoreConfig
from gateway.metrics import Metrics
from gateway.store.db import StoreBusyError, attached, connect
from gateway.store.priority import MAX_HOLD_S, must_catch_up, must_lift, set_background
from gateway.store.rows import DATA_ERRORS, repair_segment, required_columns, set_aside
from gateway.store.schema import migrate
from gateway.store.spool import Segment, Spool, claim, list_segments

if TYPE_CHECKING:
    from gateway.store.backend import Store

log = logging.getLogger("distill.store")

BACKLOG_LIMIT = 100_000  # records held in memory while the spool itself cannot be written


def table_columns() -> dict[str, dict[str, str]]:
    """Column name -> DuckDB type for every table, read off the migrations themselves."""
    conn = duckdb.connect()
    migrate(conn)
    rows = conn.execute(
        "SELECT table_name, column_name, data_type FROM information_schema.columns "
        "ORDER BY table_name, ordinal_position"
    ).fetchall()
    conn.close()
    columns: dict[str, dict[str, str]] = {}
    for table, column, dtype in rows:
        columns.setdefault(table, {})[column] = dtype
    return columns


def select_from_segment(path: Path, columns: dict[str, str]) -> str:
    """SQL reading one JSONL segment with the table's types; timestamps travel as epoch seconds."""
    read_types = {c: ("DOUBLE" if t.startswith("TIMESTAMP") else t) for c, t in columns.items()}
    spec = ", ".join(f"'{c}': '{t}'" for c, t in read_types.items())
    exprs = ", ".join(
        f'to_timestamp("{c}") AS "{c}"' if t.startswith("TIMESTAMP") else f'"{c}"'
        for c, t in columns.items()
    )
    literal = str(path).replace("'", "''")
    return (
        f"SELECT {exprs} FROM read_json('{literal}', format='newline_delimited', "
        f"columns={{{spec}}})"
    )


class Sink(Protocol):
    def ingest(self, segments: list[Segment], *, source: str | None = None) -> None: ...

    def close(self) -> None: ...


class DuckDBSink:
    """Rows go into the DuckDB file; the file is held only while one batch commits.

    One in-memory DuckDB lives as long as the sink and attaches the file per batch: opening
    a new instance per batch cost more CPU than the insert itself (bench/README.md).
    """

    def __init__(self, path: Path, columns: dict[str, dict[str, str]]) -> None:
        self.path = path
        self.columns = columns
        self._host: duckdb.DuckDBPyConnection | None = None
        path.parent.mkdir(parents=True, exist_ok=True)
        # Create and migrate the file up front so readers find the tables from the start;
        # if another process holds it now, the first batch will do it instead.
        self.migrated = False
        with contextlib.suppress(StoreBusyError), connect(path, timeout_s=1.0):
            self.migrated = True

    def ingest(self, segments: list[Segment], *, source: str | None = None) -> None:
        # Migrating once is enough: checking the schema on every batch cost ~15 % of the
        # gateway's CPU at 3,000 req/s (bench/README.md).
        if self._host is None:  # one thread: a background ingest, 110-140k rows/s alone
            self._host = duckdb.connect(config={"threads": 1})
        try:
            with attached(self._host, self.path, timeout_s=0.5, migrated=self.migrated) as conn:
                self.migrated = True
                conn.execute("BEGIN")
                try:
                    for seg in segments:
                        select = select_from_segment(seg.path, self.columns[seg.table])
                        conn.execute(f"INSERT OR IGNORE INTO {seg.table} BY NAME {select}")
                    conn.execute("COMMIT")
                except Exception:
                    # A failed COMMIT has already ended the transaction; keep the real cause.
                    with contextlib.suppress(duckdb.Error):
                        conn.execute("ROLLBACK")
                    raise
        except Exception:
            self.close()  # a failed batch may leave the file attached: start clean next time
            raise

    def close(self) -> None:
        if self._host is not None:
            with contextlib.suppress(duckdb.Error):
                self._host.close()
            self._host = None


def publish_exclusive(tmp: Path, final: Path) -> bool:
    """Give a finished file its final name unless that name exists; never overwrite.

    A link is atomic and fails on an existing name, so readers never see a half-written
    part and no part is ever replaced. False (and tmp removed) when `final` already exists:
    a part is named after the spool segment it holds, so an existing one holds these rows.
    """
    try:
        os.link(tmp, final)
    except FileExistsError:
        return False
    finally:
        tmp.unlink(missing_ok=True)
    return True


class ParquetSink:
    """Rows go into Parquet part files, one per spool segment, named after it.

    `part-<replica>-<boot>-<seq>.parquet`: the boot id makes the name unique per process
    life (a restarted pod keeps its name and restarts its sequence), and parts are created
    exclusively, so a replay of a segment already written is skipped instead of overwriting.
    """

    def __init__(self, directory: Path, replica: str, columns: dict[str, dict[str, str]]) -> None:
        self.directory = directory
        self.replica = replica
        self.columns = columns
        self._conn: duckdb.DuckDBPyConnection | None = None  # in-memory, kept: see DuckDBSink

    def ingest(self, segments: list[Segment], *, source: str | None = None) -> None:
        """`source` names parts after the spool they came from (another replica's, adopted)."""
        if self._conn is None:
            self._conn = duckdb.connect()
        for seg in segments:
            out_dir = self.directory / seg.table
            out_dir.mkdir(parents=True, exist_ok=True)
            final = out_dir / f"part-{source or self.replica}-{seg.key}.parquet"
            if final.exists():
                continue  # written before a crash that kept the segment: a replay
            tmp = final.with_suffix(".parquet.tmp")
            select = select_from_segment(seg.path, self.columns[seg.table])
            literal = str(tmp).replace("'", "''")
            self._conn.execute(f"COPY ({select}) TO '{literal}' (FORMAT parquet)")
            if not publish_exclusive(tmp, final):
                log.warning("part %s already exists; kept it, skipped the replay", final)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


ROOM = 1 << 20  # free bytes on the spool's disk before a full spool counts as writable again


def spool_room(spool: Spool) -> int:
    try:
        stats = os.statvfs(spool.directory)
    except OSError:
        return 0
    return stats.f_bavail * stats.f_frsize


def _encode(value: Any) -> Any:
    """orjson's fallback: bodies still to prepare are prepared now (this thread), else str."""
    prepared = getattr(value, "prepared", None)
    return prepared() if callable(prepared) else str(value)


def _count_lines(path: Path) -> int:
    with path.open("rb") as f:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))


class LogWriter:
    """Durable, non-blocking logging of exchanges into the store."""

    def __init__(
        self,
        config: StoreConfig,
        metrics: Metrics,
        *,
        replica: str,
        sink: Sink | None = None,
        store: Store | None = None,
    ) -> None:
        self.config = config
        self.metrics = metrics
        self.spool = Spool(config.spool_path)
        self._columns = table_columns()
        if sink is None:
            from gateway.store.backend import open_store  # it builds this module's sinks

            sink = (store or open_store(config)).sink(replica, self._columns)
        self.sink = sink
        self._backlog: deque[tuple[str, bytes]] = deque()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._ingest_lock = threading.Lock()
        self._tid: int | None = None  # the writer thread's, once it runs
        self._batch_since: float | None = None  # when the running batch started
        self._lifted = False  # lifted to normal priority mid-batch (lift_if_starved)
        self._required = required_columns()
        self.last_error: str | None = None
        self.spool_full: str | None = None  # why the last spool append failed, until one works
        self.store_busy = False  # the last batch found the store file held by another process
        self._failing_since: float | None = None  # first failed batch since the last success
        # Large bodies are redacted here, off the event loop (submit_soon).
        self._prepare = ThreadPoolExecutor(2, thread_name_prefix="distill-log-prepare")
        pending = sum(_count_lines(s.path) for s in self.spool.closed_segments())
        metrics.queue_depth.set(pending)  # left by a previous run: replayed first

    # -- request path (event loop) -------------------------------------------------------

    def submit(self, table: str, record: dict[str, Any]) -> bool:
        """Spool one record; True once it is on disk (it then survives a crash).

        False when the spool cannot be written (disk full): the record is kept in memory and
        spooled when it can be, but it is not safe yet, so nothing may acknowledge it.
        """
        if table not in self._columns:
            raise ValueError(f"unknown table {table!r}")
        line = orjson.dumps(record, default=_encode) + b"\n"
        try:
            self.spool.append(table, line)
        except OSError as exc:
            self.last_error = f"spool: {exc}"
            self.spool_full = str(exc)
            if len(self._backlog) >= BACKLOG_LIMIT:
                self.metrics.rows_dropped.inc()
                log.error("log record dropped: spool unwritable and backlog full (%s)", exc)
            else:
                self._backlog.append((table, line))
                self.metrics.queue_depth.inc()
                self.metrics.backlog.set(len(self._backlog))
            return False
        self.spool_full = None
        self.metrics.rows_spooled.inc()
        self.metrics.queue_depth.inc()
        if self.spool.records_in_open >= self.config.segment_max_records:
            self._wake.set()
        return True

    def submit_soon(self, table: str, record: dict[str, Any]) -> bool | asyncio.Future[bool]:
        """`submit`, except that a record holding a body still to prepare (a large body to
        redact: gateway.capture.PendingBody) is prepared and spooled in a worker thread, off
        the event loop; await the future before acknowledging the record."""
        if not any(hasattr(value, "prepared") for value in record.values()):
            return self.submit(table, record)
        try:
            loop = asyncio.get_running_loop()
            return loop.run_in_executor(self._prepare, self.submit, table, record)
        except RuntimeError:  # no event loop, or shutting down: prepare it here
            return self.submit(table, record)

    @property
    def accepting(self) -> bool:
        """Whether a record submitted now can be spooled (False while the spool disk is full)."""
        return self.spool_full is None

    def not_ready(self) -> str | None:
        """Why this gateway should be sent no traffic now, or None (for /readyz)."""
        if self.spool_full is not None:
            return (
                f"the spool cannot grow ({self.spool_full}); requests get 503 until it can: "
                f"free space under {self.spool.directory}"
            )
        if not self.spool.directory.is_dir():
            return f"the spool directory {self.spool.directory} is gone"
        if self._thread is not None and not self._thread.is_alive() and not self._stop.is_set():
            return "the log writer thread stopped; restart the gateway"
        now, limit = time.monotonic(), self.config.stall_after_s
        since = self._failing_since
        if since is not None and now - since > limit:
            return (
                f"the log writer has written nothing for {now - since:.0f} s "
                f"(store.stall_after_s): {self.last_error}"
            )
        batch = self._batch_since
        if batch is not None and now - batch > limit:
            return f"a log batch has been running for {now - batch:.0f} s (store.stall_after_s)"
        return None

    # -- writer thread ---------------------------------------------------------------------

    def adopt_orphans(self) -> int:
        """Replay spools that dead gateways left beside ours; return the rows written.

        With one spool directory per replica (e.g. per pod name), a replica that is replaced
        under a new name would strand its spool; any live replica takes it over by its lock.
        """
        adopted = 0
        for sibling in sorted(self.spool.directory.parent.iterdir()):
            if sibling == self.spool.directory or not (sibling / ".lock").is_file():
                continue
            fd = claim(sibling)
            if fd is None:
                continue  # its owner is alive
            try:
                segments = list_segments(sibling)
                if not segments:
                    continue
                rows = sum(_count_lines(s.path) for s in segments)
                self.sink.ingest(segments, source=sibling.name)
                for seg in segments:
                    seg.path.unlink(missing_ok=True)
                self.metrics.rows_written.inc(rows)
                adopted += rows
                log.warning("replayed %d records left in %s by a gateway that died", rows, sibling)
            except Exception as exc:
                log.warning("could not replay orphaned spool %s yet: %s", sibling, exc)
            finally:
                os.close(fd)
        return adopted

    def start(self) -> None:
        with contextlib.suppress(OSError):
            self.adopt_orphans()
        self._thread = threading.Thread(target=self._run, name="distill-log-writer", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Flush everything spooled so far, then stop the thread."""
        self._prepare.shutdown(wait=True)  # records being prepared are spooled first
        self._stop.set()
        self._wake.set()
        if self._thread:
            self._thread.join(timeout_s)
        deadline = time.monotonic() + timeout_s
        # Another process holding the DuckDB file (e.g. a sibling worker flushing at the same
        # SIGTERM) is a wait for our turn, not a failure: keep trying until the deadline.
        while not self.flush() and self.store_busy and time.monotonic() < deadline:
            time.sleep(0.05)
        with self._ingest_lock:
            self.sink.close()
        self.spool.close()

    def flush(self) -> bool:
        """Rotate and ingest now; True when nothing is left pending."""
        with self._ingest_lock:
            self._drain_backlog()
            self.spool.rotate()
            segments = self.spool.closed_segments()
            if not segments:
                self._set_spool_bytes()
                return not self._backlog
            rows = total = sum(_count_lines(s.path) for s in segments)
            try:
                try:
                    self.sink.ingest(segments)
                except DATA_ERRORS as exc:  # a row the store will not take: never retry as is
                    log.warning("the store refused a batch; checking it row by row: %s", exc)
                    self.metrics.write_errors.inc()
                    rows -= self._ingest_checked(segments)
            except Exception as exc:  # store locked, disk full, ...: keep the segments
                self.store_busy = isinstance(exc, StoreBusyError)
                self.metrics.write_errors.inc()
                self.last_error = f"store: {exc}"
                self._failing_since = self._failing_since or time.monotonic()
                log.warning("store unavailable, %d records stay spooled: %s", rows, exc)
                self._set_spool_bytes()
                return False
            self.store_busy = False
            for seg in segments:
                seg.path.unlink(missing_ok=True)
            self.metrics.rows_written.inc(rows)
            self.metrics.queue_depth.dec(total)
            self.last_error = None
            self._failing_since = None
            self._set_spool_bytes()
            return not self._backlog

    def _ingest_checked(self, segments: list[Segment]) -> int:
        """Ingest after checking every row (gateway.store.rows); return the rows set aside.

        Values that do not fit their column are clamped to NULL (and noted); rows that cannot
        be stored, or that the store still refuses alone, go to rejected/ with the reason.
        """
        rejected = self.spool.directory / "rejected"
        aside = 0
        for seg in segments:
            required = self._required.get(seg.table, set())
            columns = self._columns[seg.table]
            clamped, moved = repair_segment(seg.path, seg.table, columns, required, rejected)
            self.metrics.rows_clamped.inc(clamped)
            self._quarantined(moved, "invalid")
            aside += moved
        try:
            self.sink.ingest(segments)
            return aside
        except DATA_ERRORS:
            pass
        for seg in segments:  # still refused: find the rows by halves, store the rest
            lines = seg.path.read_bytes().splitlines(keepends=True)
            aside += self._ingest_halves(seg, lines, rejected, [0])
        return aside

    def _ingest_halves(
        self, seg: Segment, lines: list[bytes], rejected: Path, parts: list[int]
    ) -> int:
        if not lines:
            return 0
        parts[0] += 1  # each part gets its own key: a Parquet or fleet part per attempt
        part = seg.path.with_name(f"{seg.path.stem}.part{parts[0]}.tmp")
        part.write_bytes(b"".join(lines))
        try:
            self.sink.ingest([dataclasses.replace(seg, path=part, seq=seg.seq * 10**6 + parts[0])])
            return 0
        except DATA_ERRORS as exc:
            if len(lines) == 1:
                set_aside(rejected, seg.path.name, [(lines[0], f"refused by the store: {exc}")])
                self._quarantined(1, "refused")
                return 1
        finally:
            part.unlink(missing_ok=True)
        half = len(lines) // 2
        return self._ingest_halves(seg, lines[:half], rejected, parts) + self._ingest_halves(
            seg, lines[half:], rejected, parts
        )

    def _quarantined(self, rows: int, reason: str) -> None:
        if rows:
            self.metrics.rows_quarantined.labels(reason).inc(rows)
            log.error(
                "%d log row(s) set aside in %s (%s): see the reason beside each",
                rows,
                self.spool.directory / "rejected",
                reason,
            )

    def _run(self) -> None:
        self._tid = threading.get_native_id()
        backoff = self.config.flush_interval_s
        background: bool | None = None
        due = time.monotonic() + backoff
        while not self._stop.is_set():
            self._wake.wait(backoff)
            self._wake.clear()
            if self._stop.is_set():
                break
            wanted = not must_catch_up(late_s=time.monotonic() - due)
            if wanted != background or self._lifted:
                set_background(wanted)
                background, self._lifted = wanted, False
            self._batch_since = time.monotonic()
            ok = self.flush()
            self._batch_since = None
            backoff = self.config.flush_interval_s if ok else min(backoff * 2, 10.0)
            due = time.monotonic() + backoff

    def lift_if_starved(self) -> bool:
        """From a normal-priority thread: lift the writer if a batch has held on too long."""
        since = self._batch_since
        if self._tid is None or not must_lift(None if since is None else time.monotonic() - since):
            return False
        set_background(False, self._tid)
        self._lifted = True
        return True

    async def watch(self, every_s: float = MAX_HOLD_S / 2) -> None:
        """Run on the event loop for as long as the writer runs (see gateway.store.priority)."""
        while True:
            await asyncio.sleep(every_s)
            self.lift_if_starved()

    def _drain_backlog(self) -> None:
        if self.spool_full is not None and not self._backlog and spool_room(self.spool) > ROOM:
            self.spool_full = None  # space was freed and nothing waits to be spooled
        while self._backlog:
            table, line = self._backlog[0]
            try:
                self.spool.append(table, line)
            except OSError:
                return
            self.spool_full = None
            self._backlog.popleft()
            self.metrics.backlog.set(len(self._backlog))
            self.metrics.rows_spooled.inc()

    def _set_spool_bytes(self) -> None:
        with contextlib.suppress(OSError):
            self.metrics.spool_bytes.set(self.spool.pending_bytes())

    @property
    def healthy(self) -> bool:
        return self.last_error is None


async def spooled(logged: bool | asyncio.Future[bool] | None) -> bool:
    """Whether a record given to `submit_soon` is on disk (None: nothing was to be logged)."""
    if logged is None or isinstance(logged, bool):
        return logged is not False
    return await logged


def wait_until_written(writer: LogWriter, timeout_s: float = 10.0) -> bool:
    """Block until the queue is empty (tests and graceful shutdown)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if writer.flush():
            return True
        time.sleep(0.05)
    return False
