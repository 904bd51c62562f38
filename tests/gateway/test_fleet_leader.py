"""The fleet leader's lease, on a real PostgreSQL: a leader that stops touching its lock session
(a stalled loop, a stopped process) loses it, another takes over, and the old one decides
nothing once it runs again."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from gateway.app import create_app
from gateway.config import DistillConfig
from gateway.metrics import Metrics
from gateway.rollout import fleet as fleet_module
from gateway.rollout import store as records
from gateway.rollout.controller import RolloutController
from gateway.rollout.coordinator import Coordinator
from gateway.rollout.fleet import FleetCoordinator, step_key
from gateway.rollout.gates import Gates
from gateway.rollout.state import Rollout
from gateway.rollout.window import WindowStats, export
from tests.fixtures.servers import gateway_config_dict

LEASE_S = 1.0
ROUTE = "support-triage"
STUDENT = "stu"


def wait_until_leading(coordinator: Coordinator, limit_s: float) -> float:
    started = time.monotonic()
    while not coordinator.hold_leadership():
        assert time.monotonic() - started < limit_s, f"{coordinator.instance} never led"
        time.sleep(0.05)
    return time.monotonic() - started


def test_a_touched_lease_holds_and_an_untouched_one_moves(pg_dsn: str) -> None:
    a = FleetCoordinator(pg_dsn, "a", lease_s=LEASE_S)
    b = FleetCoordinator(pg_dsn, "b", lease_s=LEASE_S)
    a.setup()
    try:
        assert a.hold_leadership()
        for _ in range(8):  # 2 s of touches, twice the lease: a stays the leader
            time.sleep(0.25)
            assert a.hold_leadership()
            assert not b.hold_leadership()
        assert a.confirm()
        # a stops touching (its loop hangs): PostgreSQL ends the session after the lease
        took = wait_until_leading(b, LEASE_S + 3)
        print(f"b leads {took:.2f} s after a stopped touching (lease {LEASE_S} s)")
        assert took < LEASE_S + 2
        assert (a.leading, a.lost) == (True, 0)  # a has not run since: it cannot know yet
        assert not a.confirm()  # the first thing it asks when it runs again
        assert (a.leading, a.lost) == (False, 1)
        assert not a.hold_leadership()  # b holds it now
        assert b.confirm()
    finally:
        a.release()
        b.release()


def test_a_server_without_the_setting_still_elects_and_says_there_is_no_lease(
    pg_dsn: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """PostgreSQL before 14 has no idle_session_timeout: leadership works, without a lease."""
    monkeypatch.setattr(fleet_module, "LEASE_SETTING", "distill_no_such_setting")
    a = FleetCoordinator(pg_dsn, "a", lease_s=LEASE_S)
    a.setup()
    try:
        assert a.hold_leadership() and a.confirm()
        a.release()
        assert a.hold_leadership()
    finally:
        a.release()
    errors = [
        r.getMessage() for r in caplog.records if "has no idle_session_timeout" in r.getMessage()
    ]
    assert len(errors) == 1 and "upgrade PostgreSQL to 14" in errors[0]


def replica(pg_dsn: str, tmp_path: Path, name: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A fleet replica's app, not serving: its rollout controller, loaded, is driven by hand."""
    monkeypatch.setenv("DISTILL_POSTGRES_DSN", pg_dsn)
    monkeypatch.setenv("DISTILL_ADMIN_TOKEN", "fleet-token")
    raw = gateway_config_dict("http://127.0.0.1:9/v1", tmp_path / "lake")
    raw["store"] = {"format": "fleet", "path": str(tmp_path / "lake")}
    raw["upstreams"]["students"] = {"base_url": "http://127.0.0.1:9/v1"}
    raw["routes"][0]["student_upstream"] = "students"
    config = DistillConfig.model_validate(raw)
    fleet = FleetCoordinator(pg_dsn, name, lease_s=LEASE_S)
    app = create_app(config, metrics=Metrics(), start_writer=False, fleet=fleet)
    controller: RolloutController = app.state.gateway.rollouts
    controller.load()
    return app


def publish_passing_window(controller: RolloutController, rollout: Rollout) -> None:
    """Every replica's numbers that pass the gates: the shadow step is ready to advance."""
    stats = WindowStats()
    for _ in range(3):
        stats.observe(ROUTE, STUDENT, ok=True, latency_ms=10.0, ttft_ms=None)
        stats.observe(ROUTE, "teacher", ok=True, latency_ms=10.0, ttft_ms=None)
        stats.observe_agreement(ROUTE, STUDENT, 1.0)
    assert controller.fleet is not None
    controller.fleet.publish(step_key(rollout.id, rollout.step_index), export(stats, ROUTE))


