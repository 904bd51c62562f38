"""Fleet mode with real parts: three `distill serve` processes on one PostgreSQL and DuckLake.

One rollout controller leads; a rollout started on one replica is served by the others within
2 s; an operator's rollback through another reaches all; the leader killed with -9 hands over;
every acknowledged request id lands in the log exactly once across restarts and kill -9.
"""

from __future__ import annotations

import json
import os
import random
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from distill_demo.teacher.server import TeacherSettings
from distill_demo.teacher.task import SYSTEM_PROMPT, generate_ticket
from gateway.store.fleet import FleetStore
from tests.fixtures.postgres import PostgresServer, restart_postgres, stop_postgres
from tests.fixtures.servers import TeacherServer, start_teacher
from tests.reliability.procs import BODY, GatewayProcess
from trainer.dataset.cli import dataset

pytestmark = [pytest.mark.reliability, pytest.mark.slow]

TOKEN = "fleet-admin-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
STUDENT = "fleet-student"


@pytest.fixture
def student() -> Iterator[TeacherServer]:
    server = start_teacher(TeacherSettings(seed=STUDENT, models=(STUDENT,)))
    yield server
    server.thread.stop()


@pytest.fixture
def fleet(
    tmp_path: Path,
    postgres_server: PostgresServer,
    teacher_server: TeacherServer,
    student: TeacherServer,
) -> Iterator[Callable[[str], GatewayProcess]]:
    """Start replicas of one fleet by name; all stop after the test."""
    dsn = postgres_server.new_database()
    lake = tmp_path / "lake"
    started: list[GatewayProcess] = []

    def edit(name: str, students: str, lease_s: float | None) -> Callable[[dict[str, Any]], None]:
        def apply(cfg: dict[str, Any]) -> None:
            cfg["store"] = {
                "format": "fleet",
                "path": str(lake),
                "spool_dir": str(tmp_path / f"spool-{name}"),
                "flush_interval_s": 0.2,
            }
            cfg["server"] = {"replica": name}
            cfg["upstreams"]["students"] = {"base_url": students, "timeout_s": 5}
            cfg["routes"][0]["student_upstream"] = "students"
            cfg["rollout"] = {"tick_s": 0.2, "shadow_rate": 1.0}
            if lease_s is not None:
                cfg["rollout"]["leader_lease_s"] = lease_s

        return apply

    def start(
        name: str, students: str | None = None, *, lease_s: float | None = None
    ) -> GatewayProcess:
        """A replica; `students`: its own student upstream (default: the good student)."""
        env = {"DISTILL_POSTGRES_DSN": dsn, "DISTILL_ADMIN_TOKEN": TOKEN}
        apply = edit(name, students or student.base_url, lease_s)
        gw = GatewayProcess(tmp_path, teacher_server.base_url, apply, name=name, env=env)
        started.append(gw)
        return gw

    start.store = FleetStore(dsn, str(lake))  # type: ignore[attr-defined]
    yield start
    for gw in started:
        gw.close()
    start.store.close()  # type: ignore[attr-defined]


def rollouts(gw: GatewayProcess) -> list[dict[str, Any]]:
    active: list[dict[str, Any]] = httpx.get(
        f"{gw.url}/admin/rollouts", headers=AUTH, timeout=5
    ).json()["active"]
    return active


def states(gw: GatewayProcess) -> list[str]:
    return [r["state"] for r in rollouts(gw)]


def in_state(gw: GatewayProcess, state: str) -> Callable[[], bool]:
    """A check that the replica's one rollout is in `state` (for wait_for)."""
    return lambda: states(gw) == [state]


def wait_for(check: Callable[[], bool], timeout_s: float, what: str) -> float:
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > timeout_s:
            raise AssertionError(f"not within {timeout_s}s: {what}")
        time.sleep(0.05)
    return time.monotonic() - start


def leaders(replicas: list[GatewayProcess]) -> list[str]:
    return [
        gw.config["server"]["replica"]
        for gw in replicas
        if gw.alive() and gw.metrics().get("distill_rollout_leader") == 1.0
    ]


def variant_of(gw: GatewayProcess, user: str) -> str:
    response = httpx.post(f"{gw.url}/v1/chat/completions", json={**BODY, "user": user}, timeout=10)
    assert response.status_code == 200, response.text
    return response.headers["x-distill-variant"]


