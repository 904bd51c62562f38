"""`GET /admin/rollouts` and the console show, in a fleet, the numbers the gates judge: every
replica's windows merged, labelled as the fleet's (real PostgreSQL, two replicas in-process)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from gateway.rollout import store as records
from gateway.rollout.controller import RolloutController
from gateway.rollout.fleet import step_key
from gateway.rollout.gates import Gates
from gateway.rollout.state import Rollout
from gateway.rollout.window import export
from tests.gateway.test_fleet_leader import ROUTE, STUDENT, replica


def test_status_shows_the_fleet_merged_windows(
    pg_dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a: RolloutController = replica(pg_dsn, tmp_path, "a", monkeypatch).state.gateway.rollouts
    app_b = replica(pg_dsn, tmp_path, "b", monkeypatch)
    b: RolloutController = app_b.state.gateway.rollouts
    assert a.fleet is not None and b.fleet is not None
    rollout = Rollout(id=records.new_id("ro"), route=ROUTE, adapter=STUDENT, gates=Gates())

    async def scenario() -> None:
        assert a.fleet is not None and b.fleet is not None
        await a._transition(rollout, "start", "test", {})
        await b.sync()
        step = step_key(rollout.id, rollout.step_index)
        # a served 3 student and 2 teacher requests (one student error), b 5 and 4.
        for controller, student, teacher in ((a, 3, 2), (b, 5, 4)):
            for i in range(student):
                ok = not (controller is a and i == 0)
                controller.window.observe(ROUTE, STUDENT, ok=ok, latency_ms=10.0, ttft_ms=None)
            for _ in range(teacher):
                controller.window.observe(ROUTE, "teacher", ok=True, latency_ms=5.0, ttft_ms=None)
            assert controller.fleet is not None
            controller.fleet.publish(step, export(controller.window, ROUTE))
        [shown] = await b.status()
        assert shown["window_scope"] == "fleet"
        assert (shown["student"]["requests"], shown["student"]["errors"]) == (8, 1)
        assert shown["teacher"]["requests"] == 6
        # The same numbers the leader's gates judge.
        judged = await a._windows(ROUTE, a.rollouts[ROUTE])
        assert judged[STUDENT].__dict__ == shown["student"]
        # b's own window alone (what it showed before) is not what the gates judge.
        assert b.window.window(ROUTE, STUDENT).requests == 5
        # The console's rollouts page gets the same numbers, with their scope.
        transport = httpx.ASGITransport(app=app_b)
        async with httpx.AsyncClient(transport=transport, base_url="http://b") as client:
            page = await client.get(
                "/ui/api/rollouts", headers={"Authorization": "Bearer fleet-token"}
            )
        assert page.status_code == 200, page.text
        [item] = page.json()["history"]
        assert item["live"]["window_scope"] == "fleet"
        assert item["live"]["student"]["requests"] == 8

    try:
        asyncio.run(scenario())
    finally:
        for controller in (a, b):
            assert controller.fleet is not None
            controller.fleet.release()
            controller.store.close()
