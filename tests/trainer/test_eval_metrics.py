"""Eval metrics against hand-computed cases."""

from __future__ import annotations

import math

import pytest

from trainer.evaluation import metrics as m


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The Cat!", "cat"),
        ("  an   apple, a pear ", "apple pear"),
        ("Billing.", "billing"),
        ("", ""),
    ],
)
def test_normalize_answer(text: str, expected: str) -> None:
    assert m.normalize_answer(text) == expected


@pytest.mark.parametrize(
    ("pred", "ref", "raw", "normalised"),
    [
        ("billing", "billing", True, True),
        (" billing\n", "billing", True, True),
        ("Billing.", "billing", False, True),
        ("technical", "billing", False, False),
    ],
)
def test_exact_match(pred: str, ref: str, raw: bool, normalised: bool) -> None:
    assert m.exact_match(pred, ref) is raw
    assert m.normalized_exact_match(pred, ref) is normalised


@pytest.mark.parametrize(
    ("pred", "ref", "expected"),
    [
        ("the cat sat", "the cat sat", 1.0),
        # pred tokens: cat sat down (3); ref: cat sat (2); common 2 -> P 2/3, R 1 -> F1 0.8
        ("the cat sat down", "a cat sat", 0.8),
        ("dog", "cat", 0.0),
        ("", "", 1.0),
        ("", "cat", 0.0),
        # repeated tokens are clipped: common = min(2, 1) + min(1, 2) = 2 -> P = R = 2/3
        ("x x y", "x y y", 2 / 3),
    ],
)
def test_token_f1(pred: str, ref: str, expected: float) -> None:
    assert m.token_f1(pred, ref) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("pred", "ref", "expected"),
    [
        ("a b c d", "a b c d", 1.0),
        # LCS("a c e", "a b c d e") = 3: P 3/3, R 3/5 -> F 0.75
        ("a c e", "a b c d e", 0.75),
        # LCS("d c b a", "a b c d") = 1: P 1/4, R 1/4 -> F 0.25
        ("d c b a", "a b c d", 0.25),
        ("x y", "a b", 0.0),
        ("", "", 1.0),
    ],
)
def test_rouge_l(pred: str, ref: str, expected: float) -> None:
    assert m.rouge_l(pred, ref) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("preds", "refs", "expected"),
    [
        (["the cat sat on the mat"], ["the cat sat on the mat"], 100.0),
        # precisions 5/7, 3/6, 2/5, 1/4; hyp longer than ref so BP = 1
        (
            ["the cat sat on a mat today"],
            ["the cat sat on the mat"],
            100 * (5 / 7 * 3 / 6 * 2 / 5 * 1 / 4) ** 0.25,
        ),
        # all precisions 1, BP = exp(1 - 6/4)
        (["the cat sat on"], ["the cat sat on the mat"], 100 * math.exp(1 - 6 / 4)),
        # 4-gram precision 0/1 smoothed to 1/(2*1): (3/4 * 2/3 * 1/2 * 1/2) ** 0.25
        (["a b c d"], ["a b c e"], 100 * (3 / 4 * 2 / 3 * 1 / 2 * 1 / 2) ** 0.25),
        # corpus level: counts are summed before the precisions are taken
        (["a b c d", "a b c d"], ["a b c d", "a b c e"], None),
        # one-word labels: only unigram precision counts (effective order 1)
        (["billing", "technical"], ["billing", "account"], 50.0),
        ([], [], 0.0),
    ],
)
def test_corpus_bleu(preds: list[str], refs: list[str], expected: float | None) -> None:
    if expected is None:
        # unigrams 7/8, bigrams 5/6, trigrams 3/4, 4-grams 1/2; lengths equal so BP = 1
        expected = 100 * (7 / 8 * 5 / 6 * 3 / 4 * 1 / 2) ** 0.25
    assert m.corpus_bleu(preds, refs) == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize(
    ("refs", "kind"),
    [
        (["billing", "technical", "billing"], "label"),
        (['{"category": "billing"}', '{"category": "account"}'], "json"),
        (["a long free text answer about billing", "another one entirely"], "text"),
        (["billing", "technical", "account"], "text"),  # no label repeats: not a label set
        ([], "text"),
    ],
)
def test_detect_task_kind(refs: list[str], kind: str) -> None:
    assert m.detect_task_kind(refs) == kind


