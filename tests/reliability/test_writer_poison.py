"""A writer that cannot be poisoned (issue 15, item 2): odd values clamped, bad rows set aside.

One `usage.prompt_tokens` of 2^31 used to fail every batch for good while /readyz said ready.
Pure checks table-driven; the writer against a real DuckDB file; the alert in the rules.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pytest

from gateway.config import StoreConfig
from gateway.metrics import Metrics
from gateway.store.db import connect
from gateway.store.rows import repair
from gateway.store.spool import Segment
from gateway.store.writer import LogWriter, table_columns

pytestmark = pytest.mark.reliability

COLUMNS = table_columns()["requests"]
REQUIRED = {"id", "ts", "kind", "endpoint", "stream"}


def row(i: int | str, **extra: Any) -> dict[str, Any]:
    base = {"id": f"req_{i}", "ts": time.time(), "kind": "primary", "endpoint": "chat"}
    return {**base, "stream": False, "status": 200, "prompt_tokens": 3, **extra}


@pytest.mark.parametrize(
    ("extra", "cleared"),
    [
        ({}, []),
        ({"prompt_tokens": 2**31 - 1, "completion_tokens": -5}, []),  # fits INTEGER
        ({"prompt_tokens": 2**31}, ["prompt_tokens"]),  # the value
        ({"prompt_tokens": 2**63, "completion_tokens": "12"}, ["prompt_tokens"]),
        ({"prompt_tokens": [], "completion_tokens": "1e5"}, ["prompt_tokens", "completion_tokens"]),
        ({"latency_ms": "x", "ttft_ms": 1.5}, ["latency_ms"]),
        ({"stream": "yes", "synthetic": "maybe"}, ["synthetic"]),
        ({"user": {"nested": 1}, "tags": "plain"}, []),  # VARCHAR and JSON take anything
    ],
)
def test_values_that_do_not_fit_are_cleared_and_noted(
    extra: dict[str, Any], cleared: list[str]
) -> None:
    fixed, notes = repair(row(1, **extra), COLUMNS, REQUIRED)
    assert fixed is not None
    assert [n.split(":")[0] for n in notes] == [c for c in COLUMNS if c in cleared]
    for column in cleared:
        assert fixed[column] is None
    assert fixed.get("notes") == (notes or None)


@pytest.mark.parametrize(
    ("extra", "why"),
    [
        ({"ts": 1e300}, "ts"),
        ({"id": None}, "id"),
        ({"kind": None, "ts": "now"}, "kind, ts"),
    ],
)
def test_rows_without_a_usable_required_value_cannot_be_stored(
    extra: dict[str, Any], why: str
) -> None:
    fixed, notes = repair(row(1, **extra), COLUMNS, REQUIRED)
    assert fixed is None and f"required column(s) {why} missing or unusable" in notes[-1]


def writer_for(tmp_path: Path, **store: Any) -> tuple[LogWriter, Metrics]:
    metrics = Metrics()
    config = StoreConfig(path=str(tmp_path / "log.duckdb"), flush_interval_s=0.05, **store)
    return LogWriter(config, metrics, replica="test"), metrics


def stored_rows(tmp_path: Path) -> dict[str, tuple[Any, ...]]:
    with connect(tmp_path / "log.duckdb", read_only=True) as conn:
        rows = conn.execute("SELECT id, prompt_tokens, notes FROM requests").fetchall()
    return {r[0]: r[1:] for r in rows}


def rejected(tmp_path: Path) -> list[dict[str, Any]]:
    found = sorted((tmp_path / "log.duckdb.spool" / "rejected").glob("*"))
    return [orjson.loads(line) for f in found for line in f.read_bytes().splitlines()]


def test_one_bad_value_no_longer_stops_the_log(tmp_path: Path) -> None:
    writer, metrics = writer_for(tmp_path)
    try:
        writer.submit("requests", row(1))
        writer.submit("requests", row(2, prompt_tokens=2**31))  # broke every batch for good
        writer.submit("requests", row(3, ts=1e300))  # no usable timestamp: set aside
        assert writer.flush(), writer.last_error  # was False on every retry
        writer.submit("requests", row(4))
        assert writer.flush()  # and the log goes on
    finally:
        writer.stop()
    rows = stored_rows(tmp_path)
    assert sorted(rows) == ["req_1", "req_2", "req_4"]
    tokens, notes = rows["req_2"]
    assert tokens is None and "prompt_tokens: 2147483648 does not fit INTEGER" in notes
    aside = rejected(tmp_path)
    assert [orjson.loads(a["line"])["id"] for a in aside] == ["req_3"]
    assert "ts" in aside[0]["reason"]
    sample = metrics.registry.get_sample_value
    assert sample("distill_log_rows_quarantined_total", {"reason": "invalid"}) == 1
    assert sample("distill_log_rows_clamped_total") == 1
    assert sample("distill_log_rows_written_total") == 3
    assert sample("distill_log_queue_depth") == 0


class Refusing:
    """A sink in front of the real one that refuses rows carrying a marker, as a store may
    refuse a value no check foresaw: the writer must find those rows and store the rest."""

    def __init__(self, inner: Any, marker: bytes) -> None:
        self.inner, self.marker, self.calls = inner, marker, 0

    def ingest(self, segments: list[Segment], *, source: str | None = None) -> None:
        self.calls += 1
        if any(self.marker in s.path.read_bytes() for s in segments):
            raise duckdb.ConversionException("Conversion Error: refused by the test")
        self.inner.ingest(segments, source=source)

    def close(self) -> None:
        self.inner.close()


def test_rows_the_store_still_refuses_are_found_by_halves(tmp_path: Path) -> None:
    writer, metrics = writer_for(tmp_path)
    writer.sink = sink = Refusing(writer.sink, b"refuse-me")
    try:
        for i in range(64):
            writer.submit("requests", row(i, user="refuse-me" if i in (5, 40) else None))
        assert writer.flush(), writer.last_error
    finally:
        writer.stop()
    assert len(stored_rows(tmp_path)) == 62
    aside = rejected(tmp_path)
    assert sorted(orjson.loads(a["line"])["id"] for a in aside) == ["req_40", "req_5"]
    assert all("refused by the store" in a["reason"] for a in aside)
    sample = metrics.registry.get_sample_value
    assert sample("distill_log_rows_quarantined_total", {"reason": "refused"}) == 2
    assert sink.calls < 30  # by halves, not one attempt per row


class Unavailable:
    def ingest(self, segments: list[Segment], *, source: str | None = None) -> None:
        raise duckdb.IOException("IO Error: Could not set lock on file (held by the test)")

    def close(self) -> None:
        pass


def test_readiness_reflects_a_stalled_writer(tmp_path: Path) -> None:
    writer, _ = writer_for(tmp_path, stall_after_s=0.3)
    real, writer.sink = writer.sink, Unavailable()
    writer.start()
    try:
        writer.submit("requests", row(1))
        assert writer.not_ready() is None  # a short outage: the spool holds the rows
        deadline = time.monotonic() + 10
        while writer.not_ready() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        reason = writer.not_ready()
        assert reason is not None and "has written nothing" in reason and "lock" in reason
        writer.sink = real  # the store is back: ready again once a batch commits
        deadline = time.monotonic() + 15
        while writer.not_ready() is not None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert writer.not_ready() is None
    finally:
        writer.stop()
    assert list(stored_rows(tmp_path)) == ["req_1"]


class Hung:
    """A store that takes a batch and does not come back until released."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.release = inner, threading.Event()

    def ingest(self, segments: list[Segment], *, source: str | None = None) -> None:
        self.release.wait(20)
        self.inner.ingest(segments, source=source)

    def close(self) -> None:
        self.inner.close()


def test_readiness_reflects_a_hung_batch(tmp_path: Path) -> None:
    writer, _ = writer_for(tmp_path, stall_after_s=0.3)
    writer.sink = hung = Hung(writer.sink)
    writer.start()
    try:
        writer.submit("requests", row(1))
        deadline = time.monotonic() + 10
        while writer.not_ready() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "a log batch has been running for" in str(writer.not_ready())
        hung.release.set()
        deadline = time.monotonic() + 10
        while writer.not_ready() is not None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert writer.not_ready() is None
    finally:
        hung.release.set()
        writer.stop()
    assert list(stored_rows(tmp_path)) == ["req_1"]
