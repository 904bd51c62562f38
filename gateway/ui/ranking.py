"""Rank shadow pairs by a disagreement that fits the route's answer type (pure).

- ``label`` routes: a pair disagrees or not; disagreeing pairs are ranked by how common their
  confusion (teacher label -> student label) is, so the student's systematic mistakes come
  first, and the page lists the confusion pairs with their counts;
- ``json`` routes: 1 - the pair's field-level F1, with the fields that differ named per pair
  and counted over all pairs;
- text routes (``exact`` / ``normalized``): the shared measure (gateway.answers) says whether
  a pair agrees; among those that do not, a word-level distance between the normalised
  answers orders near-misses after answers that say something else entirely.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from difflib import SequenceMatcher
from typing import Any

from gateway.answers import agreement, normalize_label, normalize_text, parse_json_object
from gateway.answers import fields as json_fields

TOP = 12  # confusion pairs / fields listed in the summary


def word_distance(a: str, b: str) -> float:
    """1 - the similarity of the two answers' normalised word sequences, in [0, 1]."""
    x, y = normalize_text(a).split(), normalize_text(b).split()
    if x == y:
        return 0.0
    return 1.0 - SequenceMatcher(None, x, y, autojunk=False).ratio()


def differing_fields(teacher: str, student: str) -> list[str]:
    """Dotted paths whose values differ, are missing or extra; ["(not a JSON object)"] when
    the student's answer is not an object."""
    t_obj, s_obj = parse_json_object(teacher), parse_json_object(student)
    if s_obj is None:
        return ["(not a JSON object)"]
    t = json_fields(t_obj) if t_obj is not None else {}
    s = json_fields(s_obj)
    return sorted(path for path in t.keys() | s.keys() if t.get(path) != s.get(path))


def score(teacher: str | None, student: str | None, mode: str) -> dict[str, Any]:
    """One pair's disagreement in [0, 1] and what explains it under `mode`."""
    t, s = teacher or "", student or ""
    if mode == "label":
        pair = (normalize_label(t), normalize_label(s))
        return {"disagreement": float(pair[0] != pair[1]), "confusion": list(pair)}
    if mode == "json":
        return {
            "disagreement": 1.0 - agreement(t, s, "json"),
            "fields": differing_fields(t, s),
        }
    if agreement(t, s, mode) == 1.0:
        return {"disagreement": 0.0}
    # Disagreeing pairs sit in (0.05, 1]: a near miss is never ranked as an agreement.
    return {"disagreement": 0.05 + 0.95 * max(word_distance(t, s), 0.0)}


def rank(
    rows: Sequence[dict[str, Any]],
    mode: str,
    *,
    order: str = "disagreement",
    offset: int = 0,
    limit: int = 50,
    confusion: tuple[str, str] | None = None,
) -> dict[str, Any]:
    """Score every row (newest first in), order them and cut one page, with the summary.

    `confusion` (label routes: teacher label, student label) keeps only the pairs with that
    confusion on the page; the summary still describes every pair.
    """
    scored = [
        {**row, **score(row.get("primary_answer"), row.get("student_answer"), mode)} for row in rows
    ]
    confusions = Counter(
        tuple(r["confusion"]) for r in scored if mode == "label" and r["disagreement"] > 0
    )
    field_misses = Counter(f for r in scored if mode == "json" for f in r.get("fields", ()))
    if order == "disagreement":
        # Stable sorts: newest first stays the tie-break.
        if mode == "label":
            scored.sort(key=lambda r: -confusions.get(tuple(r["confusion"]), 0))
        scored.sort(key=lambda r: -r["disagreement"])
    for r in scored:
        if mode == "label" and r["disagreement"] > 0:
            r["confusion_count"] = confusions[tuple(r["confusion"])]
    n = len(scored)
    shown = scored
    if confusion is not None:
        wanted = [normalize_label(confusion[0]), normalize_label(confusion[1])]
        shown = [r for r in scored if r.get("confusion") == wanted]
    return {
        "mode": mode,
        "scored": n,
        "mean_disagreement": sum(r["disagreement"] for r in scored) / n if n else None,
        "agreement_rate": sum(1 for r in scored if r["disagreement"] == 0) / n if n else None,
        "confusions": [
            {"teacher": t, "student": s, "count": c} for (t, s), c in confusions.most_common(TOP)
        ],
        "fields": [{"field": f, "count": c} for f, c in field_misses.most_common(TOP)],
        "shown": len(shown),
        "rows": shown[offset : offset + limit],
    }
