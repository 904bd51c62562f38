"""A replica restarted under the same name (a Kubernetes pod) keeps every row it acknowledged."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import httpx
import pytest

from gateway.config import StoreConfig
from gateway.metrics import Metrics
from gateway.store.writer import LogWriter, publish_exclusive
from tests.fixtures.servers import TeacherServer
from tests.gateway.test_log_pipeline import record
from tests.reliability.procs import BODY, GatewayProcess

pytestmark = pytest.mark.reliability


def parquet_ids(directory: Path) -> list[str]:
    glob = f"{directory}/requests/*.parquet"
    return [r[0] for r in duckdb.sql(f"SELECT id FROM read_parquet('{glob}')").fetchall()]


def test_a_replica_restarted_three_times_keeps_every_acknowledged_id(
    tmp_path: Path, teacher_server: TeacherServer
) -> None:
    """Four lives of replica `gw-0` (two SIGTERMs, one kill -9): before boot ids the
    sequence restarted at 1 and each life overwrote the parts of the one before."""
    segments = tmp_path / "segments"

    def parquet(cfg: dict[str, Any]) -> None:
        cfg["store"] = {
            "path": str(segments),
            "format": "parquet",
            "spool_dir": str(tmp_path / "spool" / "gw-0"),
            "flush_interval_s": 0.2,
        }
        cfg["server"] = {"replica": "gw-0"}

    gateway = GatewayProcess(tmp_path, teacher_server.base_url, parquet)
    acknowledged: list[str] = []
    try:
        for life, stop in enumerate(["term", "kill9", "term", "term"]):
            with httpx.Client(timeout=10) as http:
                for _ in range(12):
                    r = http.post(f"{gateway.url}/v1/chat/completions", json=BODY)
                    assert r.status_code == 200, r.text
                    acknowledged.append(r.headers["x-distill-request-id"])
            if stop == "kill9":
                gateway.kill9()  # the last records stay spooled: the next life replays them
            else:
                gateway.wait_drained()
                assert gateway.terminate()
            if life < 3:
                gateway.start()
    finally:
        gateway.close()
    found = parquet_ids(segments)
    assert sorted(found) == sorted(acknowledged), "every acknowledged id exactly once"
    assert len(acknowledged) == 48
    assert not list((segments / "requests").glob("*.tmp"))


def test_a_replayed_segment_never_overwrites_its_part(tmp_path: Path) -> None:
    """A crash after the part was written but before the segment was deleted replays the
    segment: its part already exists, so the replay is skipped, not written over."""
    config = StoreConfig(
        path=str(tmp_path / "seg"), format="parquet", spool_dir=str(tmp_path / "s")
    )
    writer = LogWriter(config, Metrics(), replica="gw-0")
    for i in range(3):
        writer.submit("requests", record(i))
    writer.spool.rotate()
    segments = writer.spool.closed_segments()
    writer.sink.ingest(segments)
    part = next((tmp_path / "seg" / "requests").glob("part-gw-0-*.parquet"))
    assert part.name == f"part-gw-0-{writer.spool.boot}-000000001.parquet"
    before = part.stat()
    writer.sink.ingest(segments)  # the replay
    after = part.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert sorted(parquet_ids(tmp_path / "seg")) == ["r0", "r1", "r2"]
    writer.stop()


@pytest.mark.parametrize("exists", [False, True])
def test_publish_exclusive(tmp_path: Path, exists: bool) -> None:
    tmp, final = tmp_path / "p.tmp", tmp_path / "p"
    tmp.write_text("new")
    if exists:
        final.write_text("old")
    assert publish_exclusive(tmp, final) is not exists
    assert final.read_text() == ("old" if exists else "new")
    assert not tmp.exists()
