"""distill_log_backlog_records follows the records held in memory while the spool refuses
writes (what the DistillLogBacklogInMemory alert reads)."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from gateway.config import StoreConfig
from gateway.metrics import Metrics
from gateway.store.spool import Spool
from gateway.store.writer import LogWriter
from tests.gateway.test_log_pipeline import record


def test_backlog_gauge_rises_while_the_spool_refuses_and_drains_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = CollectorRegistry()
    writer = LogWriter(StoreConfig(path=str(tmp_path / "s.duckdb")), Metrics(registry), replica="t")
    real_append = Spool.append

    def disk_full(self: Spool, table: str, line: bytes) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Spool, "append", disk_full)
    for i in range(3):
        assert writer.submit("requests", record(i)) is False
    assert registry.get_sample_value("distill_log_backlog_records") == 3
    monkeypatch.setattr(Spool, "append", real_append)
    assert writer.flush()
    assert registry.get_sample_value("distill_log_backlog_records") == 0
    assert registry.get_sample_value("distill_log_rows_written_total") == 3
    writer.stop()