def test_a_leader_past_its_lease_decides_nothing_and_the_new_one_decides_once(
    pg_dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old: RolloutController = replica(pg_dsn, tmp_path, "old", monkeypatch).state.gateway.rollouts
    new: RolloutController = replica(pg_dsn, tmp_path, "new", monkeypatch).state.gateway.rollouts
    assert old.fleet is not None and new.fleet is not None
    gates = Gates(min_requests=1, min_seconds=0, min_agreement_pairs=1, min_agreement=0.5)
    rollout = Rollout(id=records.new_id("ro"), route=ROUTE, adapter=STUDENT, gates=gates)

    async def scenario() -> None:
        assert old.fleet is not None and new.fleet is not None
        assert old.fleet.hold_leadership()
        await old._transition(rollout, "start", "test", {})
        publish_passing_window(old, rollout)
        await new.sync()
        # The old leader's loop stalls past its lease: PostgreSQL ends its lock session
        # and the other replica takes the lock.
        await asyncio.to_thread(wait_until_leading, new.fleet, LEASE_S + 3)
        assert await old.tick() == []  # it runs again, a decision ready: it steps down
        assert (old.fleet.leading, old.fleet.lost) == (False, 1)
        old._count_leadership(old.fleet)
        assert old.metrics.registry.get_sample_value("distill_rollout_leader") == 0.0
        lost = old.metrics.registry.get_sample_value("distill_rollout_leadership_lost_total")
        assert lost == 1.0
        decided = await new.tick()  # the new leader decides, once
        assert [verdict.action for _, verdict in decided] == ["advance"]

    asyncio.run(scenario())
    assert decisions_written(old, new) == [("start", -1, -1), ("advance", -1, 0)]


def test_a_leader_frozen_after_its_confirmation_is_fenced_off(
    pg_dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The window the confirmation leaves: the old leader confirmed (just before it froze)
    and writes after the new leader took over. Its leadership epoch is stale: the write's
    fence matches nothing, nothing is written, it steps down; the new leader decides once."""
    old: RolloutController = replica(pg_dsn, tmp_path, "old", monkeypatch).state.gateway.rollouts
    new: RolloutController = replica(pg_dsn, tmp_path, "new", monkeypatch).state.gateway.rollouts
    assert old.fleet is not None and new.fleet is not None
    gates = Gates(min_requests=1, min_seconds=0, min_agreement_pairs=1, min_agreement=0.5)
    rollout = Rollout(id=records.new_id("ro"), route=ROUTE, adapter=STUDENT, gates=gates)

    async def scenario() -> None:
        assert old.fleet is not None and new.fleet is not None
        assert old.fleet.hold_leadership()
        assert isinstance(old.fleet, FleetCoordinator) and isinstance(new.fleet, FleetCoordinator)
        first = old.fleet.epoch
        await old._transition(rollout, "start", "test", {})
        publish_passing_window(old, rollout)
        await new.sync()
        await asyncio.to_thread(wait_until_leading, new.fleet, LEASE_S + 3)
        assert new.fleet.epoch == (first or 0) + 1
        monkeypatch.setattr(old.fleet, "confirm", lambda: True)  # it passed, then it froze
        assert await old.tick() == []
        assert (old.fleet.leading, old.fleet.lost) == (False, 1)
        assert [r.state for r in old.rollouts.values()] == ["shadow"]  # its state taken back
        assert old.proxy.overrides.weights[ROUTE] == {STUDENT: 0}
        decisions = old.metrics.registry.get_sample_value(
            "distill_rollout_decisions_total", {"route": ROUTE, "decision": "advance"}
        )
        assert decisions == 0.0  # not counted: not taken
        decided = await new.tick()
        assert [verdict.action for _, verdict in decided] == ["advance"]

    asyncio.run(scenario())
    assert decisions_written(old, new) == [("start", -1, -1), ("advance", -1, 0)]


def decisions_written(*replicas: RolloutController) -> list[Any]:
    """Release the replicas and read the decisions the fleet wrote (one store for all)."""
    for r in replicas:
        assert r.fleet is not None
        r.fleet.release()
    with replicas[0].store.connect(read_only=True) as conn:
        decisions = conn.execute(
            "SELECT decision, from_step, to_step FROM rollout_decisions ORDER BY ts"
        ).fetchall()
    for r in replicas:
        r.store.close()
    return decisions
