"""The log pipeline keeps every acknowledged record: kill -9, a locked store, corrupt lines."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import duckdb
import httpx
import orjson
import pytest
import yaml

from gateway.config import StoreConfig
from gateway.metrics import Metrics
from gateway.store.db import connect
from gateway.store.spool import SpoolBusyError
from gateway.store.writer import LogWriter
from tests.fixtures.servers import (
    GatewayFactory,
    TeacherServer,
    free_port,
    gateway_config_dict,
)

BODY = {"model": "gpt-4o", "messages": [{"role": "user", "content": "my invoice is wrong"}]}


def stored_ids(path: Path) -> list[str]:
    with connect(path, read_only=True) as conn:
        return [r[0] for r in conn.execute("SELECT id FROM requests").fetchall()]


def start_gateway_process(config_path: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gateway",
            "serve",
            "--config",
            str(config_path),
            "--port",
            str(port),
        ],
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return proc
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"gateway did not start: {log.read_text()[-2000:]}")


@pytest.mark.slow
def test_kill_9_under_load_loses_no_acknowledged_record(
    tmp_path: Path, teacher_server: TeacherServer
) -> None:
    store = tmp_path / "store.duckdb"
    config = gateway_config_dict(teacher_server.base_url, store)
    config["store"]["flush_interval_s"] = 5  # most records are still only in the spool
    config_path = tmp_path / "distill.yaml"
    config_path.write_text(yaml.safe_dump(config))
    port = free_port()
    proc = start_gateway_process(config_path, port, tmp_path / "gateway.log")

    acknowledged: list[str] = []
    stop = threading.Event()

    def load() -> None:
        with httpx.Client(timeout=5) as http:
            while not stop.is_set():
                try:
                    r = http.post(f"http://127.0.0.1:{port}/v1/chat/completions", json=BODY)
                except httpx.TransportError:
                    return
                if r.status_code == 200:
                    acknowledged.append(r.headers["x-distill-request-id"])

    workers = [threading.Thread(target=load) for _ in range(4)]
    for w in workers:
        w.start()
    while len(acknowledged) < 150:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    stop.set()
    for w in workers:
        w.join()
    assert list(store.parent.glob("store.duckdb.spool/requests-*.jsonl")), "spool holds the rest"

    # A restarted gateway replays the spool before anything else.
    proc = start_gateway_process(config_path, port, tmp_path / "gateway.log")
    proc.send_signal(signal.SIGTERM)  # graceful stop flushes
    proc.wait(30)
    ids = stored_ids(store)
    assert len(ids) == len(set(ids))  # no duplicates after replay
    missing = set(acknowledged) - set(ids)
    assert not missing, f"{len(missing)} acknowledged records lost"


def test_locked_store_spools_then_replays(make_gateway: GatewayFactory, tmp_path: Path) -> None:
    server = make_gateway()
    server.flush()
    # Another process takes the DuckDB file's write lock and holds it.
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); "
            "print('locked', flush=True); time.sleep(60)",
            str(server.store_path),
        ],
        stdout=subprocess.PIPE,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == b"locked"
    try:
        ids = []
        with httpx.Client(timeout=5) as http:
            for _ in range(20):
                r = http.post(f"{server.base_url}/chat/completions", json=BODY)
                assert r.status_code == 200  # the app never notices
                ids.append(r.headers["x-distill-request-id"])
        writer = server.gateway.writer
        assert writer is not None
        assert not writer.flush()  # the store is locked: records stay spooled
        registry = server.gateway.metrics.registry
        assert registry.get_sample_value("distill_log_queue_depth") == 20
        assert registry.get_sample_value("distill_log_write_errors_total") >= 1
        assert registry.get_sample_value("distill_log_spool_bytes") > 0
        assert httpx.get(f"{server.url}/readyz").json()["store"].startswith("store:")
    finally:
        holder.kill()
        holder.wait()
    server.flush()
    assert sorted(stored_ids(server.store_path)) == sorted(ids)
    assert server.gateway.metrics.registry.get_sample_value("distill_log_queue_depth") == 0


def record(i: int) -> dict[str, Any]:
    return {
        "id": f"r{i}",
        "ts": 1_700_000_000 + i,
        "kind": "primary",
        "endpoint": "chat",
        "stream": False,
        "route": "r",
        "variant": "teacher",
        "status": 200,
        "request": orjson.Fragment(orjson.dumps(BODY)),
        "tags": {"k": i},
    }


def test_corrupt_spool_lines_are_set_aside_not_lost(tmp_path: Path) -> None:
    config = StoreConfig(path=str(tmp_path / "s.duckdb"))
    writer = LogWriter(config, Metrics(), replica="t")
    for i in range(3):
        writer.submit("requests", record(i))
    writer.spool.rotate()
    segment = writer.spool.closed_segments()[0].path
    with segment.open("ab") as f:
        f.write(b'{"id": "torn", "ts": 1, "ki')  # a torn last line
    assert writer.flush()  # the bad line is moved aside and the rest written at once
    assert sorted(stored_ids(tmp_path / "s.duckdb")) == ["r0", "r1", "r2"]
    rejected = list((tmp_path / "s.duckdb.spool" / "rejected").iterdir())
    assert [orjson.loads(p.read_bytes()) for p in rejected] == [
        {"reason": "torn line", "line": '{"id": "torn", "ts": 1, "ki'}
    ]


def test_replay_is_idempotent(tmp_path: Path) -> None:
    config = StoreConfig(path=str(tmp_path / "s.duckdb"))
    writer = LogWriter(config, Metrics(), replica="t")
    for i in range(5):
        writer.submit("requests", record(i))
    writer.spool.rotate()
    [segment] = writer.spool.closed_segments()
    kept = segment.path.read_bytes()
    assert writer.flush()
    segment.path.write_bytes(kept)  # as if we crashed after commit, before deleting it
    writer.spool.close()
    again = LogWriter(config, Metrics(), replica="t")
    assert again.metrics.registry.get_sample_value("distill_log_queue_depth") == 5
    assert again.flush()
    with connect(tmp_path / "s.duckdb", read_only=True) as conn:
        count, tags = conn.execute("SELECT count(*), max(tags->>'k') FROM requests").fetchone()  # type: ignore[misc]
    assert (count, tags) == (5, "4")


def test_parquet_segments_mode(make_gateway: GatewayFactory, tmp_path: Path) -> None:
    segments = tmp_path / "segments"

    def parquet(cfg: dict[str, Any]) -> None:
        cfg["store"] = {"path": str(segments), "format": "parquet", "flush_interval_s": 0.2}
        cfg["server"] = {"replica": "gw-0"}

    server = make_gateway(parquet)
    with httpx.Client(timeout=5) as http:
        ids = [
            http.post(f"{server.base_url}/chat/completions", json=BODY).headers[
                "x-distill-request-id"
            ]
            for _ in range(7)
        ]
    server.flush()
    parts = sorted((segments / "requests").glob("part-gw-0-*.parquet"))
    assert parts and not list((segments / "requests").glob("*.tmp"))
    found = duckdb.sql(
        f"SELECT id, route, status FROM read_parquet('{segments}/requests/*.parquet')"
    ).fetchall()
    assert sorted(r[0] for r in found) == sorted(ids)
    assert {(r[1], r[2]) for r in found} == {("support-triage", 200)}


@pytest.mark.parametrize("fmt", ["duckdb", "parquet"])
def test_a_live_gateway_adopts_the_spool_a_dead_replica_left(tmp_path: Path, fmt: str) -> None:
    target = tmp_path / ("s.duckdb" if fmt == "duckdb" else "segments")
    spools = tmp_path / "spool"

    def config(replica: str) -> StoreConfig:
        return StoreConfig(
            path=str(target),
            format=fmt,  # type: ignore[arg-type]
            spool_dir=str(spools / replica),
        )

    dead = LogWriter(config("pod-a"), Metrics(), replica="pod-a")
    for i in range(4):
        dead.submit("requests", record(i))
    dead.spool.close()  # the process is gone: its lock is free, its records never written
    busy = LogWriter(config("pod-b"), Metrics(), replica="pod-b")  # alive: left alone
    busy.submit("requests", record(99))
    with pytest.raises(SpoolBusyError):
        LogWriter(config("pod-b"), Metrics(), replica="pod-b")

    survivor = LogWriter(config("pod-c"), Metrics(), replica="pod-c")
    assert survivor.adopt_orphans() == 4
    assert list((spools / "pod-a").glob("*.jsonl")) == []
    assert len(list((spools / "pod-b").glob("*.jsonl"))) == 1
    if fmt == "duckdb":
        found = stored_ids(target)
    else:
        found = [
            r[0]
            for r in duckdb.sql(
                f"SELECT id FROM read_parquet('{target}/requests/part-pod-a-*.parquet')"
            ).fetchall()
        ]
    assert sorted(found) == ["r0", "r1", "r2", "r3"]


def test_writer_holds_the_file_only_while_a_batch_commits(tmp_path: Path) -> None:
    """The writer keeps one in-memory DuckDB and attaches the file per batch: between batches
    another connection in this process can open it, and while that one is open the writer
    keeps its records spooled and writes them after."""
    path = tmp_path / "s.duckdb"
    writer = LogWriter(StoreConfig(path=str(path)), Metrics(), replica="t")
    writer.submit("requests", record(0))
    assert writer.flush()
    assert stored_ids(path) == ["r0"]  # the file is free again after the batch
    with connect(path, read_only=True):
        writer.submit("requests", record(1))
        assert not writer.flush()  # held by the reader: stays spooled
        assert writer.metrics.registry.get_sample_value("distill_log_queue_depth") == 1
    assert writer.flush()
    assert sorted(stored_ids(path)) == ["r0", "r1"]
    writer.stop()
    assert sorted(stored_ids(path)) == ["r0", "r1"]
