"""Pure parts of the fleet controller: merging replicas' windows, step keys, the DSN."""

from __future__ import annotations

import pytest

from gateway.rollout.fleet import step_key, with_keepalive
from gateway.rollout.gates import Window
from gateway.rollout.window import Shared, WindowStats, export, merge


def shared(requests: int, errors: int, latencies: list[float], pairs: int = 0) -> Shared:
    return Shared(
        requests=requests,
        errors=errors,
        latencies=latencies,
        ttfts=[],
        agreement_sum=0.5 * pairs,
        agreement_pairs=pairs,
        feedback=0,
        negative=0,
    )


@pytest.mark.parametrize(
    ("parts", "expected"),
    [
        ([], Window()),
        (
            [shared(10, 1, [float(i) for i in range(1, 11)], pairs=4)],
            Window(requests=10, errors=1, p95_ms=10.0, agreement=0.5, agreement_pairs=4),
        ),
        (  # two replicas: counts add up, the percentile is over both samples
            [shared(5, 0, [1.0] * 5), shared(15, 3, [100.0] * 15, pairs=2)],
            Window(requests=20, errors=3, p95_ms=100.0, agreement=0.5, agreement_pairs=2),
        ),
    ],
)
def test_merge(parts: list[Shared], expected: Window) -> None:
    assert merge(parts) == expected


def test_export_then_merge_is_the_local_window() -> None:
    stats = WindowStats()
    for i in range(40):
        stats.observe("r", "teacher", ok=i % 10 != 0, latency_ms=float(i), ttft_ms=None)
        stats.observe("other", "teacher", ok=True, latency_ms=1.0, ttft_ms=None)
    stats.observe_agreement("r", "student", 0.5)
    exported = export(stats, "r")
    assert set(exported) == {"teacher", "student"}
    for variant, numbers in exported.items():
        assert merge([numbers]) == stats.window("r", variant)


@pytest.mark.parametrize(
    ("rollout_id", "step", "key"), [("ro_1", -1, "ro_1:-1"), ("ro_1", 0, "ro_1:0")]
)
def test_step_key(rollout_id: str, step: int, key: str) -> None:
    assert step_key(rollout_id, step) == key


@pytest.mark.parametrize(
    "dsn", ["host=db port=5432 user=u", "postgresql://u@db:5432/d?sslmode=require"]
)
def test_keepalives_are_added_and_the_dsn_kept(dsn: str) -> None:
    out = with_keepalive(dsn)
    assert "keepalives=1" in out and "keepalives_idle=2" in out
    assert "host=db" in out and "port=5432" in out and "user=u" in out
