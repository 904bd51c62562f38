"""Gold annotations on logged exchanges: corrections win, exclusions drop, `include` undoes them."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

KINDS: tuple[str, ...] = ("correction", "exclude", "include", "label")


@dataclass(frozen=True)
class Gold:
    """What people said about exchanges, resolved to the latest word per (request, kind)."""

    corrections: dict[str, str] = field(default_factory=dict)  # request id -> gold answer
    excluded: frozenset[str] = frozenset()
    labels: dict[str, str] = field(default_factory=dict)  # request id -> label
    rows: int = 0  # annotation rows read

    def answer_for(self, request_id: str) -> str | None:
        return self.corrections.get(request_id)


# (request_id, kind, ts, answer, label) as stored in the `annotations` table.
AnnotationRow = tuple[str, str, datetime, str | None, str | None]


def resolve(rows: Iterable[AnnotationRow]) -> Gold:
    """The latest row per (request_id, kind) wins; an exclude stands unless a later include."""
    latest: dict[tuple[str, str], AnnotationRow] = {}
    count = 0
    for row in rows:
        count += 1
        key = (row[0], row[1])
        if key not in latest or row[2] >= latest[key][2]:
            latest[key] = row
    corrections = {
        rid: answer
        for (rid, kind), (_, _, _, answer, _) in latest.items()
        if kind == "correction" and answer is not None
    }
    excluded = set()
    for (rid, kind), row in latest.items():
        if kind != "exclude":
            continue
        undo = latest.get((rid, "include"))
        if undo is None or undo[2] < row[2]:
            excluded.add(rid)
    labels = {
        rid: label
        for (rid, kind), (_, _, _, _, label) in latest.items()
        if kind == "label" and label is not None
    }
    return Gold(corrections=corrections, excluded=frozenset(excluded), labels=labels, rows=count)
