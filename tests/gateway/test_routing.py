"""Routing is pure: route lookup, sticky keys and weighted assignment, table-driven."""

from __future__ import annotations

import pytest

from gateway.config import parse_config
from gateway.routing import TEACHER, choose, find_route, sticky_key, student_weights, unit_point

CONFIG = parse_config(
    {
        "upstreams": {"t": {"base_url": "http://127.0.0.1:1/v1"}},
        "routes": [
            {
                "name": "a",
                "match": ["gpt-4o", "gpt-4o-mini"],
                "teacher": {"upstream": "t", "model": "gpt-4o"},
                "students": [{"name": "s1", "upstream": "t", "model": "s1", "weight": 5}],
            },
            {
                "name": "b",
                "match": ["claude"],
                "teacher": {"upstream": "t", "model": "c"},
                "default": True,
            },
        ],
    },
    environ={},
)


@pytest.mark.parametrize(
    ("model", "route"),
    [("gpt-4o", "a"), ("gpt-4o-mini", "a"), ("claude", "b"), ("unknown", "b"), (None, "b")],
)
def test_find_route(model: str | None, route: str) -> None:
    found = find_route(CONFIG, model)
    assert found is not None and found.name == route


def test_find_route_without_default_is_none() -> None:
    config = CONFIG.model_copy(update={"routes": CONFIG.routes[:1]})
    assert find_route(config, "unknown") is None


@pytest.mark.parametrize(
    ("user", "session", "key"),
    [
        ("u1", "s1", "user:u1"),
        ("", "s1", "session:s1"),
        (None, None, "request:r1"),
        (42, None, "request:r1"),
        (None, "s2", "session:s2"),
    ],
)
def test_sticky_key(user: object, session: str | None, key: str) -> None:
    assert sticky_key(user, session, "r1") == key


@pytest.mark.parametrize(
    ("weights", "point", "expected"),
    [
        ([], 0.0, TEACHER),
        ([("s1", 0)], 0.0, TEACHER),
        ([("s1", 5)], 0.0499, "s1"),
        ([("s1", 5)], 0.05, TEACHER),
        ([("s1", 100)], 0.9999, "s1"),
        ([("s1", 10), ("s2", 20)], 0.15, "s2"),
        ([("s1", 10), ("s2", 20)], 0.30, TEACHER),
    ],
)
def test_choose(weights: list[tuple[str, float]], point: float, expected: str) -> None:
    assert choose(weights, point) == expected


def test_overrides_win_over_config_weights() -> None:
    route = CONFIG.routes[0]
    assert student_weights(route) == [("s1", 5)]
    assert student_weights(route, {"s1": 50}) == [("s1", 50)]


@pytest.mark.parametrize(
    "weights", [[("s1", 1)], [("s1", 5)], [("s1", 25), ("s2", 50)], [("s1", 50)], [("s1", 100)]]
)
def test_shares_over_10000_users_are_within_two_points(weights: list[tuple[str, float]]) -> None:
    users = [f"user-{i}" for i in range(10_000)]
    counts: dict[str, int] = {}
    for user in users:
        name = choose(weights, unit_point("route", sticky_key(user, None, "x")))
        counts[name] = counts.get(name, 0) + 1
    expected = dict(weights)
    expected[TEACHER] = 100 - sum(w for _, w in weights)
    for name, weight in expected.items():
        share = 100 * counts.get(name, 0) / len(users)
        assert abs(share - weight) <= 2, (name, share, weight)


def test_users_keep_their_variant_and_only_move_forward_as_weights_grow() -> None:
    users = [f"user-{i}" for i in range(2_000)]
    previous: dict[str, str] = {}
    for weight in (1, 5, 25, 50, 100):
        now = {u: choose([("s1", weight)], unit_point("r", f"user:{u}")) for u in users}
        again = {u: choose([("s1", weight)], unit_point("r", f"user:{u}")) for u in users}
        assert now == again  # sticky while weights are unchanged
        assert all(now[u] == "s1" for u, v in previous.items() if v == "s1")  # monotonic
        previous = now
    assert set(previous.values()) == {"s1"}
