"""Leakage-safe train/eval split: whole groups (users, sessions, conversations) go to one side."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence


def _rank(group: str, seed: int) -> bytes:
    return hashlib.sha256(f"{seed}\x1f{group}".encode()).digest()


def split_groups(groups: Sequence[str], eval_fraction: float, seed: int) -> list[bool]:
    """is-eval flags per row; every row of a group gets the same flag.

    Groups are visited in the order of a seeded hash (stable when rows are added) and go to
    eval while they fit under the target row count, so one heavy user cannot swamp eval.
    When no group fits, the smallest goes, as long as train keeps at least one group.
    """
    target = eval_fraction * len(groups)
    sizes = Counter(groups)
    if target <= 0 or len(sizes) < 2:
        return [False] * len(groups)
    eval_groups: set[str] = set()
    taken = 0
    for group in sorted(sizes, key=lambda g: _rank(g, seed)):
        if taken + sizes[group] <= target:
            eval_groups.add(group)
            taken += sizes[group]
    if not eval_groups:
        eval_groups.add(min(sizes, key=lambda g: (sizes[g], _rank(g, seed))))
    if len(eval_groups) == len(sizes):
        eval_groups.discard(max(eval_groups, key=lambda g: _rank(g, seed)))
    return [g in eval_groups for g in groups]
