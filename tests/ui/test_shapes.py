"""Data-size curves and gate series from store rows (pure)."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.ui.shapes import data_curves, gate_series


def sweep(sweep_id: str, percent: Any, **metrics: Any) -> dict[str, Any]:
    return {
        "kind": "sweep",
        "sweep_id": sweep_id,
        "config": {"data_percent": percent},
        "metrics": metrics,
    }


@pytest.mark.parametrize(
    ("runs", "expected"),
    [
        ([], []),
        ([sweep("s", 50, accuracy=0.5)], []),  # one point is not a curve
        (
            [
                sweep("s", 100, accuracy=0.9),
                sweep("s", 10, accuracy=0.4),
                sweep("s", 50, accuracy=0.7),
            ],
            [
                {
                    "sweep_id": "s",
                    "metric": "accuracy",
                    "points": [(10.0, 0.4), (50.0, 0.7), (100.0, 0.9)],
                }
            ],
        ),
        (  # same percent twice (another knob): the best of them
            [
                sweep("s", 10, token_f1=0.2),
                sweep("s", 10, token_f1=0.3),
                sweep("s", 100, token_f1=0.8),
            ],
            [{"sweep_id": "s", "metric": "token_f1", "points": [(10.0, 0.3), (100.0, 0.8)]}],
        ),
        (  # the sweep chose by agreement: its curve is agreement, not accuracy
            [
                {
                    **sweep("a", 10, accuracy=0.9, agreement=0.3),
                    "config": {"data_percent": 10, "sweep_metric": "agreement"},
                },
                {
                    **sweep("a", 100, accuracy=0.95, agreement=0.8),
                    "config": {"data_percent": 100, "sweep_metric": "agreement"},
                },
            ],
            [{"sweep_id": "a", "metric": "agreement", "points": [(10.0, 0.3), (100.0, 0.8)]}],
        ),
        ([{"kind": "eval", "config": {"data_percent": 10}, "metrics": {"accuracy": 1}}], []),
        ([sweep("s", None, accuracy=0.1), sweep("s", 20, accuracy=0.2)], []),
        (  # JSON columns as the store returns them
            [
                {
                    "kind": "sweep",
                    "sweep_id": "j",
                    "config": '{"data_percent": 25}',
                    "metrics": '{"exact_match": 0.5}',
                },
                {
                    "kind": "sweep",
                    "sweep_id": "j",
                    "config": '{"data_percent": 75}',
                    "metrics": '{"exact_match": 0.6}',
                },
            ],
            [{"sweep_id": "j", "metric": "exact_match", "points": [(25.0, 0.5), (75.0, 0.6)]}],
        ),
    ],
)
def test_data_curves(runs: list[dict[str, Any]], expected: list[dict[str, Any]]) -> None:
    assert data_curves(runs) == expected


def decision(
    ts: str, name: str, agreement: float | None, error_rate: float, p95: float
) -> dict[str, Any]:
    return {
        "ts": ts,
        "decision": name,
        "numbers": {
            "student": {"agreement": agreement, "error_rate": error_rate, "p95_ms": p95},
            "teacher": {"error_rate": 0.01, "p95_ms": 100.0},
        },
    }


def test_gate_series_values_against_thresholds() -> None:
    rollout = {
        "gates": {
            "min_agreement": 0.9,
            "max_error_rate_increase": 0.02,
            "latency_ratio": 1.5,
            "latency_slack_ms": 250.0,
        },
        "decisions": [
            {"ts": "t0", "decision": "start", "numbers": {}},  # no numbers: no point
            decision("t1", "advance", 0.95, 0.0, 120.0),
            decision("t2", "rollback", 0.5, 0.2, 400.0),
        ],
    }
    live = {
        "student": {"agreement": None, "error_rate": 0.0, "p95_ms": 90.0},
        "teacher": {"error_rate": 0.0, "p95_ms": 80.0},
    }
    agreement, errors, latency = gate_series(rollout, live)
    assert [(p["decision"], p["value"], p["threshold"]) for p in agreement["points"]] == [
        ("advance", 0.95, 0.9),
        ("rollback", 0.5, 0.9),
    ]  # live has no agreement yet
    assert [p["threshold"] for p in errors["points"]] == pytest.approx([0.03, 0.03, 0.02])
    # p95 limit: max(teacher * ratio, teacher + slack)
    assert [p["threshold"] for p in latency["points"]] == [350.0, 350.0, 330.0]
    assert latency["points"][-1]["ts"] == "now"
