"""`distill serve --workers 2` as real processes on 127.0.0.1, on the embedded DuckDB store.

Both workers serve the one port; every acknowledged request id lands in the store exactly once,
also when a worker is killed with -9 under traffic (the supervisor restarts it and it replays
its spool) and across SIGTERM; a rollout promoted and rolled back through whichever worker
answers is applied by both within 2 s. With the fleet store each worker is a fleet replica.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from gateway.store.db import connect
from gateway.store.fleet import FleetStore
from gateway.workers import reuse_port_sockets
from tests.fixtures.postgres import PostgresServer
from tests.fixtures.servers import STUDENT, TeacherServer
from tests.reliability.procs import BODY, GatewayProcess, stored

pytestmark = [pytest.mark.reliability, pytest.mark.slow]

TOKEN = "workers-admin-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


class WorkersProcess(GatewayProcess):
    """`distill serve --workers N`: the supervisor is `proc`, its children the workers."""

    workers = 2

    def start(self) -> None:
        super().start()
        self.wait_workers()

    def start_args(self) -> list[str]:
        return [*super().start_args(), "--workers", str(self.workers)]

    def worker_pids(self) -> list[int]:
        pids = []
        for child in psutil.Process(self.pid).children():
            try:
                worker = "spawn_main" in " ".join(child.cmdline())
                if worker and child.status() != psutil.STATUS_ZOMBIE:
                    pids.append(child.pid)
            except psutil.Error:
                continue  # gone (or reaped) meanwhile
        return pids

    def wait_workers(self, timeout_s: float = 30) -> None:
        deadline = time.monotonic() + timeout_s
        while (
            len(self.worker_pids()) < self.workers or not self.all_listen() or not self.all_ready()
        ):
            if time.monotonic() > deadline:
                raise AssertionError(f"workers not up: {self.log.read_text()[-2000:]}")
            time.sleep(0.1)

    def leader_pids(self) -> list[int]:
        """The pids of the workers that took the lead, in order (from their log lines)."""
        lines = re.findall(r"worker \S+-w\d+-(\d+)-[0-9a-f]+ now leads", self.log.read_text())
        return [int(pid) for pid in lines]

    def all_listen(self) -> bool:
        """Each worker has begun accepting on its own socket (SO_REUSEPORT: the kernel
        gives a socket connections only once it listens)."""
        try:
            return all(listening_sockets(pid) for pid in self.worker_pids())
        except psutil.Error:
            return False

    def all_ready(self) -> bool:
        try:  # fresh connections reach either worker; a few must all be ready
            return all(httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200 for _ in "123")
        except httpx.TransportError:
            return False


@pytest.fixture
def workers(
    tmp_path: Path, teacher_server: TeacherServer, student_server: TeacherServer
) -> Iterator[WorkersProcess]:
    def edit(cfg: dict[str, Any]) -> None:
        cfg["server"] = {"replica": "host"}
        cfg["upstreams"]["students"] = {"base_url": student_server.base_url, "timeout_s": 5}
        cfg["routes"][0]["student_upstream"] = "students"
        cfg["rollout"] = {"tick_s": 0.2}
        cfg["store"]["flush_interval_s"] = 0.5  # the default: the workers take turns on the file

    gw = WorkersProcess(tmp_path, teacher_server.base_url, edit, env={"DISTILL_ADMIN_TOKEN": TOKEN})
    yield gw
    gw.close()


def ask(url: str, user: str) -> httpx.Response:
    """One request on a fresh connection, so the kernel may hand it to either worker."""
    return httpx.post(f"{url}/v1/chat/completions", json={**BODY, "user": user}, timeout=10)


class Load:
    """Requests in a loop from a thread; remembers the ids the gateway acknowledged."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.acked: list[str] = []
        self.failed = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        i = 0
        while not self._stop.is_set():
            i += 1
            try:
                response = ask(self.url, f"user-{i}")
            except httpx.TransportError:
                self.failed += 1  # cut by the kill: never acknowledged
                continue
            if response.status_code == 200:
                self.acked.append(response.headers["x-distill-request-id"])
            else:
                self.failed += 1

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)