def test_one_controller_for_the_fleet(fleet: Callable[[str], GatewayProcess]) -> None:
    a, b, c = fleet("a"), fleet("b"), fleet("c")
    replicas = [a, b, c]
    wait_for(lambda: len(leaders(replicas)) == 1, 10, "one leader")

    started = httpx.post(
        f"{a.url}/admin/rollouts",
        headers=AUTH,
        json={
            "route": "support-triage",
            "adapter": STUDENT,
            "steps": [50, 100],
            "gates": {"min_requests": 1000000},
        },  # held in shadow: the operator steers
        timeout=10,
    )
    assert started.status_code == 201, started.text
    for gw in (b, c):  # the others apply it within 2 s
        took = wait_for(
            in_state(gw, "shadow"),
            2.0,
            f"{gw.config['server']['replica']} sees the rollout",
        )
        assert took < 2.0
        print(f"rollout start seen by {gw.config['server']['replica']} after {took:.2f} s")
        assert rollouts(gw)[0]["window_scope"] == "fleet"  # the numbers the gates judge

    promoted = httpx.post(
        f"{b.url}/admin/rollouts/support-triage/promote", headers=AUTH, timeout=10
    )
    assert promoted.status_code == 200, promoted.text
    for gw in replicas:
        wait_for(in_state(gw, "promoted"), 2.0, "promoted everywhere")
        assert {variant_of(gw, f"u{i}") for i in range(5)} == {STUDENT}

    back = httpx.post(f"{c.url}/admin/rollouts/support-triage/rollback", headers=AUTH, timeout=10)
    assert back.status_code == 200, back.text
    for gw in replicas:  # the operator's rollback through C reaches all
        wait_for(in_state(gw, "rolled_back"), 2.0, "rolled back")
        assert {variant_of(gw, f"u{i}") for i in range(5)} == {"teacher"}

    store = fleet.store  # type: ignore[attr-defined]
    with store.connect(read_only=True) as conn:
        decisions = [
            d
            for (d,) in conn.execute(
                "SELECT decision FROM rollout_decisions ORDER BY ts"
            ).fetchall()
        ]
    assert decisions == ["start", "promote", "rollback"]  # once each, for the whole fleet

    (leader,) = leaders(replicas)
    victim = {"a": a, "b": b, "c": c}[leader]
    victim.kill9()
    rest = [gw for gw in replicas if gw is not victim]
    took = wait_for(lambda: len(leaders(rest)) == 1, 10, "a new leader after kill -9")
    print(f"new leader {leaders(rest)} {took:.2f} s after kill -9 of {leader}")


def test_gates_decide_once_per_step_on_fleet_traffic(
    fleet: Callable[[str], GatewayProcess],
) -> None:
    replicas = [fleet("a"), fleet("b"), fleet("c")]
    gates = {"min_requests": 12, "min_seconds": 0, "min_agreement_pairs": 6, "min_agreement": 0.0}
    started = httpx.post(
        f"{replicas[1].url}/admin/rollouts",
        headers=AUTH,
        json={"route": "support-triage", "adapter": STUDENT, "steps": [50, 100], "gates": gates},
        timeout=10,
    )
    assert started.status_code == 201, started.text
    i = 0

    def promoted() -> bool:
        nonlocal i
        for gw in replicas:  # traffic spread over the fleet: no replica alone has enough
            variant_of(gw, f"user-{i}")
            i += 1
        # Every replica (an empty list is not promoted): the others see a change only once
        # it is written (the leader's own status shows it a moment before its decision row).
        return all([r["state"] for r in rollouts(gw)] == ["promoted"] for gw in replicas)

    wait_for(promoted, 60, "promotion on fleet-wide numbers")
    with fleet.store.connect(read_only=True) as conn:  # type: ignore[attr-defined]
        steps = conn.execute(
            "SELECT decision, from_step, to_step FROM rollout_decisions ORDER BY ts"
        ).fetchall()
    # One decision per step for the whole fleet: shadow -> 50 % -> 100 % -> promoted.
    assert steps == [
        ("start", -1, -1),
        ("advance", -1, 0),
        ("advance", 0, 1),
        ("promote", 1, 1),
    ]


def test_every_acknowledged_row_once_across_restarts_and_kill9(
    fleet: Callable[[str], GatewayProcess],
) -> None:
    replicas = [fleet("a"), fleet("b"), fleet("c")]
    acknowledged: list[str] = []
    stop = threading.Event()
    lock = threading.Lock()

    def load(gw: GatewayProcess) -> None:
        with httpx.Client(timeout=5) as client:
            while not stop.is_set():
                try:
                    r = client.post(f"{gw.url}/v1/chat/completions", json=BODY)
                except httpx.TransportError:
                    time.sleep(0.05)  # restarting: not acknowledged
                    continue
                if r.status_code == 200:
                    with lock:
                        acknowledged.append(r.headers["x-distill-request-id"])

    threads = [threading.Thread(target=load, args=(gw,)) for gw in replicas]
    for t in threads:
        t.start()
    try:
        for _ in range(2):
            time.sleep(1.0)
            replicas[0].terminate()
            replicas[0].start()  # a graceful restart
            time.sleep(1.0)
            replicas[1].kill9()  # a crash: its spool is replayed when it comes back
            replicas[1].start()
        time.sleep(1.0)
    finally:
        stop.set()
        for t in threads:
            t.join()
    for gw in replicas:
        gw.wait_drained()
    with fleet.store.connect(read_only=True) as conn:  # type: ignore[attr-defined]
        rows = [r for (r,) in conn.execute("SELECT id FROM requests").fetchall()]
    print(f"{len(acknowledged)} acknowledged, {len(rows)} rows, {len(set(rows))} distinct")
    assert len(acknowledged) > 100
    missing = set(acknowledged) - set(rows)
    assert not missing
    assert len(rows) == len(set(rows))  # nothing twice


