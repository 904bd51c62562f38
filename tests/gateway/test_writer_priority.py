"""The writer's priority rule, and that the writer thread really runs at SCHED_IDLE."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from gateway.config import StoreConfig
from gateway.metrics import Metrics
from gateway.store.priority import MAX_LAG_S, must_catch_up
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