def test_workers_share_the_port_and_lose_nothing(workers: WorkersProcess) -> None:
    load = Load(workers.url)
    time.sleep(1.5)
    (victim,) = workers.leader_pids()
    assert victim in workers.worker_pids()
    os.kill(victim, signal.SIGKILL)  # the leader, mid-traffic: its spool holds acknowledged rows
    deadline = time.monotonic() + 30
    while victim in workers.worker_pids() or len(workers.worker_pids()) < 2:
        assert time.monotonic() < deadline, "the killed worker was not restarted"
        time.sleep(0.1)
    workers.wait_workers()
    deadline = time.monotonic() + 5
    while len(workers.leader_pids()) < 2:  # another worker took the rollouts over
        assert time.monotonic() < deadline, workers.log.read_text()[-2000:]
        time.sleep(0.1)
    assert workers.leader_pids()[-1] != victim
    time.sleep(1.0)  # traffic through the restarted worker too
    load.stop()
    pids = workers.worker_pids()
    assert workers.terminate(), workers.log.read_text()[-2000:]  # SIGTERM: all stop cleanly
    assert not any(psutil.pid_exists(p) for p in pids)

    rows = stored(workers.store, "id, replica")
    counts = Counter(i for i, _ in rows)
    assert len(load.acked) > 20
    assert [i for i in load.acked if counts[i] != 1] == []  # each acknowledged id exactly once
    assert {r for _, r in rows} >= {"host-w0", "host-w1"}  # both workers served


def listening_sockets(pid: int) -> set[str]:
    """The socket inodes process `pid` holds that listen on TCP (from /proc)."""
    listening = {c.fd for c in psutil.Process(pid).net_connections("tcp") if c.status == "LISTEN"}
    return {os.readlink(f"/proc/{pid}/fd/{fd}") for fd in listening}


