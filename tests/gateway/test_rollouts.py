"""Rollouts end to end through real gateways: promotion, rollback, a killed student, restarts.

The students here are the project's teacher server answering with a chosen error rate: these
tests are about the gateway's control loop. tests/serving/test_rollout_vllm.py runs the same
loop with real adapters on vLLM.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from click.testing import CliRunner

from distill_demo.teacher.server import TeacherSettings
from distill_demo.teacher.task import SYSTEM_PROMPT, generate_ticket
from gateway.cli import main as distill
from gateway.store.db import connect
from tests.fixtures.servers import (
    GatewayFactory,
    GatewayServer,
    TeacherServer,
    free_port,
    start_teacher,
)

TOKEN = "admin-secret-token"
FAST_GATES = [
    "--gate",
    "min_requests=15",
    "--gate",
    "min_seconds=0",
    "--gate",
    "min_agreement_pairs=10",
]


@pytest.fixture
def admin_token(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("DISTILL_ADMIN_TOKEN", TOKEN)
    return TOKEN


def student_server(error_rate: float, name: str) -> Iterator[TeacherServer]:
    server = start_teacher(TeacherSettings(error_rate=error_rate, seed=name, models=(name,)))
    yield server
    server.thread.stop()


@pytest.fixture
def good_student() -> Iterator[TeacherServer]:
    yield from student_server(0.0, "good-student")


@pytest.fixture
def bad_student() -> Iterator[TeacherServer]:
    yield from student_server(0.8, "bad-student")


def with_students(base_url: str) -> Any:
    def edit(cfg: dict[str, Any]) -> None:
        cfg["upstreams"]["students"] = {
            "base_url": base_url,
            "timeout_s": 5,
            "connect_timeout_s": 1,
        }
        cfg["routes"][0]["student_upstream"] = "students"
        cfg["rollout"] = {"tick_s": 0.1, "shadow_rate": 1.0}

    return edit


def cli(*args: str) -> str:
    result = CliRunner().invoke(distill, list(args), catch_exceptions=False)
    if result.exit_code != 0:
        raise AssertionError(result.output)
    return result.output


def admin(server: GatewayServer, *args: str) -> list[str]:
    return [*args, "--gateway", server.url, "--admin-token", TOKEN]


def status(server: GatewayServer) -> dict[str, Any]:
    return httpx.get(
        f"{server.url}/admin/rollouts", headers={"Authorization": f"Bearer {TOKEN}"}
    ).json()


def traffic(server: GatewayServer, until: Any, *, limit_s: float = 60) -> list[str]:
    """Send tickets from many users until `until(status)` holds; return the answers' variants."""
    app = openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0)
    import random

    rng = random.Random(0)
    variants = []
    deadline = time.monotonic() + limit_s
    i = 0
    while time.monotonic() < deadline:
        ticket, _ = generate_ticket(rng)
        raw = app.chat.completions.with_raw_response.create(
            model="gpt-4o",
            user=f"user-{i}",
            messages=[
                {"role": "system", "content": SYSTEM_PROMPT},
                {"role": "user", "content": ticket},
            ],
        )
        assert raw.http_response.status_code == 200
        variants.append(raw.headers["x-distill-variant"])
        i += 1
        if i % 10 == 0 and until(status(server)):
            return variants
    raise AssertionError(f"condition not reached; status: {status(server)}")


def final_state(state: str) -> Any:
    return lambda s: s["history"] and s["history"][0]["state"] == state


