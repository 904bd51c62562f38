"""A record appended while the writer lists the spool must not be ingested-and-deleted early.

Found by the soak (bench/soak.py at 100 req/s: 2000 acknowledged, 1878 logged, queue stuck):
`Spool.closed_segments` reads the open-segment set, then scans the directory, without the
spool lock; a segment the event loop opens in between is listed as closed, ingested and
unlinked while it is still being appended to, and every later record in it is lost.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from gateway.config import StoreConfig
from gateway.metrics import Metrics
from gateway.store import spool as spool_module
from gateway.store.writer import LogWriter
from tests.reliability.procs import stored_ids

pytestmark = pytest.mark.reliability


def record(i: int) -> dict[str, Any]:
    return {"id": f"r{i}", "ts": 1, "kind": "primary", "endpoint": "chat", "stream": False}


def test_an_append_during_listing_is_not_lost(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer = LogWriter(StoreConfig(path=str(tmp_path / "s.duckdb")), Metrics(), replica="t")
    writer.submit("requests", record(0))
    real_list = spool_module.list_segments
    arrivals: list[threading.Thread] = []

    def list_while_a_request_arrives(directory: Path) -> list[spool_module.Segment]:
        if not arrivals:  # the event loop appends (from its own thread) during the scan
            arrival = threading.Thread(target=writer.submit, args=("requests", record(1)))
            arrivals.append(arrival)
            arrival.start()
            arrival.join(0.3)  # with the fix it waits for the listing to finish
        return real_list(directory)

    monkeypatch.setattr(spool_module, "list_segments", list_while_a_request_arrives)
    writer.flush()
    arrivals[0].join(5)
    writer.submit("requests", record(2))  # same open segment as r1
    assert writer.flush()
    assert sorted(stored_ids(tmp_path / "s.duckdb")) == ["r0", "r1", "r2"]
