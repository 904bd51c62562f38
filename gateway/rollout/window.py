"""Live numbers per (route, variant) since the current rollout step began."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TypedDict

from gateway.rollout.gates import Window

SAMPLE_LIMIT = 10_000  # latencies kept per variant for percentiles


def p95(values: deque[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]


@dataclass
class _Counts:
    requests: int = 0
    errors: int = 0
    latencies: deque[float] = field(default_factory=lambda: deque(maxlen=SAMPLE_LIMIT))
    ttfts: deque[float] = field(default_factory=lambda: deque(maxlen=SAMPLE_LIMIT))
    agreement_sum: float = 0.0
    agreement_pairs: int = 0
    feedback: int = 0
    negative: int = 0


class WindowStats:
    """Counts fed by the proxy's hooks; reset for a route when its rollout changes step."""

    def __init__(self) -> None:
        self._counts: dict[tuple[str, str], _Counts] = {}

    def _at(self, route: str, variant: str) -> _Counts:
        return self._counts.setdefault((route, variant), _Counts())

    def observe(
        self, route: str, variant: str, *, ok: bool, latency_ms: float, ttft_ms: float | None
    ) -> None:
        counts = self._at(route, variant)
        counts.requests += 1
        counts.errors += 0 if ok else 1
        counts.latencies.append(latency_ms)
        if ttft_ms is not None:
            counts.ttfts.append(ttft_ms)

    def observe_agreement(self, route: str, variant: str, score: float) -> None:
        counts = self._at(route, variant)
        counts.agreement_sum += score
        counts.agreement_pairs += 1

    def observe_feedback(self, route: str, variant: str, *, negative: bool) -> None:
        counts = self._at(route, variant)
        counts.feedback += 1
        counts.negative += int(negative)

    def reset(self, route: str) -> None:
        for key in [k for k in self._counts if k[0] == route]:
            del self._counts[key]

    def window(self, route: str, variant: str) -> Window:
        c = self._counts.get((route, variant)) or _Counts()
        return Window(
            requests=c.requests,
            errors=c.errors,
            p95_ms=p95(c.latencies),
            ttft_p95_ms=p95(c.ttfts),
            agreement=c.agreement_sum / c.agreement_pairs if c.agreement_pairs else None,
            agreement_pairs=c.agreement_pairs,
            feedback=c.feedback,
            negative_feedback=c.negative,
        )


SHARED_SAMPLE = 1_000  # latencies each replica shares per variant for the fleet's percentiles


class Shared(TypedDict):
    """One replica's numbers for one variant of a route, as other replicas read them."""

    requests: int
    errors: int
    latencies: list[float]
    ttfts: list[float]
    agreement_sum: float
    agreement_pairs: int
    feedback: int
    negative: int


def export(stats: WindowStats, route: str) -> dict[str, Shared]:
    """This replica's numbers for a route, per variant, in a form other replicas can merge."""
    return {
        variant: Shared(
            requests=c.requests,
            errors=c.errors,
            latencies=list(c.latencies)[-SHARED_SAMPLE:],
            ttfts=list(c.ttfts)[-SHARED_SAMPLE:],
            agreement_sum=c.agreement_sum,
            agreement_pairs=c.agreement_pairs,
            feedback=c.feedback,
            negative=c.negative,
        )
        for (r, variant), c in stats._counts.items()
        if r == route
    }


def merge_by_variant(rows: Iterable[tuple[str, Shared]]) -> dict[str, Window]:
    """(variant, one replica's numbers) rows -> one merged window per variant (pure)."""
    parts: dict[str, list[Shared]] = {}
    for variant, numbers in rows:
        parts.setdefault(variant, []).append(numbers)
    return {variant: merge(shared) for variant, shared in parts.items()}


def merge(parts: list[Shared]) -> Window:
    """One fleet-wide window from every replica's export of one variant (pure)."""
    latencies = deque(v for p in parts for v in p["latencies"])
    ttfts = deque(v for p in parts for v in p["ttfts"])
    pairs = sum(p["agreement_pairs"] for p in parts)
    return Window(
        requests=sum(p["requests"] for p in parts),
        errors=sum(p["errors"] for p in parts),
        p95_ms=p95(latencies),
        ttft_p95_ms=p95(ttfts),
        agreement=sum(p["agreement_sum"] for p in parts) / pairs if pairs else None,
        agreement_pairs=pairs,
        feedback=sum(p["feedback"] for p in parts),
        negative_feedback=sum(p["negative"] for p in parts),
    )