def test_feedback_and_corrections_through_any_replica_reach_the_build(
    fleet: Callable[[str], GatewayProcess], tmp_path: Path
) -> None:
    a, b, c = fleet("a"), fleet("b"), fleet("c")
    rng = random.Random(7)
    ids = []
    for i in range(30):
        ticket, _ = generate_ticket(rng)
        body = {
            "model": "gpt-4o",
            "user": f"user-{i}",
            "messages": [
                {"role": "system", "content": SYSTEM_PROMPT},
                {"role": "user", "content": ticket},
            ],
        }
        r = httpx.post(f"{a.url}/v1/chat/completions", json=body, timeout=10)
        assert r.status_code == 200, r.text
        ids.append(r.headers["x-distill-request-id"])
    bad = httpx.post(  # B never served it: it finds the row in the fleet's log (waiting
        # for A's writer to flush it if need be)
        f"{b.url}/v1/feedback",
        json={"request_id": ids[0], "score": 0},
        timeout=10,
    )
    assert bad.status_code == 201, bad.text
    fixed = httpx.post(
        f"{c.url}/admin/annotations",
        headers=AUTH,
        json={"request_id": ids[1], "kind": "correction", "answer": "billing"},
        timeout=10,
    )
    assert fixed.status_code == 201, fixed.text
    b.wait_drained()
    store = fleet.store  # type: ignore[attr-defined]
    result = CliRunner().invoke(
        dataset,
        ["build", "--store", fleet_url(store), "--route", "support-triage",
         "--out", str(tmp_path / "ds"), "--json", "--no-near-duplicate"],
        catch_exceptions=False,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    card = json.loads(result.stdout)
    assert card["filters"]["negative_feedback"]["removed"] == 1
    assert card["annotations"]["corrections_applied"] == 1


def fleet_url(store: FleetStore) -> str:
    """The `--store` URL of a fleet store (as a user passes it to the CLI)."""
    fields = dict(part.split("=", 1) for part in store.dsn.split())
    return (
        f"postgresql://{fields['user']}@{fields['host']}:{fields['port']}/{fields['dbname']}"
        f"?data_path={store.data_path}"
    )


def test_postgres_down_at_start_and_mid_traffic_loses_nothing(
    fleet: Callable[[str], GatewayProcess], postgres_server: PostgresServer
) -> None:
    a = fleet("a")
    acknowledged = []

    def send(gw: GatewayProcess, n: int) -> None:
        for _ in range(n):
            r = httpx.post(f"{gw.url}/v1/chat/completions", json=BODY, timeout=10)
            assert r.status_code == 200, r.text  # clients are answered throughout
            acknowledged.append(r.headers["x-distill-request-id"])

    send(a, 20)
    stop_postgres(postgres_server)
    try:
        send(a, 20)  # mid-traffic
        b = fleet("b")  # at start
        send(b, 20)
        time.sleep(1.0)
        assert a.metrics()["distill_fleet_sync_errors_total"] > 0
    finally:
        restart_postgres(postgres_server)
    for gw in (a, b):
        gw.wait_drained()
    with fleet.store.connect(read_only=True) as conn:  # type: ignore[attr-defined]
        rows = [r for (r,) in conn.execute("SELECT id FROM requests").fetchall()]
    assert sorted(rows) == sorted(acknowledged)  # every acknowledged row, once
    wait_for(lambda: len(leaders([a, b])) == 1, 10, "one leader again")


def test_two_replicas_under_one_name_stay_apart(
    fleet: Callable[[str], GatewayProcess],
) -> None:
    first = fleet("same")
    second = GatewayProcess(  # the same replica name, another spool (another pod or host)
        first.config_path.parent,
        first.config["upstreams"]["teacher"]["base_url"],
        lambda cfg: cfg.update(
            {k: v for k, v in first.config.items() if k != "store"}
            | {
                "store": {
                    **first.config["store"],
                    "spool_dir": first.config["store"]["spool_dir"] + "-2",
                }
            }
        ),
        name="same-2",
        env={k: first.env[k] for k in ("DISTILL_POSTGRES_DSN", "DISTILL_ADMIN_TOKEN")},
    )
    try:
        ids = []
        for gw in (first, second) * 15:
            r = httpx.post(f"{gw.url}/v1/chat/completions", json=BODY, timeout=10)
            assert r.status_code == 200
            ids.append(r.headers["x-distill-request-id"])
        for gw in (first, second):
            gw.wait_drained()
        with fleet.store.connect(read_only=True) as conn:  # type: ignore[attr-defined]
            rows = conn.execute("SELECT id, replica FROM requests").fetchall()
        assert sorted(r[0] for r in rows) == sorted(ids)
        assert {r[1] for r in rows} == {"same"}
        assert len(leaders([first, second])) == 1
    finally:
        second.close()


def test_a_student_failing_on_one_replica_is_rolled_back_everywhere(
    fleet: Callable[[str, str | None], GatewayProcess],
) -> None:
    broken = start_teacher(TeacherSettings(error_rate=1.0, seed=STUDENT, models=(STUDENT,)))
    try:
        replicas = [fleet("a", broken.base_url), fleet("b", None), fleet("c", None)]
        gates = {"min_requests": 12, "min_seconds": 0, "min_agreement_pairs": 6}
        started = httpx.post(
            f"{replicas[2].url}/admin/rollouts",
            headers=AUTH,
            json={"route": "support-triage", "adapter": STUDENT, "gates": gates},
            timeout=10,
        )
        assert started.status_code == 201, started.text
        i = 0

        def rolled_back() -> bool:
            nonlocal i
            for gw in replicas:
                variant_of(gw, f"user-{i}")
                i += 1
            return all([r["state"] for r in rollouts(gw)] == ["rolled_back"] for gw in replicas)

        wait_for(rolled_back, 60, "rollback on every replica")
        with fleet.store.connect(read_only=True) as conn:  # type: ignore[attr-defined]
            decisions = conn.execute(
                "SELECT decision FROM rollout_decisions ORDER BY ts"
            ).fetchall()
        assert decisions == [("start",), ("rollback",)]
        for gw in replicas:
            assert {variant_of(gw, f"after-{n}") for n in range(5)} == {"teacher"}
    finally:
        broken.thread.stop()


def test_a_frozen_leader_loses_leadership_and_decides_nothing_after(
    fleet: Callable[..., GatewayProcess],
) -> None:
    lease_s = 2.0
    a, b = fleet("a", lease_s=lease_s), fleet("b", lease_s=lease_s)
    by_name = {"a": a, "b": b}
    wait_for(lambda: len(leaders([a, b])) == 1, 10, "one leader")
    assert a.metrics()["distill_fleet_replica"] == 1.0  # what the fleet alerts count over
    (name,) = leaders([a, b])
    frozen, other = by_name[name], by_name["b" if name == "a" else "a"]
    other_name = other.config["server"]["replica"]
    os.kill(frozen.pid, signal.SIGSTOP)  # its loop stops; its connections stay up
    try:
        took = wait_for(lambda: leaders([other]) == [other_name], lease_s + 10, "takeover")
        print(f"{other_name} leads {took:.2f} s after {name} was frozen (lease {lease_s} s)")
        assert took < lease_s + 3
        gates = {"min_requests": 6, "min_seconds": 0, "min_agreement_pairs": 3}
        started = httpx.post(
            f"{other.url}/admin/rollouts",
            headers=AUTH,
            json={"route": "support-triage", "adapter": STUDENT, "steps": [100], "gates": gates},
            timeout=10,
        )
        assert started.status_code == 201, started.text
        i = 0

        def promoted() -> bool:
            nonlocal i
            variant_of(other, f"user-{i}")
            i += 1
            return [r["state"] for r in rollouts(other)] == ["promoted"]

        wait_for(promoted, 60, "the new leader decides while the old one is frozen")
    finally:
        os.kill(frozen.pid, signal.SIGCONT)

    def stepped_down() -> bool:
        m = frozen.metrics()
        return (
            m.get("distill_rollout_leader") == 0.0
            and m.get("distill_rollout_leadership_lost_total") == 1.0
        )

    wait_for(stepped_down, 5, "the old leader sees it lost the lock")
    assert "lost rollout leadership and stops deciding" in frozen.log.read_text()
    wait_for(  # it started before the rollout: it has none until its reload
        lambda: [r["state"] for r in rollouts(frozen)] == ["promoted"], 2.0, "it follows"
    )
    time.sleep(1.0)
    assert leaders([a, b]) == [other_name]  # one leader at a time
    with fleet.store.connect(read_only=True) as conn:  # type: ignore[attr-defined]
        decisions = conn.execute(
            "SELECT decision, from_step, to_step FROM rollout_decisions ORDER BY ts"
        ).fetchall()
    assert decisions == [("start", -1, -1), ("advance", -1, 0), ("promote", 0, 0)]