@pytest.mark.slow
def test_good_student_goes_shadow_to_100_by_itself(
    make_gateway: GatewayFactory, good_student: TeacherServer, admin_token: str
) -> None:
    server = make_gateway(with_students(good_student.base_url))
    out = cli(
        *admin(
            server,
            "rollout",
            "start",
            "--route",
            "support-triage",
            "--adapter",
            "good-student",
            "--steps",
            "10,50,100",
            *FAST_GATES,
        )
    )
    assert "is in shadow" in out
    variants = traffic(server, final_state("promoted"))
    assert "good-student" in variants
    [item] = status(server)["history"]
    decisions = [(d["decision"], d["to_step"]) for d in item["decisions"]]
    assert decisions == [
        ("start", -1),
        ("advance", 0),
        ("advance", 1),
        ("advance", 2),
        ("promote", 2),
    ]
    assert all(d["numbers"]["student"]["requests"] >= 15 for d in item["decisions"][1:])
    after = traffic(server, lambda s: True)
    assert set(after) == {"good-student"}  # 100% on the student now
    assert status(server)["active"][0]["window_scope"] == "process"  # one gateway's numbers
    registry = server.gateway.metrics.registry
    labels = {"route": "support-triage", "adapter": "good-student"}
    assert registry.get_sample_value("distill_rollout_state", {**labels, "state": "promoted"}) == 1
    assert (
        registry.get_sample_value(
            "distill_route_weight", {"route": "support-triage", "variant": "good-student"}
        )
        == 1.0
    )
    assert (
        registry.get_sample_value(
            "distill_shadow_agreement_score_count",
            {"route": "support-triage", "variant": "good-student"},
        )
        >= 10
    )
    # Shadow rows are logged beside their primary, under one pair id.
    server.flush()
    with connect(server.store_path, read_only=True) as conn:
        pairs = conn.execute(
            "SELECT count(*) FROM requests s JOIN requests p ON s.pair_id = p.id "
            "WHERE s.kind = 'shadow' AND p.kind = 'primary' AND s.variant = 'good-student' "
            "AND p.variant = 'teacher'"
        ).fetchone()
    assert pairs is not None and pairs[0] >= 10
    assert "promote" in cli(*admin(server, "rollout", "status"))


@pytest.mark.slow
def test_bad_student_is_rolled_back_in_shadow_with_its_numbers(
    make_gateway: GatewayFactory, bad_student: TeacherServer, admin_token: str
) -> None:
    server = make_gateway(with_students(bad_student.base_url))
    # The series exists at 0 before the first rollback, so alerts on increase() see it.
    assert (
        server.gateway.metrics.registry.get_sample_value(
            "distill_rollout_decisions_total", {"route": "support-triage", "decision": "rollback"}
        )
        == 0
    )
    cli(
        *admin(
            server,
            "rollout",
            "start",
            "--route",
            "support-triage",
            "--adapter",
            "bad-student",
            *FAST_GATES,
        )
    )
    variants = traffic(server, final_state("rolled_back"))
    assert set(variants) == {"teacher"}  # shadow never served a client
    [item] = status(server)["history"]
    rollback = item["decisions"][-1]
    assert rollback["decision"] == "rollback" and "agreement" in rollback["reason"]
    assert rollback["numbers"]["student"]["agreement"] < 0.5
    assert (
        server.gateway.metrics.registry.get_sample_value(
            "distill_rollout_decisions_total", {"route": "support-triage", "decision": "rollback"}
        )
        == 1
    )
    text = cli(*admin(server, "rollout", "status"))
    assert "rolled_back" in text and "agreement" in text
    # The shadow's answers are mirror traffic: live traffic shows the teacher's alone.
    answered: dict[tuple[str, str, str], float] = {}
    for family in server.gateway.metrics.registry.collect():
        for sample in family.samples:
            if sample.name == "distill_requests_total":
                labels = sample.labels
                key = (labels["traffic"], labels["variant"], labels["status"][0])
                answered[key] = answered.get(key, 0) + sample.value
    assert sum(v for k, v in answered.items() if k[:2] == ("mirror", "bad-student")) >= 10
    assert {k for k, v in answered.items() if k[0] == "live" and v} == {("live", "teacher", "2")}


