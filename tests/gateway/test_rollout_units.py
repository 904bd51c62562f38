"""Rollout decisions are pure: gates, state transitions, agreement and windows, table-driven."""

from __future__ import annotations

from collections import deque

import pytest

from gateway.rollout.gates import Gates, Window, evaluate
from gateway.rollout.state import Rollout, RolloutError, check_steps
from gateway.rollout.window import WindowStats, p95

GATES = Gates(min_requests=10, min_seconds=5, min_agreement_pairs=5, min_feedback=4)
TEACHER = Window(
    requests=100, errors=1, p95_ms=100, ttft_p95_ms=50, feedback=10, negative_feedback=1
)
GOOD = Window(requests=20, errors=0, p95_ms=120, ttft_p95_ms=60, agreement=0.97, agreement_pairs=20)


def with_(w: Window, **changes: object) -> Window:
    return Window(**{**w.__dict__, **changes})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("student", "elapsed", "shadow", "action", "reason"),
    [
        (GOOD, 10, True, "advance", "all gates hold"),
        (GOOD, 1, False, "hold", "1/5 s on this step"),
        (with_(GOOD, requests=9), 10, False, "hold", "9/10 student requests"),
        (with_(GOOD, errors=2), 10, False, "rollback", "error rate 0.100 > teacher 0.010"),
        (with_(GOOD, p95_ms=400), 10, False, "rollback", "p95 latency 400.0 ms > 350.0 ms"),
        (with_(GOOD, p95_ms=340), 10, False, "advance", "all gates hold"),  # slack: +250 ms
        (with_(GOOD, ttft_p95_ms=301), 10, False, "rollback", "p95 TTFT 301.0 ms > 300.0 ms"),
        (with_(GOOD, agreement=0.5), 10, True, "rollback", "agreement 0.500 < 0.9"),
        (with_(GOOD, agreement_pairs=3), 10, True, "hold", "3/5 shadow pairs"),
        (with_(GOOD, agreement_pairs=3), 10, False, "advance", "all gates hold"),
        (
            with_(GOOD, feedback=5, negative_feedback=2),
            10,
            False,
            "rollback",
            "negative feedback 0.400 > teacher 0.100",
        ),
        (with_(GOOD, feedback=3, negative_feedback=3), 10, False, "advance", "all gates hold"),
        (with_(GOOD, errors=5, agreement=0.1), 1, False, "rollback", "agreement 0.100"),
    ],
)
def test_evaluate(student: Window, elapsed: float, shadow: bool, action: str, reason: str) -> None:
    verdict = evaluate(GATES, student, TEACHER, elapsed, shadow=shadow)
    assert verdict.action == action
    assert any(reason in r for r in verdict.reasons), verdict.reasons
    assert verdict.numbers["student"]["requests"] == student.requests


@pytest.mark.parametrize("bad", [{"min_requests": -1}, {"min_agreement": 1.5}])
def test_gates_validate(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        Gates(**bad)  # type: ignore[arg-type]


def test_state_walks_shadow_canary_promoted() -> None:
    r = Rollout(id="r", route="x", adapter="a", steps=(1, 50, 100))
    seen = [(r.state, r.weight)]
    while r.active:
        r = r.advance()
        seen.append((r.state, r.weight))
    assert seen == [
        ("shadow", 0),
        ("canary", 1),
        ("canary", 50),
        ("canary", 100),
        ("promoted", 100),
    ]
    assert r.registry_state == "stable"


@pytest.mark.parametrize(
    ("actions", "state", "weight", "registry"),
    [
        (["advance", "rollback"], "rolled_back", 0, "candidate"),
        (["advance", "pause"], "paused", 1, "canary"),
        (["advance", "pause", "resume"], "canary", 1, "canary"),
        (["pause", "resume"], "shadow", 0, "shadow"),
        (["promote"], "promoted", 100, "stable"),
        (["promote", "rollback"], "rolled_back", 0, "candidate"),  # taken off by hand
    ],
)
def test_commands(actions: list[str], state: str, weight: float, registry: str) -> None:
    r = Rollout(id="r", route="x", adapter="a", steps=(1, 100))
    for action in actions:
        r = getattr(r, action)()
    assert (r.state, r.weight, r.registry_state) == (state, weight, registry)


@pytest.mark.parametrize(
    ("actions", "message"),
    [
        (["rollback", "rollback"], "cannot roll back a rollout that is rolled_back"),
        (["resume"], "only a paused one"),
        (["pause", "advance"], "cannot advance"),
        (["promote", "pause"], "cannot pause"),
    ],
)
def test_invalid_commands(actions: list[str], message: str) -> None:
    r = Rollout(id="r", route="x", adapter="a")
    with pytest.raises(RolloutError, match=message):
        for action in actions:
            r = getattr(r, action)()


@pytest.mark.parametrize(
    ("steps", "ok"),
    [
        ((1, 5, 100), True),
        ((100,), True),
        ((), False),
        ((5, 1, 100), False),
        ((1, 50), False),
        ((0, 100), False),
        ((1, 1, 100), False),
    ],
)
def test_check_steps(steps: tuple[float, ...], ok: bool) -> None:
    if ok:
        assert check_steps(steps) == steps
    else:
        with pytest.raises(RolloutError):
            check_steps(steps)


def test_window_counts_and_reset() -> None:
    stats = WindowStats()
    for i in range(100):
        stats.observe("r", "a", ok=i % 10 != 0, latency_ms=float(i), ttft_ms=None)
    stats.observe_agreement("r", "a", 1.0)
    stats.observe_agreement("r", "a", 0.0)
    stats.observe_feedback("r", "a", negative=True)
    w = stats.window("r", "a")
    assert (w.requests, w.errors, w.p95_ms, w.agreement, w.agreement_pairs) == (
        100,
        10,
        95.0,
        0.5,
        2,
    )
    assert (w.feedback, w.negative_feedback, w.ttft_p95_ms) == (1, 1, None)
    stats.reset("r")
    assert stats.window("r", "a").requests == 0
    assert p95(deque()) is None
