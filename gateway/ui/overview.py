"""The overview page's numbers (pure): the time window, the bucket width and the totals."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

WINDOWS = {"1h": timedelta(hours=1), "24h": timedelta(days=1), "7d": timedelta(days=7), "all": None}
# Bucket widths to choose from, in seconds: the smallest that keeps a chart under MAX_BUCKETS.
BUCKETS = (60, 300, 900, 3600, 6 * 3600, 86400, 7 * 86400)
MAX_BUCKETS = 60
TOTALS = (
    "requests",
    "errors",
    "prompt_tokens",
    "completion_tokens",
    "cost_usd",
    "teacher_cost_usd",
)


def window_start(window: str, now: datetime) -> datetime | None:
    """When the window `window` (1h, 24h, 7d or all) starts; None for all."""
    if window not in WINDOWS:
        raise ValueError(f"window={window!r}: use one of {', '.join(WINDOWS)}")
    span = WINDOWS[window]
    return None if span is None else now - span


def bucket_seconds(first: datetime | None, last: datetime | None) -> int:
    """The narrowest bucket that splits [first, last] into at most MAX_BUCKETS points."""
    if first is None or last is None:
        return BUCKETS[0]
    span = (last - first).total_seconds()
    return next((b for b in BUCKETS if span / b < MAX_BUCKETS), BUCKETS[-1])


def summary(
    rows: Sequence[dict[str, Any]], bucket_s: int, window: str, *, priced: bool
) -> dict[str, Any]:
    """Split the query's rows into per-variant totals and time series, and add it all up.

    `saved_usd` is what the students' rows would have cost at the teacher's price, less what
    they cost; it is None when no price is configured, so "$0 saved" never means "unknown".
    """
    groups = [dict(r) for r in rows if r.get("bucket") is None]
    series = [dict(r) for r in rows if r.get("bucket") is not None]
    for row in [*groups, *series]:
        row["error_rate"] = row["errors"] / row["requests"] if row["requests"] else 0.0
        row["saved_usd"] = (row["teacher_cost_usd"] or 0.0) - (row["cost_usd"] or 0.0)
    totals: dict[str, Any] = {key: sum(g.get(key) or 0 for g in groups) for key in TOTALS}
    totals["error_rate"] = totals["errors"] / totals["requests"] if totals["requests"] else 0.0
    totals["saved_usd"] = totals["teacher_cost_usd"] - totals["cost_usd"] if priced else None
    return {
        "window": window,
        "bucket_s": bucket_s,
        "priced": priced,
        "totals": totals,
        "groups": groups,
        "series": series,
    }
