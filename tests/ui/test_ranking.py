"""Ranking shadow pairs by a disagreement that fits the route's answer type (pure)."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.ui import ranking


def pair(i: int, teacher: str, student: str) -> dict[str, Any]:
    return {"shadow_id": f"s{i}", "primary_answer": teacher, "student_answer": student}


@pytest.mark.parametrize(
    ("teacher", "student", "mode", "expected"),
    [
        ("billing", "Billing.", "label", {"disagreement": 0.0, "confusion": ["billing"] * 2}),
        ("billing", "technical", "label", {"disagreement": 1.0}),
        ('{"a": 1, "b": 2}', '{"a": 1, "b": 2}', "json", {"disagreement": 0.0, "fields": []}),
        ('{"a": 1, "b": 2}', '{"a": 1, "b": 3}', "json", {"disagreement": 0.5, "fields": ["b"]}),
        ('{"a": 1}', '{"a": 1, "c": 1}', "json", {"fields": ["c"]}),
        ('{"a": 1}', "not json", "json", {"disagreement": 1.0, "fields": ["(not a JSON object)"]}),
        ("Reset your password.", "reset your password", "normalized", {"disagreement": 0.0}),
        ("the cat sat", "the cat sat", "exact", {"disagreement": 0.0}),
        ("a b c d", "x y z w", "normalized", {"disagreement": 1.0}),
    ],
)
def test_score(teacher: str, student: str, mode: str, expected: dict[str, Any]) -> None:
    got = ranking.score(teacher, student, mode)
    for key, value in expected.items():
        assert got[key] == pytest.approx(value) if isinstance(value, float) else got[key] == value


def test_near_miss_ranks_below_a_different_answer_but_above_agreement() -> None:
    near = ranking.score("reset the router then retry", "reset the router and retry", "normalized")
    far = ranking.score("reset the router then retry", "refund issued", "normalized")
    assert 0.0 < near["disagreement"] < far["disagreement"] <= 1.0


def test_labels_rank_the_most_common_confusion_first() -> None:
    rows = [
        pair(1, "billing", "account"),  # newest
        pair(2, "technical", "billing"),
        pair(3, "technical", "billing"),
        pair(4, "billing", "billing"),
        pair(5, "technical", "billing"),
    ]
    out = ranking.rank(rows, "label")
    assert [r["shadow_id"] for r in out["rows"]] == ["s2", "s3", "s5", "s1", "s4"]
    assert out["confusions"][0] == {"teacher": "technical", "student": "billing", "count": 3}
    assert out["rows"][0]["confusion_count"] == 3
    assert out["agreement_rate"] == pytest.approx(0.2)
    newest = ranking.rank(rows, "label", order="newest", offset=1, limit=2)
    assert [r["shadow_id"] for r in newest["rows"]] == ["s2", "s3"]
    only = ranking.rank(rows, "label", confusion=("Technical", "billing"))
    assert [r["shadow_id"] for r in only["rows"]] == ["s2", "s3", "s5"]
    assert only["shown"] == 3 and only["scored"] == 5  # the summary still covers every pair


def test_json_counts_the_fields_that_differ() -> None:
    rows = [
        pair(1, '{"team": "a", "urgent": true}', '{"team": "b", "urgent": true}'),
        pair(2, '{"team": "a", "urgent": true}', '{"team": "b", "urgent": false}'),
    ]
    out = ranking.rank(rows, "json")
    assert [r["shadow_id"] for r in out["rows"]] == ["s2", "s1"]
    assert out["fields"] == [{"field": "team", "count": 2}, {"field": "urgent", "count": 1}]


def test_no_pairs() -> None:
    out = ranking.rank([], "normalized")
    assert (out["rows"], out["mean_disagreement"], out["agreement_rate"]) == ([], None, None)
