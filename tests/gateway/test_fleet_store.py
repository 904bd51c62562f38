"""The fleet store on a real PostgreSQL and DuckLake: every spooled row lands exactly once."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from gateway.cli import main as distill
from gateway.config import StoreConfig
from gateway.metrics import Metrics
from gateway.store.backend import EmbeddedStore, ParquetStore, split_fleet_url, store_at
from gateway.store.fleet import FleetStore, s3_secret_sql
from gateway.store.writer import LogWriter
from tests.fixtures.postgres import PostgresServer, restart_postgres, stop_postgres
from tests.fixtures.servers import free_port


def record(i: int, replica: str = "a") -> dict[str, Any]:
    return {
        "id": f"{replica}-{i}",
        "ts": 1_700_000_000 + i,
        "kind": "primary",
        "endpoint": "chat",
        "stream": False,
        "route": "r",
        "variant": "teacher",
        "status": 200,
        "request": {"messages": [{"role": "user", "content": f"q{i}"}]},
        "tags": {"k": i},
        "replica": replica,
    }


def fleet_writer(store: FleetStore, spool: Path, replica: str) -> LogWriter:
    config = StoreConfig(format="fleet", path=store.data_path, spool_dir=str(spool))
    return LogWriter(config, Metrics(), replica=replica, store=store)


def ids(store: FleetStore) -> list[str]:
    with store.connect(read_only=True) as conn:
        return [r[0] for r in conn.execute("SELECT id FROM requests ORDER BY id").fetchall()]


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("postgresql://u@h:5/db?data_path=/lake", ("postgresql://u@h:5/db", "/lake")),
        (
            "postgresql://u@h/db?sslmode=require&data_path=s3://b/p",
            ("postgresql://u@h/db?sslmode=require", "s3://b/p"),
        ),
    ],
)
def test_fleet_url_splits_off_the_data_path(spec: str, expected: tuple[str, str]) -> None:
    assert split_fleet_url(spec) == expected


@pytest.mark.parametrize("spec", ["postgresql://u@h/db", "postgresql://u@h/db?data_path="])
def test_fleet_url_without_data_path_is_refused(spec: str) -> None:
    with pytest.raises(ValueError, match="data_path"):
        split_fleet_url(spec)


def test_store_at_picks_the_backend(tmp_path: Path) -> None:
    assert isinstance(store_at(tmp_path / "x.duckdb"), EmbeddedStore)
    assert isinstance(store_at(tmp_path), ParquetStore)
    assert isinstance(store_at("postgresql://h/db?data_path=/d"), FleetStore)


def test_rows_and_feedback_land_once_also_on_replay(pg_dsn: str, tmp_path: Path) -> None:
    store = FleetStore(pg_dsn, str(tmp_path / "lake"))
    writer = fleet_writer(store, tmp_path / "spool-a", "a")
    for i in range(50):
        assert writer.submit("requests", record(i))
    writer.submit("feedback", {"id": "f1", "ts": 1_700_000_000, "request_id": "a-3", "score": 0})
    writer.spool.rotate()
    segments = writer.spool.closed_segments()
    writer.sink.ingest(segments)  # committed, then "crashed" before the segments were deleted
    assert writer.flush()  # the replay of the same segments
    assert ids(store) == sorted(f"a-{i}" for i in range(50))
    with store.connect(read_only=True) as conn:
        joined = conn.execute(
            "SELECT f.score, r.tags->>'k' FROM feedback f JOIN requests r ON r.id = f.request_id"
        ).fetchall()
    assert joined == [(0.0, "3")]
    writer.stop()
    other = store_at(f"postgresql://{_uri(pg_dsn)}?data_path={tmp_path / 'lake'}")
    with other.connect(read_only=True) as conn:  # a second process's view, e.g. the CLI
        count = conn.execute("SELECT count(*) FROM requests").fetchone()
    assert count == (50,)
    url = f"postgresql://{_uri(pg_dsn)}?data_path={tmp_path / 'lake'}"
    stats = CliRunner().invoke(distill, ["store", "stats", "--store", url])
    assert stats.exit_code == 0, stats.output
    counts = dict(line.split() for line in stats.output.splitlines()[:8] if line.strip())
    assert counts["requests"] == "50" and counts["feedback"] == "1"  # lake and PostgreSQL
    store.close()


def _uri(dsn: str) -> str:
    fields = dict(part.split("=", 1) for part in dsn.split())
    return f"{fields['user']}@{fields['host']}:{fields['port']}/{fields['dbname']}"


def test_replicas_write_at_once(pg_dsn: str, tmp_path: Path) -> None:
    writers = [
        fleet_writer(FleetStore(pg_dsn, str(tmp_path / "lake")), tmp_path / f"spool-{n}", n)
        for n in ("a", "b", "c")
    ]

    def load(writer: LogWriter, replica: str) -> None:
        for i in range(300):
            writer.submit("requests", record(i, replica))
            if i % 100 == 99:
                writer.flush()

    threads = [
        threading.Thread(target=load, args=(w, n)) for w, n in zip(writers, "abc", strict=True)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for w in writers:
        w.stop()
    got = ids(FleetStore(pg_dsn, str(tmp_path / "lake")))
    assert len(got) == 900 and len(set(got)) == 900


def test_postgres_down_keeps_rows_spooled(postgres_server: PostgresServer, tmp_path: Path) -> None:
    dsn = postgres_server.new_database()
    store = FleetStore(dsn, str(tmp_path / "lake"))
    writer = fleet_writer(store, tmp_path / "spool", "a")
    writer.submit("requests", record(1))
    assert writer.flush()
    stop_postgres(postgres_server)
    try:
        for i in range(2, 12):
            assert writer.submit("requests", record(i))  # clients are still answered
        assert not writer.flush()
        assert writer.last_error and "store" in writer.last_error
    finally:
        restart_postgres(postgres_server)
    assert writer.flush()  # the next batch attaches afresh and replays the spool
    writer.stop()
    assert ids(store) == sorted(f"a-{i}" for i in range(1, 12))


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, "CREATE OR REPLACE SECRET distill_s3 (TYPE s3)"),
        (
            {"AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s", "AWS_DEFAULT_REGION": "eu"},
            "CREATE OR REPLACE SECRET distill_s3 (TYPE s3, KEY_ID 'k', SECRET 's', REGION 'eu')",
        ),
        (
            {"AWS_ENDPOINT_URL": "http://127.0.0.1:9000", "AWS_REGION": "x"},
            "CREATE OR REPLACE SECRET distill_s3 (TYPE s3, REGION 'x', "
            "ENDPOINT '127.0.0.1:9000', URL_STYLE 'path', USE_SSL false)",
        ),
    ],
)
def test_s3_secret_from_the_aws_variables(env: dict[str, str], expected: str) -> None:
    assert s3_secret_sql(env) == expected


@pytest.fixture
def bucket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A real S3-compatible endpoint (moto's server) on loopback with an empty bucket."""
    port = free_port()
    log = (tmp_path / "moto.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.put(f"{endpoint}/distill-lake", timeout=1).raise_for_status()
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        for name, value in {
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_REGION": "us-east-1",
        }.items():
            monkeypatch.setenv(name, value)
        yield "s3://distill-lake/fleet/"
    finally:
        proc.terminate()
        proc.wait(10)


def test_log_rows_land_in_a_bucket(pg_dsn: str, bucket: str, tmp_path: Path) -> None:
    store = FleetStore(pg_dsn, bucket)
    writer = fleet_writer(store, tmp_path / "spool", "a")
    for i in range(20):
        writer.submit("requests", record(i))
    assert writer.flush()
    writer.stop()
    assert ids(store) == sorted(f"a-{i}" for i in range(20))
    listing = httpx.get(f"{os.environ['AWS_ENDPOINT_URL']}/distill-lake", timeout=5).text
    assert "fleet/main/requests/" in listing and ".parquet" in listing
    store.close()