def test_each_worker_listens_on_a_socket_of_its_own(workers: WorkersProcess) -> None:
    """SO_REUSEPORT: the kernel spreads connections over the workers' sockets. One shared
    socket let one worker accept a whole burst (93 % of 64 connections in bench/gateway/
    workers.py), leaving the other idle."""
    a, b = (listening_sockets(pid) for pid in workers.worker_pids())
    assert len(a) == len(b) == 1 and a != b

    # 64 keep-alive connections opened at once, as a load balancer's pool does.
    clients = [httpx.Client(timeout=10) for _ in range(64)]
    barrier = threading.Barrier(len(clients))

    def first_request(client: httpx.Client, i: int) -> None:
        barrier.wait()
        response = client.post(f"{workers.url}/v1/chat/completions", json={**BODY, "user": f"b{i}"})
        assert response.status_code == 200, response.text

    threads = [threading.Thread(target=first_request, args=(c, i)) for i, c in enumerate(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    for client in clients:
        client.close()
    assert workers.terminate()
    per_worker = Counter(r for (r,) in stored(workers.store, "replica"))
    assert sum(per_worker.values()) == 64
    assert min(per_worker.get(w, 0) for w in ("host-w0", "host-w1")) >= 16, per_worker


def test_reuse_port_sockets_share_one_port_and_say_when_it_is_taken() -> None:
    sockets = reuse_port_sockets("127.0.0.1", 0, 3)
    try:
        ports = {s.getsockname()[1] for s in sockets}
        assert len(ports) == 1  # port 0: all three on the port the first one got
        (port,) = ports
        taken = socket.socket()
        with pytest.raises(OSError):  # a socket without SO_REUSEPORT cannot join them
            taken.bind(("127.0.0.1", port))
        taken.close()
    finally:
        for s in sockets:
            s.close()
    plain = socket.socket()
    plain.bind(("127.0.0.1", 0))
    plain.listen()
    try:
        with pytest.raises(OSError, match=f"cannot listen on 127.0.0.1:{plain.getsockname()[1]}"):
            reuse_port_sockets("127.0.0.1", plain.getsockname()[1], 2)
    finally:
        plain.close()


def served_after(url: str, since: float, seconds: float) -> list[tuple[float, str]]:
    """(seconds after `since`, variant) of requests sent one by one until `seconds`."""
    answers = []
    i = 0
    while time.monotonic() - since < seconds:
        sent = time.monotonic() - since
        response = ask(url, f"u{i % 24}")
        assert response.status_code == 200, response.text
        answers.append((round(sent, 2), response.headers["x-distill-variant"]))
        i += 1
    return answers


def applied_within(answers: list[tuple[float, str]], variant: str, seconds: float) -> bool:
    """Whether every request sent `seconds` after the change got `variant` (and enough did)."""
    late = [v for sent, v in answers if sent >= seconds]
    return len(late) >= 8 and set(late) == {variant}


def test_admin_through_one_worker_reaches_the_other(workers: WorkersProcess) -> None:
    for i in range(8):  # feedback right after the answer, on a fresh connection: either worker
        served = ask(workers.url, f"fb-{i}")
        assert served.status_code == 200, served.text
        request_id = served.headers["x-distill-request-id"]
        scored = httpx.post(
            f"{workers.url}/v1/feedback", json={"request_id": request_id, "score": 1}, timeout=10
        )
        assert scored.status_code == 201, scored.text

    started = httpx.post(
        f"{workers.url}/admin/rollouts",
        headers=AUTH,
        json={
            "route": "support-triage",
            "adapter": STUDENT,
            "steps": [50, 100],
            "gates": {"min_requests": 1000000},  # held: the operator steers
        },
        timeout=10,
    )
    assert started.status_code == 201, started.text
    promoted = httpx.post(
        f"{workers.url}/admin/rollouts/support-triage/promote", headers=AUTH, timeout=10
    )
    assert promoted.status_code == 200, promoted.text
    since = time.monotonic()  # the change is acknowledged: 2 s for the other worker to apply it
    answers = served_after(workers.url, since, 4.0)
    assert applied_within(answers, STUDENT, 2.0), answers

    back = httpx.post(
        f"{workers.url}/admin/rollouts/support-triage/rollback", headers=AUTH, timeout=10
    )
    assert back.status_code == 200, back.text
    since = time.monotonic()
    answers = served_after(workers.url, since, 4.0)
    assert applied_within(answers, "teacher", 2.0), str(answers)
    assert workers.terminate()

    rows = stored(workers.store, "replica, variant")
    # Both workers served the student and then the teacher again: each applied both changes.
    assert {(r, v) for r, v in rows} >= {
        ("host-w0", STUDENT),
        ("host-w1", STUDENT),
        ("host-w0", "teacher"),
        ("host-w1", "teacher"),
    }, Counter(rows)
    assert stored_decisions(workers.store) == ["start", "promote", "rollback"]  # once each


def stored_decisions(path: Path) -> list[str]:
    with connect(path, read_only=True) as conn:
        return [
            d
            for (d,) in conn.execute(
                "SELECT decision FROM rollout_decisions ORDER BY ts"
            ).fetchall()
        ]


def test_workers_are_replicas_of_the_fleet(
    tmp_path: Path, teacher_server: TeacherServer, postgres_server: PostgresServer
) -> None:
    """With the fleet store, each worker writes the shared lake as a replica of its own."""
    dsn = postgres_server.new_database()
    lake = tmp_path / "lake"

    def edit(cfg: dict[str, Any]) -> None:
        cfg["server"] = {"replica": "host"}
        cfg["store"] = {
            "format": "fleet",
            "path": str(lake),
            "spool_dir": str(tmp_path / "spool"),
            "flush_interval_s": 0.2,
        }

    gw = WorkersProcess(tmp_path, teacher_server.base_url, edit, env={"DISTILL_POSTGRES_DSN": dsn})
    try:
        acked = []
        for i in range(30):
            response = ask(gw.url, f"user-{i}")
            assert response.status_code == 200, response.text
            acked.append(response.headers["x-distill-request-id"])
        assert gw.terminate(), gw.log.read_text()[-2000:]
    finally:
        gw.close()
    store = FleetStore(dsn, str(lake))
    try:
        with store.connect(read_only=True) as conn:
            rows = conn.execute("SELECT id, replica FROM requests").fetchall()
    finally:
        store.close()
    counts = Counter(i for i, _ in rows)
    assert [i for i in acked if counts[i] != 1] == []
    assert {r for _, r in rows} == {"host-w0", "host-w1"}
