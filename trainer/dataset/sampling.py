"""Per-user caps, label detection and class balancing; all deterministic given the seed."""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Sequence


def cap_per_user(users: Sequence[str | None], cap: int, seed: int) -> list[bool]:
    """Keep flags: at most `cap` rows per user, a seeded sample of theirs; no user, no cap."""
    by_user: dict[str, list[int]] = defaultdict(list)
    for i, user in enumerate(users):
        if user is not None:
            by_user[user].append(i)
    keep = [True] * len(users)
    for user, indices in by_user.items():
        if len(indices) > cap:
            chosen = set(random.Random(f"{seed}\x1f{user}").sample(indices, cap))
            for i in indices:
                keep[i] = i in chosen
    return keep


def detect_labels(
    answers: Sequence[str], max_labels: int, max_chars: int
) -> tuple[str, ...] | None:
    """The sorted label set when answers look like labels (few, short, repeated), else None."""
    distinct = {a.strip() for a in answers}
    if not 2 <= len(distinct) <= max_labels:
        return None
    if any(len(a) > max_chars or not a for a in distinct):
        return None
    if len(answers) < 2 * len(distinct):
        return None  # too few rows to tell labels from free text
    return tuple(sorted(distinct))


def balance(labels: Sequence[str], mode: str, seed: int) -> list[tuple[int, float | None]]:
    """Rows to write as (index, weight), in index order; a row may repeat when oversampling.

    undersample: every class down to the smallest; oversample: every class up to the largest
    (whole copies first, then a seeded sample); weights: n / (classes * class size), which
    sums to n; none: every row once.
    """
    if mode == "none" or not labels:
        return [(i, None) for i in range(len(labels))]
    by_label: dict[str, list[int]] = defaultdict(list)
    for i, label in enumerate(labels):
        by_label[label].append(i)
    rng = random.Random(seed)
    sizes = {label: len(indices) for label, indices in by_label.items()}
    if mode == "weights":
        n, k = len(labels), len(by_label)
        return [(i, round(n / (k * sizes[label]), 6)) for i, label in enumerate(labels)]
    chosen: list[int] = []
    if mode == "undersample":
        smallest = min(sizes.values())
        for label in sorted(by_label):
            chosen.extend(rng.sample(by_label[label], smallest))
    elif mode == "oversample":
        largest = max(sizes.values())
        for label in sorted(by_label):
            indices = by_label[label]
            whole, rest = divmod(largest, len(indices))
            chosen.extend(indices * whole + rng.sample(indices, rest))
    else:
        raise ValueError(f"unknown balance mode {mode!r}")
    return [(i, None) for i in sorted(chosen)]


def distribution(labels: Sequence[str]) -> dict[str, int]:
    """Label -> count, labels sorted for a stable card."""
    counts = Counter(labels)
    return {label: counts[label] for label in sorted(counts)}
