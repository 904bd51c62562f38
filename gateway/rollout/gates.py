"""Rollout gates: compare a student's window of traffic with the teacher's and decide (pure)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Gates:
    """When a step may advance, and what rolls it back. Each student number is compared with
    the teacher's over the same window."""

    min_requests: int = 50  # student requests (or shadow pairs) before any decision
    min_seconds: float = 30.0  # and at least this long on the step
    max_error_rate_increase: float = 0.02  # student error rate <= teacher's + this
    latency_ratio: float = 1.5  # student p95 <= max(teacher p95 * ratio, teacher p95 + slack)
    latency_slack_ms: float = 250.0
    ttft_ratio: float = 1.5
    ttft_slack_ms: float = 250.0
    min_agreement: float = 0.9  # mean shadow agreement with the teacher
    min_agreement_pairs: int = 20
    max_negative_feedback_increase: float = 0.05  # negative-feedback rate vs the teacher's
    min_feedback: int = 10  # feedback needed before that gate counts

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if not isinstance(value, int | float) or not math.isfinite(value):
                raise ValueError(f"gate {name} must be a finite number, got {value!r}")
            if value < 0:
                raise ValueError(f"gate {name} must be >= 0, got {value}")
        if self.min_agreement > 1:
            raise ValueError(f"gate min_agreement is a share in [0, 1], got {self.min_agreement}")


@dataclass(frozen=True)
class Window:
    """One variant's numbers since the step started."""

    requests: int = 0
    errors: int = 0
    p95_ms: float | None = None
    ttft_p95_ms: float | None = None
    agreement: float | None = None  # mean over shadow pairs (student side only)
    agreement_pairs: int = 0
    feedback: int = 0
    negative_feedback: int = 0

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    @property
    def negative_rate(self) -> float:
        return self.negative_feedback / self.feedback if self.feedback else 0.0


@dataclass(frozen=True)
class Verdict:
    action: str  # advance | hold | rollback
    reasons: list[str]
    numbers: dict[str, Any] = field(default_factory=dict)


def _limit(teacher: float | None, ratio: float, slack: float) -> float | None:
    return None if teacher is None else max(teacher * ratio, teacher + slack)


def evaluate(
    gates: Gates, student: Window, teacher: Window, elapsed_s: float, *, shadow: bool
) -> Verdict:
    """Advance when every gate holds, roll back when any fails, else hold for more data."""
    numbers: dict[str, Any] = {
        "elapsed_s": round(elapsed_s, 3),
        "student": asdict(student) | {"error_rate": student.error_rate},
        "teacher": asdict(teacher) | {"error_rate": teacher.error_rate},
    }
    if student.requests < gates.min_requests:
        return Verdict(
            "hold", [f"{student.requests}/{gates.min_requests} student requests"], numbers
        )
    failures: list[str] = []
    allowed_errors = teacher.error_rate + gates.max_error_rate_increase
    if student.error_rate > allowed_errors:
        failures.append(
            f"error rate {student.error_rate:.3f} > teacher {teacher.error_rate:.3f} "
            f"+ {gates.max_error_rate_increase}"
        )
    limit = _limit(teacher.p95_ms, gates.latency_ratio, gates.latency_slack_ms)
    if limit is not None and student.p95_ms is not None and student.p95_ms > limit:
        failures.append(f"p95 latency {student.p95_ms:.1f} ms > {limit:.1f} ms allowed")
    limit = _limit(teacher.ttft_p95_ms, gates.ttft_ratio, gates.ttft_slack_ms)
    if limit is not None and student.ttft_p95_ms is not None and student.ttft_p95_ms > limit:
        failures.append(f"p95 TTFT {student.ttft_p95_ms:.1f} ms > {limit:.1f} ms allowed")
    if student.agreement_pairs >= gates.min_agreement_pairs and student.agreement is not None:
        if student.agreement < gates.min_agreement:
            failures.append(
                f"agreement {student.agreement:.3f} < {gates.min_agreement} "
                f"over {student.agreement_pairs} pairs"
            )
    elif shadow:
        return Verdict(
            "hold",
            [f"{student.agreement_pairs}/{gates.min_agreement_pairs} shadow pairs"],
            numbers,
        )
    if student.feedback >= gates.min_feedback:
        allowed = teacher.negative_rate + gates.max_negative_feedback_increase
        if student.negative_rate > allowed:
            failures.append(
                f"negative feedback {student.negative_rate:.3f} > teacher "
                f"{teacher.negative_rate:.3f} + {gates.max_negative_feedback_increase}"
            )
    if failures:
        return Verdict("rollback", failures, numbers)
    if elapsed_s < gates.min_seconds:
        return Verdict("hold", [f"{elapsed_s:.0f}/{gates.min_seconds:.0f} s on this step"], numbers)
    return Verdict("advance", ["all gates hold"], numbers)