@pytest.mark.slow
def test_student_killed_mid_canary_falls_back_and_rolls_back(
    make_gateway: GatewayFactory, tmp_path: Any, admin_token: str
) -> None:
    port = free_port()
    student = subprocess.Popen(
        [sys.executable, "-m", "gateway", "teacher", "--port", str(port), "--model", "killable"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(100):
            try:
                httpx.get(f"http://127.0.0.1:{port}/health", timeout=0.5)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        server = make_gateway(with_students(f"http://127.0.0.1:{port}/v1"))
        cli(
            *admin(
                server,
                "rollout",
                "start",
                "--route",
                "support-triage",
                "--adapter",
                "killable",
                "--steps",
                "50,100",
                "--gate",
                "min_requests=10",
                "--gate",
                "min_seconds=3",
                "--gate",
                "min_agreement_pairs=5",
            )
        )
        traffic(server, lambda s: s["active"] and s["active"][0]["state"] == "canary")
        student.kill()
        student.wait()
        variants = traffic(server, final_state("rolled_back"))  # every request answered 200
        assert "teacher" in variants
    finally:
        student.kill()
    [item] = status(server)["history"]
    assert item["decisions"][-1]["decision"] == "rollback"
    assert "error rate" in item["decisions"][-1]["reason"]
    fallbacks = server.gateway.metrics.registry.get_sample_value(
        "distill_fallbacks_total",
        {"route": "support-triage", "variant": "killable", "reason": "upstream_unreachable"},
    )
    assert fallbacks is not None and fallbacks >= 1
    server.flush()
    with connect(server.store_path, read_only=True) as conn:
        rows = conn.execute(
            "SELECT f.variant, f.status, s.status FROM requests f JOIN requests s "
            "ON f.pair_id = s.id WHERE f.kind = 'fallback'"
        ).fetchall()
    assert rows and all(r == ("teacher", 200, 502) for r in rows)  # both attempts logged


def test_rollout_state_survives_a_restart(
    make_gateway: GatewayFactory, good_student: TeacherServer, admin_token: str
) -> None:
    first = make_gateway(with_students(good_student.base_url))
    cli(
        *admin(
            first,
            "rollout",
            "start",
            "--route",
            "support-triage",
            "--adapter",
            "good-student",
            "--gate",
            "min_requests=100000",
        )
    )
    cli(*admin(first, "rollout", "pause", "--route", "support-triage"))
    first.stop()
    second = make_gateway(with_students(good_student.base_url))
    [active] = status(second)["active"]
    assert (active["adapter"], active["state"]) == ("good-student", "paused")
    out = cli(*admin(second, "rollout", "resume", "--route", "support-triage"))
    assert "is shadow at 0%" in out
    out = cli(*admin(second, "rollout", "promote", "--route", "support-triage"))
    assert "is promoted at 100%" in out


def test_bad_rollout_requests_are_refused_and_change_nothing(
    make_gateway: GatewayFactory, good_student: TeacherServer, admin_token: str
) -> None:
    server = make_gateway(with_students(good_student.base_url))
    url, auth = f"{server.url}/admin/rollouts", {"Authorization": f"Bearer {TOKEN}"}
    cases = [
        ({"route": "nope", "adapter": "good-student"}, 404, "no route named 'nope'"),
        ({"route": "support-triage", "adapter": "missing"}, 409, "is not loaded on upstream"),
        (
            {"route": "support-triage", "adapter": "good-student", "steps": [5, 1]},
            400,
            "steps must rise",
        ),
        (
            {"route": "support-triage", "adapter": "good-student", "gates": {"speed": 1}},
            400,
            "unknown gate(s) speed",
        ),
    ]
    for body, code, message in cases:
        r = httpx.post(url, json=body, headers=auth)
        assert r.status_code == code and message in r.json()["error"]["message"], r.text
    assert status(server) == {"active": [], "history": []}
    ok = httpx.post(url, json={"route": "support-triage", "adapter": "good-student"}, headers=auth)
    assert ok.status_code == 201
    again = httpx.post(
        url, json={"route": "support-triage", "adapter": "good-student"}, headers=auth
    )
    assert again.status_code == 409 and "already has a rollout" in again.text
    assert httpx.post(url, json={}, headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert httpx.get(url).status_code == 401
    result = CliRunner().invoke(distill, admin(server, "rollout", "rollback", "--route", "x"))
    assert result.exit_code != 0 and "has no rollout" in result.output


def test_admin_api_is_off_without_a_token(
    gateway_server: GatewayServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DISTILL_ADMIN_TOKEN", raising=False)
    r = httpx.get(f"{gateway_server.url}/admin/rollouts", headers={"Authorization": "Bearer x"})
    assert r.status_code == 403 and "DISTILL_ADMIN_TOKEN" in r.json()["error"]["message"]


def test_feedback_is_stored_and_counted(gateway_server: GatewayServer) -> None:
    app = openai.OpenAI(base_url=gateway_server.base_url, api_key="k", max_retries=0)
    raw = app.chat.completions.with_raw_response.create(
        model="gpt-4o", messages=[{"role": "user", "content": "refund please"}]
    )
    request_id = raw.headers["x-distill-request-id"]
    url = f"{gateway_server.base_url}/feedback"
    r = httpx.post(
        url, json={"request_id": request_id, "score": 0, "label": "billing", "comment": "wrong"}
    )
    assert r.status_code == 201
    assert httpx.post(url, json={"request_id": "req_nope", "score": 1}).status_code == 404
    assert httpx.post(url, json={"request_id": request_id}).status_code == 400
    assert httpx.post(url, json={"request_id": request_id, "score": "x"}).status_code == 400
    gateway_server.flush()
    with connect(gateway_server.store_path, read_only=True) as conn:
        rows = conn.execute("SELECT request_id, score, label FROM feedback").fetchall()
    assert rows == [(request_id, 0.0, "billing")]
    assert (
        gateway_server.gateway.metrics.registry.get_sample_value(
            "distill_feedback_total",
            {"route": "support-triage", "variant": "teacher", "sentiment": "negative"},
        )
        == 1
    )


@pytest.mark.slow
def test_a_promoted_student_is_the_baseline_for_the_next(
    make_gateway: GatewayFactory, admin_token: str
) -> None:
    students = start_teacher(TeacherSettings(models=("v1", "v2")))
    try:
        server = make_gateway(with_students(students.base_url))
        start = ["rollout", "start", "--route", "support-triage", "--steps", "50,100", *FAST_GATES]
        cli(*admin(server, *start, "--adapter", "v1"))
        traffic(server, final_state("promoted"))
        cli(*admin(server, *start, "--adapter", "v2"))
        [active] = status(server)["active"]
        assert active["baseline"] == "v1"
        during = traffic(server, final_state("promoted"))
        assert "teacher" not in during and {"v1", "v2"} <= set(during)  # v1 yields to v2
        assert set(traffic(server, lambda s: True)) == {"v2"}
        v2, v1 = status(server)["history"]
        assert (v2["adapter"], v2["state"], v1["adapter"], v1["state"]) == (
            "v2",
            "promoted",
            "v1",
            "replaced",
        )
        # The replaced adapter's series are gone: no promoted=1 for v1 forever.
        registry = server.gateway.metrics.registry
        state = {"route": "support-triage", "adapter": "v1", "state": "promoted"}
        assert registry.get_sample_value("distill_rollout_state", state) is None
        assert registry.get_sample_value("distill_rollout_state", {**state, "adapter": "v2"}) == 1

        server.stop()  # the promoted student keeps the route across a restart
        server = make_gateway(with_students(students.base_url))
        assert set(traffic(server, lambda s: True)) == {"v2"}
        out = cli(*admin(server, "rollout", "rollback", "--route", "support-triage"))
        assert "is rolled_back at 0%" in out
        # Rolling back v2 restores the baseline it replaced; rolling back v1 the teacher.
        assert set(traffic(server, lambda s: True)) == {"v1"}
        cli(*admin(server, "rollout", "rollback", "--route", "support-triage"))
        assert set(traffic(server, lambda s: True)) == {"teacher"}
        decisions = [
            (h["adapter"], d["decision"])
            for h in status(server)["history"]
            for d in h["decisions"]
            if d["decision"] in ("restore", "rollback")
        ]
        assert sorted(decisions) == [("v1", "restore"), ("v1", "rollback"), ("v2", "rollback")]
        again = httpx.post(
            f"{server.url}/admin/rollouts/support-triage/rollback",
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
        assert again.status_code == 409 and "already serves the teacher" in again.text
    finally:
        students.thread.stop()


@pytest.mark.slow
def test_a_promoted_student_can_be_taken_back_after_a_later_rollout_ends(
    make_gateway: GatewayFactory, admin_token: str
) -> None:
    """Promote v1, start v2 and roll it back: v1 keeps the route; a second rollback takes
    v1 off too (it used to answer 409 "cannot roll back a rollout that is rolled_back")."""
    students = start_teacher(TeacherSettings(models=("v1", "v2")))
    try:
        server = make_gateway(with_students(students.base_url))
        start = ["rollout", "start", "--route", "support-triage", "--steps", "50,100", *FAST_GATES]
        cli(*admin(server, *start, "--adapter", "v1"))
        traffic(server, final_state("promoted"))
        cli(*admin(server, *start, "--adapter", "v2"))
        cli(*admin(server, "rollout", "rollback", "--route", "support-triage"))
        assert set(traffic(server, lambda s: True)) == {"v1"}  # the failed candidate's baseline
        out = cli(*admin(server, "rollout", "rollback", "--route", "support-triage"))
        assert "v1" in out and "is rolled_back at 0%" in out
        assert set(traffic(server, lambda s: True)) == {"teacher"}
        registry = server.gateway.metrics.registry
        weight = {"route": "support-triage", "variant": "teacher"}
        assert registry.get_sample_value("distill_route_weight", weight) == 1.0
    finally:
        students.thread.stop()