def test_classification_report_hand_computed() -> None:
    refs = ["billing", "billing", "billing", "technical", "technical", "account"]
    preds = ["billing", "billing", "technical", "technical", "gibberish", "billing"]
    report = m.classification_report(preds, refs)
    assert report["labels"] == ["account", "billing", "technical"]
    # rows: teacher account, billing, technical; cols: account, billing, technical, <other>
    assert report["confusion_matrix"]["counts"] == [
        [0, 1, 0, 0],
        [0, 2, 1, 0],
        [0, 0, 1, 1],
    ]
    assert report["confusion_matrix"]["columns"][-1] == m.OTHER_LABEL
    assert report["accuracy"] == pytest.approx(3 / 6)
    billing = report["per_class"]["billing"]
    # billing predicted 3 times, 2 right; 3 true billing, 2 found
    assert billing["precision"] == pytest.approx(2 / 3)
    assert billing["recall"] == pytest.approx(2 / 3)
    assert billing["f1"] == pytest.approx(2 / 3)
    assert billing["support"] == 3
    technical = report["per_class"]["technical"]
    assert technical["precision"] == pytest.approx(1 / 2)
    assert technical["recall"] == pytest.approx(1 / 2)
    assert report["per_class"]["account"]["f1"] == 0.0
    assert report["macro_f1"] == pytest.approx((0 + 2 / 3 + 1 / 2) / 3)


def test_labels_are_normalised_before_comparison() -> None:
    report = m.classification_report(
        ["Billing.", "technical\nbecause..."], ["billing", "technical"]
    )
    assert report["accuracy"] == 1.0


def test_json_field_scores_hand_computed() -> None:
    refs = [
        '{"category": "billing", "priority": "high"}',
        '{"category": "account", "priority": "low"}',
        '{"category": "technical", "priority": "low"}',
    ]
    preds = [
        '{"category": "billing", "priority": "low"}',  # 1 of 2 fields right
        '{"category": "account", "priority": "low", "extra": 1}',  # 2 right, 1 extra
        "category: technical",  # invalid JSON: no fields
    ]
    scores = m.json_field_scores(preds, refs)
    assert scores["json_valid"] == pytest.approx(2 / 3)
    # tp 3; predicted fields 2 + 3 = 5; reference fields 6
    assert scores["field_precision"] == pytest.approx(3 / 5)
    assert scores["field_recall"] == pytest.approx(3 / 6)
    assert scores["field_f1"] == pytest.approx(2 * 0.6 * 0.5 / 1.1)
    assert scores["field_accuracy"] == {"category": pytest.approx(2 / 3), "priority": 1 / 3}


def test_json_nested_fields_compare_one_by_one() -> None:
    scores = m.json_field_scores(['{"a": {"b": 1, "c": 2}}'], ['{"a": {"b": 1, "c": 3}}'])
    assert scores["field_precision"] == pytest.approx(0.5)
    assert scores["field_accuracy"] == {"a.b": 1.0, "a.c": 0.0}


@pytest.mark.parametrize(
    ("pred", "ref", "kind", "expected"),
    [
        ("Billing", "billing", "label", True),
        ("account", "billing", "label", False),
        ('{"b": 2, "a": 1}', '{"a": 1, "b": 2}', "json", True),
        ('{"a": 1}', '{"a": 1, "b": 2}', "json", False),
        ("not json", '{"a": 1}', "json", False),
        ("The answer is 4.", "the answer is 4", "text", True),
    ],
)
def test_agrees(pred: str, ref: str, kind: m.TaskKind, expected: bool) -> None:
    assert m.agrees(pred, ref, kind) is expected


