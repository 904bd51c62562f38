"""The log survives its store failing: disk full, spool disk full while locked, repeated kill -9.

Disk full is real: the store (or spool) directory is a tiny tmpfs mounted for the test and
grown afterwards with `mount -o remount,size=...`. Where mounting is not permitted (no root
or CAP_SYS_ADMIN) those tests skip and say so.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.config import StoreConfig
from gateway.metrics import Metrics
from gateway.store.writer import LogWriter
from tests.fixtures.servers import TeacherServer
from tests.reliability.procs import GatewayProcess, stored, stored_ids

pytestmark = pytest.mark.reliability


@contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    path.mkdir()
    mount = shutil.which("mount")
    result = (
        subprocess.run(
            [mount, "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
            capture_output=True,
            text=True,
            check=False,
        )
        if mount
        else None
    )
    if result is None or result.returncode != 0:
        why = result.stderr.strip() if result else "no mount binary"
        pytest.skip(f"cannot mount a tmpfs here ({why}): disk-full tests need CAP_SYS_ADMIN")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def grow(path: Path, size: str) -> None:
    subprocess.run(["mount", "-o", f"remount,size={size}", str(path)], check=True)


def post(http: httpx.Client, url: str, content: str) -> str:
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": content}]}
    response = http.post(f"{url}/v1/chat/completions", json=body)
    assert response.status_code == 200, response.text  # the app never notices the store
    return response.headers["x-distill-request-id"]


def assert_exactly_once(store: Path, acknowledged: list[str]) -> None:
    counts = Counter(stored_ids(store))
    duplicates = [i for i, n in counts.items() if n > 1]
    missing = set(acknowledged) - set(counts)
    assert not duplicates, f"{len(duplicates)} ids stored twice"
    assert not missing, f"{len(missing)} of {len(acknowledged)} acknowledged records lost"


def hold_lock(store: Path) -> subprocess.Popen[bytes]:
    """Another process opens the DuckDB file for writing and keeps it (its lock) open."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); "
            "print('locked', flush=True); time.sleep(120)",
            str(store),
        ],
        stdout=subprocess.PIPE,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == b"locked"
    return holder


def test_store_disk_full_spools_then_replays(tmp_path: Path, teacher_server: TeacherServer) -> None:
    with tmpfs(tmp_path / "disk", "2m") as disk:

        def on_disk(cfg: dict[str, Any]) -> None:
            cfg["store"]["path"] = str(disk / "store.duckdb")
            cfg["store"]["spool_dir"] = str(tmp_path / "spool")  # another disk, with room

        gateway = GatewayProcess(tmp_path, teacher_server.base_url, on_disk)
        try:
            acknowledged: list[str] = []
            with httpx.Client(timeout=10) as http:
                # Incompressible bodies until the store's disk is full, then some more.
                extra = 0
                while extra < 20:
                    acknowledged.append(post(http, gateway.url, os.urandom(16_384).hex()))
                    if gateway.metrics()["distill_log_write_errors_total"] > 0:
                        extra += 1
                    assert len(acknowledged) < 400, "the 2 MB disk never filled"
                metrics = gateway.metrics()
                assert metrics["distill_log_queue_depth"] >= 20  # spooled, not lost
                assert metrics["distill_log_spool_bytes"] > 0
                readyz = http.get(f"{gateway.url}/readyz").json()
                assert readyz["store"].startswith("store:"), readyz  # the error is visible
                post(http, gateway.url, "the app still gets answers")

            grow(disk, "256m")  # space is freed: the spool replays by itself
            gateway.wait_drained(60)
            assert gateway.terminate()
            assert not gateway.spooled_segments()
            assert_exactly_once(gateway.store, acknowledged)
        finally:
            gateway.close()


def fill(path: Path) -> None:
    """Write to `path` until its disk is full."""
    with path.open("wb", buffering=0) as f, contextlib.suppress(OSError):
        while f.write(b"\0" * 512):
            pass


def chat_or_stream(http: httpx.Client, url: str, content: str, stream: bool) -> httpx.Response:
    body = {"model": "gpt-4o", "stream": stream, "messages": [{"role": "user", "content": content}]}
    response = http.post(f"{url}/v1/chat/completions", json=body)
    response.read()
    return response


