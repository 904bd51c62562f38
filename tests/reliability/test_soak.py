"""The soak's short form: bench/soak.py for DISTILL_SOAK_SECONDS (default 20) at 100 req/s.

The long form is `python bench/soak.py --duration 600` (docs/reliability.md).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bench.soak import slope_per_min, soak, summary

pytestmark = pytest.mark.reliability

SECONDS = float(os.environ.get("DISTILL_SOAK_SECONDS", "20"))
RATE = float(os.environ.get("DISTILL_SOAK_RATE", "100"))


@pytest.mark.parametrize(
    ("points", "slope"),
    [
        ([], 0.0),
        ([(0.0, 5.0)], 0.0),
        ([(0.0, 100.0), (60.0, 100.0)], 0.0),
        ([(0.0, 100.0), (30.0, 101.0), (60.0, 102.0)], 2.0),
        ([(0.0, 10.0), (1.0, 9.0), (2.0, 8.0)], -60.0),
    ],
)
def test_slope_per_min(points: list[tuple[float, float]], slope: float) -> None:
    assert slope_per_min(points) == pytest.approx(slope)


@pytest.mark.slow
def test_soak_short_form_holds(tmp_path: Path) -> None:
    report = soak(tmp_path, duration_s=SECONDS, rate=RATE, concurrency=64)
    print(summary(report))
    assert report.sent == int(SECONDS * RATE)
    assert report.errors == 0, report.error_kinds
    assert report.acknowledged == report.sent
    assert report.queue_drained
    assert (report.rows_missing, report.rows_duplicated) == (0, 0)
    assert report.rows_logged == report.acknowledged
    assert len(report.samples) >= SECONDS * 0.8  # sampled every second throughout
    # A short run's slope is mostly warm-up; the bound that matters here is total growth.
    assert report.rss_end_mb - report.rss_start_mb < 100, summary(report)
