"""The writer's priority rule, and that the writer thread really runs at SCHED_IDLE."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from gateway.config import StoreConfig
from gateway.metrics import Metrics
from gateway.store import priority
from gateway.store.priority import MAX_HOLD_S, MAX_LAG_S, must_catch_up, must_lift
from gateway.store.spool import Segment
from gateway.store.writer import LogWriter


@pytest.mark.parametrize(
    ("late_s", "catch_up"),
    [(-0.4, False), (0.0, False), (1.0, False), (MAX_LAG_S, False), (MAX_LAG_S + 0.01, True)],
)
def test_a_late_batch_catches_up(late_s: float, catch_up: bool) -> None:
    assert must_catch_up(late_s) is catch_up


@pytest.mark.skipif(sys.platform != "linux", reason="SCHED_IDLE is Linux's")
def test_the_writer_thread_yields_to_the_request_path(tmp_path: Path) -> None:
    writer = LogWriter(
        StoreConfig(path=str(tmp_path / "s.duckdb"), flush_interval_s=0.05), Metrics(), replica="t"
    )
    writer.start()
    try:
        assert writer._thread is not None
        tid = writer._thread.native_id
        assert tid is not None
        deadline = time.monotonic() + 5
        while os.sched_getscheduler(tid) != os.SCHED_IDLE and time.monotonic() < deadline:
            time.sleep(0.02)
        assert os.sched_getscheduler(tid) == os.SCHED_IDLE
        assert os.sched_getscheduler(0) == os.SCHED_OTHER  # the rest of the process is untouched
    finally:
        writer.stop()


@pytest.mark.parametrize(
    ("held_s", "lift"),
    [(None, False), (0.0, False), (MAX_HOLD_S, False), (MAX_HOLD_S + 0.01, True)],
)
def test_a_long_batch_is_lifted(held_s: float | None, lift: bool) -> None:
    assert must_lift(held_s) is lift


class SlowSink:
    """A store that takes `seconds` per batch, as a starved writer would."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.batches = 0

    def ingest(self, segments: list[Segment], *, source: str | None = None) -> None:
        time.sleep(self.seconds)
        self.batches += 1

    def close(self) -> None:
        pass


@pytest.mark.skipif(sys.platform != "linux", reason="SCHED_IDLE is Linux's")
def test_a_writer_holding_the_store_too_long_is_lifted_then_yields_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(priority, "MAX_HOLD_S", 0.1)
    sink = SlowSink(seconds=0.6)
    config = StoreConfig(path=str(tmp_path / "s.duckdb"), flush_interval_s=0.05)
    writer = LogWriter(config, Metrics(), replica="t", sink=sink)
    writer.start()
    try:
        assert writer._thread is not None and writer._thread.native_id is not None
        tid = writer._thread.native_id
        assert not writer.lift_if_starved()  # no batch yet
        writer.submit("requests", {"id": "r1", "ts": 1.0, "kind": "primary", "endpoint": "chat"})
        deadline = time.monotonic() + 5
        while not writer.lift_if_starved() and time.monotonic() < deadline:
            time.sleep(0.05)  # the event loop's check, every MAX_HOLD_S / 2 in the gateway
        assert os.sched_getscheduler(tid) == os.SCHED_OTHER  # lifted mid-batch
        while sink.batches < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        writer.submit("requests", {"id": "r2", "ts": 2.0, "kind": "primary", "endpoint": "chat"})
        time.sleep(0.2)  # the next pass puts it back behind the request path
        assert os.sched_getscheduler(tid) == os.SCHED_IDLE
    finally:
        writer.stop()