def test_worst_indices_puts_disagreements_first() -> None:
    scores = [
        {"agree": 1.0, "token_f1": 1.0, "rouge_l": 1.0},
        {"agree": 0.0, "token_f1": 0.5, "rouge_l": 0.5},
        {"agree": 0.0, "token_f1": 0.0, "rouge_l": 0.0},
        {"agree": 1.0, "token_f1": 0.9, "rouge_l": 0.9},
    ]
    assert m.worst_indices(scores, 3) == [2, 1, 3]


def test_latency_summary_hand_computed() -> None:
    summary = m.latency_summary([10.0, 20.0, 30.0, 40.0], [5, 5, 5, 5], wall_s=2.0)
    assert summary["p50_ms"] == pytest.approx(25.0)
    # rank 0.95 * 3 = 2.85 -> 30 + 0.85 * 10
    assert summary["p95_ms"] == pytest.approx(38.5)
    assert summary["mean_ms"] == pytest.approx(25.0)
    assert summary["tokens_per_s"] == pytest.approx(10.0)
    assert m.latency_summary([], [], wall_s=0.0)["tokens_per_s"] == 0.0


def test_compute_metrics_label_task() -> None:
    refs = ["billing", "technical", "billing", "account"]
    preds = ["billing", "technical", "account", "account"]
    result = m.compute_metrics(preds, refs)
    assert result["task_kind"] == "label"
    assert result["accuracy"] == pytest.approx(0.75)
    assert result["agreement"] == pytest.approx(0.75)
    assert result["exact_match"] == pytest.approx(0.75)
    assert result["bleu"] == pytest.approx(75.0)
    assert "json" not in result


@pytest.mark.parametrize(
    ("prediction", "reference", "valid"),
    [
        ('{"a": 1, "b": 2}', '{"a": 1, "b": 2}', True),
        ('{"a": 9, "b": 9, "c": 0}', '{"a": 1, "b": 2}', True),  # wrong values, all keys
        ('{"a": 1}', '{"a": 1, "b": 2}', False),  # a key missing: parses, but not valid
        ('{"a": {"x": 1}}', '{"a": {"x": 1, "y": 2}}', False),  # nested key missing
        ("[1, 2]", '{"a": 1}', False),
        ("a: 1", '{"a": 1}', False),
    ],
)
def test_json_valid_needs_every_key_of_the_teacher(
    prediction: str, reference: str, valid: bool
) -> None:
    scores = m.json_field_scores([prediction], [reference])
    assert scores["json_valid"] == float(valid)
    parses = m.parse_json_object(prediction) is not None
    assert scores["json_parses"] == float(parses)


def test_json_headline_leads_with_field_f1_and_validity() -> None:
    refs = ['{"email": "a@x.io", "plan": "pro"}', '{"email": "b@x.io", "plan": "free"}']
    preds = ['{"email": "a@x.io", "plan": "pro"}', '{"email": "b@x.io"}']
    result = m.compute_metrics(preds, refs)
    assert result["headline"] == ["field_f1", "json_valid", "agreement"]
    assert result["json_valid"] == 0.5 and result["json_parses"] == 1.0
    assert m.headline_text(result).startswith("field F1 0.857, JSON valid (all keys) 0.500")
    labels = m.compute_metrics(["billing", "account"], ["billing", "billing"])
    assert m.headline_text(labels).startswith("agreement 0.500, accuracy 0.500")


def test_compute_metrics_json_task() -> None:
    refs = ['{"category": "billing"}', '{"category": "account"}']
    preds = ['{"category": "billing"}', "oops"]
    result = m.compute_metrics(preds, refs)
    assert result["task_kind"] == "json"
    assert result["json_valid"] == pytest.approx(0.5)
    assert result["agreement"] == pytest.approx(0.5)
    assert result["field_f1"] == pytest.approx(2 * 1.0 * 0.5 / 1.5)


def test_compute_metrics_rejects_unpaired_lists() -> None:
    with pytest.raises(ValueError, match="must pair up"):
        m.compute_metrics(["a"], ["a", "b"])
