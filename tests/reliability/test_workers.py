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
from prometheus_client.multiprocess import MultiProcessCollector

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


def late_others(answers: list[tuple[float, str]], variant: str, seconds: float) -> str:
    late = [(t, v) for t, v in answers if t >= seconds]
    wrong = [(t, v) for t, v in late if v != variant]
    return f"{len(late)} sent after {seconds} s, not {variant}: {wrong}"


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
    assert applied_within(answers, STUDENT, 2.0), late_others(answers, STUDENT, 2.0)

    back = httpx.post(
        f"{workers.url}/admin/rollouts/support-triage/rollback", headers=AUTH, timeout=10
    )
    assert back.status_code == 200, back.text
    since = time.monotonic()
    answers = served_after(workers.url, since, 4.0)
    assert applied_within(answers, "teacher", 2.0), late_others(answers, "teacher", 2.0)
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


def live_requests(samples: dict[str, float]) -> float:
    """distill_requests_total over every live series of one scrape."""
    return sum(
        v
        for k, v in samples.items()
        if k.startswith("distill_requests_total{") and 'traffic="live"' in k
    )


def counters(samples: dict[str, float]) -> dict[str, float]:
    return {k: v for k, v in samples.items() if k.split("{")[0].endswith(("_total", "_count"))}


def metrics_dir_of(pid: int) -> Path:
    """The workers' metric files (PROMETHEUS_MULTIPROC_DIR in worker `pid`'s environment)."""
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    (path,) = [e.split(b"=", 1)[1] for e in environ if e.startswith(b"PROMETHEUS_MULTIPROC_DIR=")]
    return Path(path.decode())


def requests_in(path: Path) -> float:
    """distill_requests_total in one worker's counter file."""
    merged = MultiProcessCollector.merge([str(path)])  # type: ignore[no-untyped-call]
    (family,) = [m for m in merged if m.name == "distill_requests"]
    return float(sum(s.value for s in family.samples if s.labels.get("traffic") == "live"))


def test_every_scrape_is_the_whole_host(workers: WorkersProcess) -> None:
    """/metrics, whichever worker answers it, shows every worker's values merged
    (prometheus_client's multiprocess mode): counters summed, also over a killed worker's."""
    deadline = time.monotonic() + 10
    while not workers.leader_pids():
        assert time.monotonic() < deadline, workers.log.read_text()[-2000:]
        time.sleep(0.1)
    sent = 40
    for i in range(sent):  # fresh connections: the kernel spreads them over both workers
        assert ask(workers.url, f"m-{i}").status_code == 200
    files = metrics_dir_of(workers.worker_pids()[0])
    per_worker = {pid: requests_in(files / f"counter_{pid}.db") for pid in workers.worker_pids()}
    assert sum(per_worker.values()) == sent and min(per_worker.values()) > 0, per_worker

    last: dict[str, float] = {}

    def scrape_checked() -> dict[str, float]:
        samples = workers.metrics()
        assert samples["distill_rollout_leader"] == 1  # the host leads, on every scrape
        assert samples["distill_requests_in_flight"] >= 0
        assert not any('pid="' in k for k in samples)
        for key, value in counters(last).items():
            assert samples.get(key, 0) >= value, key  # a counter never goes down
        last.update(counters(samples))
        return samples

    for _ in range(8):  # fresh connections: both workers answer scrapes
        assert live_requests(scrape_checked()) == sent  # the host's, not one worker's share

    (victim,) = workers.leader_pids()
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while victim in workers.worker_pids() or len(workers.worker_pids()) < 2:
        assert time.monotonic() < deadline, "the killed worker was not restarted"
        time.sleep(0.1)
    workers.wait_workers()
    deadline = time.monotonic() + 10
    while len(workers.leader_pids()) < 2:  # another worker took the rollouts over
        assert time.monotonic() < deadline, workers.log.read_text()[-2000:]
        time.sleep(0.1)
    time.sleep(0.5)  # the new leader's next poll sets its gauge
    # The dead leader's live gauges are gone (else the leader sum would read 2); its
    # counters stay in the sum.
    assert list(files.glob(f"gauge_live*_{victim}.db")) == []
    assert (files / f"counter_{victim}.db").exists()
    for _ in range(4):
        assert live_requests(scrape_checked()) == sent
    for i in range(10):
        assert ask(workers.url, f"after-{i}").status_code == 200
    for _ in range(4):
        assert live_requests(scrape_checked()) == sent + 10
    assert workers.terminate()
    assert not files.exists()  # the supervisor removed its metric files
