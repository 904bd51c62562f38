"""The one answer comparison (gateway.answers): normalisation, labels, JSON fields, agreement."""

from __future__ import annotations

import pytest

from gateway.answers import (
    agreement,
    answer_key,
    answer_text,
    field_counts,
    fields,
    mean_agreement,
    normalize_label,
    normalize_text,
    parse_json_object,
    same_answer,
)
from trainer.dataset import consensus, dedup
from trainer.evaluation import metrics


@pytest.mark.parametrize(
    ("text", "normal"),
    [
        ("Hello,   World!", "hello world"),
        ("  HELLO world ", "hello world"),
        ("Straße — ÉTÉ", "strasse été"),
        ("a_b-c", "a b c"),
        ("ｂｉｌｌｉｎｇ", "billing"),  # full-width folds (NFKC)
        ("\t\n", ""),
    ],
)
def test_normalize_text(text: str, normal: str) -> None:
    assert normalize_text(text) == normal


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("billing", "billing"),
        ("Billing.", "billing"),
        ("  Billing \n", "billing"),
        ("\n\nbilling\nbecause the card was charged twice", "billing"),
        ("Technical Issue!", "technical issue"),
        ("billing - it is about money", "billing it is about money"),
        ("", ""),
    ],
)
def test_normalize_label(text: str, label: str) -> None:
    assert normalize_label(text) == label


@pytest.mark.parametrize(
    ("text", "obj"),
    [
        ('{"a": 1}', {"a": 1}),
        ('  {"a": 1}\n', {"a": 1}),
        ("[1, 2]", None),
        ("3", None),
        ('{"a": 1', None),
        ("not json", None),
        ("[" * 100_000, None),  # too deep must not raise
    ],
)
def test_parse_json_object(text: str, obj: dict[str, int] | None) -> None:
    assert parse_json_object(text) == obj


@pytest.mark.parametrize(
    ("obj", "paths"),
    [
        ({"a": 1, "b": {"c": "x"}}, ["a", "b.c"]),
        ({"a": {}}, ["a"]),
        ({"a": [1, 2], "b": None}, ["a", "b"]),
    ],
)
def test_fields_are_dotted_leaves(obj: dict[str, object], paths: list[str]) -> None:
    assert sorted(fields(obj)) == paths


@pytest.mark.parametrize(
    ("teacher", "student", "counts"),
    [
        ('{"a": 1, "b": 2}', '{"b": 2, "a": 1}', (2, 2, 2)),
        ('{"a": 1, "b": 2}', '{"a": 1}', (1, 1, 2)),  # missing field
        ('{"a": 1}', '{"a": 1, "z": 0}', (1, 2, 1)),  # extra field
        ('{"a": 1}', '{"a": 1.0}', (1, 1, 1)),  # whole float equals int
        ('{"a": 1}', '{"a": "1"}', (0, 1, 1)),  # a string is not a number
        ('{"name": "Ada  Lovelace"}', '{"name": "ada lovelace"}', (1, 1, 1)),
        ('{"p": {"q": 1, "r": 2}}', '{"p": {"q": 1, "r": 3}}', (1, 2, 2)),
        ('{"a": 1}', "not json", (0, 0, 1)),
        ("{}", "[]", (0, 0, 1)),  # an array is not an object, even against {}
    ],
)
def test_field_counts(teacher: str, student: str, counts: tuple[int, int, int]) -> None:
    got = field_counts(teacher, student)
    assert (got.matched, got.student, got.teacher) == counts


@pytest.mark.parametrize(
    ("teacher", "student", "mode", "score"),
    [
        ("billing", "billing", "exact", 1.0),
        ("billing", " billing\n", "exact", 1.0),
        ("billing", "Billing.", "exact", 0.0),
        ("billing", " Billing. ", "normalized", 1.0),
        ("billing", "billing too", "normalized", 0.0),
        ("billing", "Billing.\nIt is about money", "label", 1.0),
        ("billing", "Billing - it is about money", "label", 0.0),
        ("billing", "account", "label", 0.0),
        ('{"cat": "billing", "prio": "high"}', '{"prio": "low", "cat": "billing"}', "json", 0.5),
        ('{"a": 1, "b": 2}', '{"a": 1}', "json", 2 / 3),
        ("{}", "{}", "json", 1.0),
        ('{"a": 1}', "not json", "json", 0.0),
        (None, "x", "exact", 0.0),
        ("x", None, "label", 0.0),
    ],
)  # fmt: skip
def test_agreement(teacher: str | None, student: str | None, mode: str, score: float) -> None:
    assert agreement(teacher, student, mode) == pytest.approx(score)


def test_unknown_mode_says_which_exist() -> None:
    with pytest.raises(ValueError, match="exact, normalized, label, json"):
        agreement("a", "a", "fuzzy")


def test_mean_agreement() -> None:
    assert mean_agreement(["a", "b"], ["A", "c"], "label") == 0.5
    assert mean_agreement([], [], "label") == 0.0
    with pytest.raises(ValueError, match="1 student answers for 2"):
        mean_agreement(["a", "b"], ["a"], "label")


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("billing", "Billing.", True),
        ("The answer is  yes!", "the answer is yes", True),
        ('{"c": "billing", "p": "low"}', '{"p":"low","c":"Billing"}', True),
        ('{"c": "billing"}', '{"c": "billing", "p": "low"}', False),
        ('{"n": 1}', '{"n": "1"}', False),
        ('{"n": 1}', "n 1", False),
    ],
)
def test_same_answer_and_key(a: str, b: str, same: bool) -> None:
    assert same_answer(a, b) is same
    assert (answer_key(a) == answer_key(b)) is same


@pytest.mark.parametrize(
    ("teacher", "student", "kind"),
    [
        ("billing", "Billing.\nsure", "label"),
        ("billing", "account", "label"),
        ('{"a": 1, "b": 2}', '{"a": 1}', "json"),
        ('{"a": 1, "b": 2}', '{"b": 2, "a": 1.0}', "json"),
        ("the cat sat", "The cat sat.", "text"),
    ],
)
def test_eval_agreement_is_the_gates(teacher: str, student: str, kind: metrics.TaskKind) -> None:
    """What eval reports for a task kind is what the rollout gate scores in the matching mode."""
    mode = metrics.AGREEMENT_MODE[kind]
    reported = metrics.compute_metrics([student], [teacher], kind)["agreement"]
    assert reported == agreement(teacher, student, mode)


def test_consensus_and_dedup_use_the_same_rules() -> None:
    assert consensus.same_answer is same_answer
    key = dedup.exact_key
    assert key([("user", "Hello, World!")]) == key([("user", "hello world")])


def test_answer_text() -> None:
    assert answer_text({"choices": [{"message": {"content": "hi"}}]}) == "hi"
    assert answer_text({"choices": [{"text": "yo"}]}) == "yo"
    assert answer_text({"choices": [{"message": {"content": None}}]}) is None
    assert answer_text({"choices": []}) is None and answer_text("x") is None
