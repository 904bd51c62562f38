"""The overview page's window, bucket width and totals (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from gateway.ui import overview

NOW = datetime(2025, 3, 1, 12, tzinfo=UTC)


@pytest.mark.parametrize(
    ("window", "expected"),
    [("1h", NOW - timedelta(hours=1)), ("24h", NOW - timedelta(days=1)), ("all", None)],
)
def test_window_start(window: str, expected: datetime | None) -> None:
    assert overview.window_start(window, NOW) == expected


def test_unknown_window_names_the_choices() -> None:
    with pytest.raises(ValueError, match="window='2h': use one of 1h, 24h, 7d, all"):
        overview.window_start("2h", NOW)


@pytest.mark.parametrize(
    ("span", "expected"),
    [
        (None, 60),
        (timedelta(0), 60),
        (timedelta(minutes=30), 60),
        (timedelta(hours=2), 300),
        (timedelta(days=1), 1800 * 2),
        (timedelta(days=30), 86400),
        (timedelta(days=3650), 7 * 86400),
    ],
)
def test_bucket_seconds(span: timedelta | None, expected: int) -> None:
    last = None if span is None else NOW + span
    assert overview.bucket_seconds(NOW if span is not None else None, last) == expected


def group(
    variant: str, bucket: Any, requests: int, errors: int, cost: float, teacher: float
) -> Any:
    return {
        "bucket": bucket,
        "route": "r",
        "variant": variant,
        "requests": requests,
        "errors": errors,
        "prompt_tokens": 10,
        "completion_tokens": 5,
        "cost_usd": cost,
        "teacher_cost_usd": teacher,
    }


def test_summary_totals_and_savings() -> None:
    rows = [
        group("teacher", None, 8, 2, 4.0, 4.0),
        group("stu", None, 2, 0, 0.1, 1.0),
        group("stu", NOW, 2, 0, 0.1, 1.0),
    ]
    out = overview.summary(rows, 60, "all", priced=True)
    assert out["totals"]["requests"] == 10 and out["totals"]["error_rate"] == pytest.approx(0.2)
    assert out["totals"]["saved_usd"] == pytest.approx(0.9)
    assert [g["variant"] for g in out["groups"]] == ["teacher", "stu"]
    assert out["series"][0]["saved_usd"] == pytest.approx(0.9)
    unpriced = overview.summary(rows, 60, "all", priced=False)
    assert unpriced["totals"]["saved_usd"] is None