def test_spool_disk_full_then_kill_9_loses_nothing_acknowledged(
    tmp_path: Path, teacher_server: TeacherServer
) -> None:
    """Issue 15, item 9: the store is locked, so records pile up in the spool until its disk is
    full; then only what is on that disk is acknowledged: other requests get a 503 with
    Retry-After (streams: an error event instead of [DONE]) and /readyz is not ready. After
    kill -9 and a restart every acknowledged id is in the store exactly once."""
    with tmpfs(tmp_path / "spooldisk", "2m") as spool:

        def on_disk(cfg: dict[str, Any]) -> None:
            cfg["store"]["spool_dir"] = str(spool / "gw")

        gateway = GatewayProcess(tmp_path, teacher_server.base_url, on_disk)
        holder = hold_lock(gateway.store)
        acknowledged: list[str] = []
        refused: list[httpx.Response] = []
        try:
            with httpx.Client(timeout=10) as http:
                for i in itertools.count():
                    assert i < 600, "the 2 MB spool disk never filled"
                    stream = i % 3 == 0
                    response = chat_or_stream(http, gateway.url, os.urandom(6_144).hex(), stream)
                    done = not stream or response.content.rstrip().endswith(b"data: [DONE]")
                    if response.status_code == 200 and done:
                        acknowledged.append(response.headers["x-distill-request-id"])
                    elif response.status_code == 200:  # a stream the log could not take
                        assert b'"code":"log_unavailable"' in response.content
                    else:
                        refused.append(response)
                    if len(refused) >= 10:
                        break
                readyz = http.get(f"{gateway.url}/readyz")
                embedding = {"model": "text-embedding-3-small", "input": "x"}  # logged too
                refused.append(http.post(f"{gateway.url}/v1/embeddings", json=embedding))
                fill(spool / "filler")  # not a byte left, even for a small feedback line
                feedback = {"request_id": acknowledged[0], "score": 1}
                refused.append(http.post(f"{gateway.url}/v1/feedback", json=feedback))
            for response in refused:
                assert response.status_code == 503, response.text
                assert response.headers["retry-after"] == "5"
                assert response.json()["error"]["code"] == "log_unavailable"
            assert readyz.status_code == 503 and "spool cannot grow" in readyz.json()["reason"]
            print(f"{len(acknowledged)} acknowledged, {len(refused)} refused with 503")
            gateway.kill9()  # was: 597 of 900 acknowledged rows lost
            (spool / "filler").unlink()
        except BaseException:
            gateway.close()  # a failed check must not leave the gateway running
            raise
        finally:
            holder.kill()
            holder.wait()
        try:
            gateway.start()  # replays the spool the dead process left, freeing its disk
            gateway.wait_drained(60)
            assert httpx.get(f"{gateway.url}/readyz").status_code == 200
            assert gateway.terminate()
            assert len(acknowledged) > 20
            assert_exactly_once(gateway.store, acknowledged)
        finally:
            gateway.close()


def mixed_worker(url: str, stop: threading.Event, acknowledged: list[str], worker: int) -> None:
    """Chat, streamed chat and completions in turn; an id counts once its answer is complete."""
    kinds = itertools.cycle(["chat", "stream", "completions"])
    with httpx.Client(timeout=10) as http:
        while not stop.is_set():
            kind = next(kinds)
            path = "/v1/completions" if kind == "completions" else "/v1/chat/completions"
            body: dict[str, Any] = {"model": "gpt-4o", "stream": kind == "stream"}
            if kind == "completions":
                body["prompt"] = f"reset my password ({worker})"
            else:
                body["messages"] = [{"role": "user", "content": f"refund please ({worker})"}]
            try:
                with http.stream("POST", f"{url}{path}", json=body) as response:
                    data = response.read()
            except httpx.TransportError:
                return  # the gateway died under us: this request was never acknowledged
            complete = not body["stream"] or data.rstrip().endswith(b"data: [DONE]")
            if response.status_code == 200 and complete:
                acknowledged.append(response.headers["x-distill-request-id"])


@pytest.mark.slow
def test_repeated_kill_9_mid_ingest_keeps_every_acknowledged_row_exactly_once(
    tmp_path: Path, teacher_server: TeacherServer
) -> None:
    """Kill -9 three times under mixed load, with the writer ingesting every 50 ms.

    At that rate a kill often lands mid-batch: after COMMIT, before the segment is deleted.
    (tests/gateway/test_log_pipeline.py covers one kill with a slow writer.)
    """

    def fast_writer(cfg: dict[str, Any]) -> None:
        cfg["store"]["flush_interval_s"] = 0.05

    gateway = GatewayProcess(tmp_path, teacher_server.base_url, fast_writer)
    acknowledged: list[str] = []
    try:
        for round_ in range(3):
            stop = threading.Event()
            workers = [
                threading.Thread(target=mixed_worker, args=(gateway.url, stop, acknowledged, w))
                for w in range(4)
            ]
            for w in workers:
                w.start()
            target = len(acknowledged) + 120 + 37 * round_  # kill at a different moment
            deadline = time.monotonic() + 60
            while len(acknowledged) < target:
                assert time.monotonic() < deadline, "load stalled"
                time.sleep(0.005)
            gateway.kill9()
            stop.set()
            for w in workers:
                w.join(15)
            gateway.start()  # replays what the dead process left in its spool
        gateway.wait_drained()
        assert gateway.terminate()
        assert_exactly_once(gateway.store, acknowledged)
        statuses = Counter(status for _, status in stored(gateway.store))
        assert set(statuses) <= {200, 499}, statuses  # 499: a stream cut by the kill itself
    finally:
        gateway.close()


def test_disk_full_error_names_the_cause(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "disk", "1m") as disk:
        writer = LogWriter(
            StoreConfig(path=str(disk / "s.duckdb"), spool_dir=str(tmp_path / "spool")),
            Metrics(),
            replica="t",
        )
        for i in range(40):
            row = {"id": f"r{i}", "ts": 1, "kind": "primary", "endpoint": "chat"}
            writer.submit(
                "requests",
                {**row, "stream": False, "variant": "teacher", "request": os.urandom(16_384).hex()},
            )
        assert not writer.flush()  # no room: the records stay spooled
        assert "No space left on device" in str(writer.last_error)
