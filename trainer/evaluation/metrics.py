"""Pure scoring functions comparing student answers with the teacher's (the eval references)."""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from sacrebleu.metrics.bleu import BLEU

from gateway import answers
from gateway.answers import Mode, fields, normalize_label, parse_json_object

TaskKind = Literal["label", "json", "text"]

# Predictions outside the label set land in this confusion-matrix column.
OTHER_LABEL = "<other>"

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans("", "", string.punctuation)


# --- normalisation and per-example text scores -------------------------------------------


def normalize_answer(text: str) -> str:
    """SQuAD normalisation: lower case, drop punctuation and articles, collapse spaces."""
    text = text.lower().translate(_PUNCT)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def exact_match(prediction: str, reference: str) -> bool:
    """Byte-for-byte equality after stripping surrounding whitespace."""
    return prediction.strip() == reference.strip()


def normalized_exact_match(prediction: str, reference: str) -> bool:
    return normalize_answer(prediction) == normalize_answer(reference)


def token_f1(prediction: str, reference: str) -> float:
    """SQuAD token F1 over normalised tokens; two empty answers agree perfectly."""
    pred_tokens = normalize_answer(prediction).split()
    ref_tokens = normalize_answer(reference).split()
    if not pred_tokens or not ref_tokens:
        return float(pred_tokens == ref_tokens)
    common = sum((Counter(pred_tokens) & Counter(ref_tokens)).values())
    if common == 0:
        return 0.0
    precision = common / len(pred_tokens)
    recall = common / len(ref_tokens)
    return 2 * precision * recall / (precision + recall)


def _lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    previous = [0] * (len(b) + 1)
    for token_a in a:
        current = [0]
        for j, token_b in enumerate(b, start=1):
            current.append(
                previous[j - 1] + 1 if token_a == token_b else max(previous[j], current[-1])
            )
        previous = current
    return previous[-1]


def rouge_l(prediction: str, reference: str) -> float:
    """ROUGE-L F-measure (beta 1) on lower-cased whitespace tokens, as rouge-score reports it."""
    pred_tokens = prediction.lower().split()
    ref_tokens = reference.lower().split()
    if not pred_tokens or not ref_tokens:
        return float(pred_tokens == ref_tokens)
    lcs = _lcs_length(pred_tokens, ref_tokens)
    if lcs == 0:
        return 0.0
    precision = lcs / len(pred_tokens)
    recall = lcs / len(ref_tokens)
    return 2 * precision * recall / (precision + recall)


def corpus_bleu(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Corpus BLEU-4 (0-100) with brevity penalty and sacrebleu's exponential smoothing.

    `effective_order` skips n-gram orders the whole corpus lacks, so a corpus of one-word
    labels scores its unigram precision instead of a meaningless 0.
    """
    if not predictions:
        return 0.0
    bleu = BLEU(effective_order=True)
    return float(bleu.corpus_score(list(predictions), [list(references)]).score)


# --- labels ---------------------------------------------------------------------------------


def detect_task_kind(references: Sequence[str], *, max_labels: int = 20) -> TaskKind:
    """JSON when every reference is an object; labels when all are short and repeat; else text."""
    if not references:
        return "text"
    if all(isinstance(parse_json_object(r), dict) for r in references):
        return "json"
    labels = [normalize_label(r) for r in references]
    short = all(0 < len(r.split()) <= 3 and "\n" not in r.strip() for r in references)
    distinct = set(labels)
    if short and len(distinct) <= max_labels and len(distinct) < len(labels):
        return "label"
    return "text"


@dataclass(frozen=True)
class ClassScores:
    precision: float
    recall: float
    f1: float
    support: int


def _safe_div(a: float, b: float) -> float:
    return a / b if b else 0.0


def classification_report(predictions: Sequence[str], references: Sequence[str]) -> dict[str, Any]:
    """Accuracy, per-class precision/recall/F1, macro F1 and the confusion matrix.

    Rows of the matrix are the teacher's labels, columns the student's, in `labels` order;
    student answers outside the teacher's label set are counted in a final `<other>` column.
    """
    refs = [normalize_label(r) for r in references]
    preds = [normalize_label(p) for p in predictions]
    labels = sorted(set(refs))
    index = {label: i for i, label in enumerate(labels)}
    columns = [*labels, OTHER_LABEL]
    matrix = [[0] * len(columns) for _ in labels]
    for pred, ref in zip(preds, refs, strict=True):
        matrix[index[ref]][index.get(pred, len(labels))] += 1
    per_class: dict[str, ClassScores] = {}
    for i, label in enumerate(labels):
        tp = matrix[i][i]
        predicted = sum(row[i] for row in matrix)
        support = sum(matrix[i])
        precision = _safe_div(tp, predicted)
        recall = _safe_div(tp, support)
        per_class[label] = ClassScores(
            precision=precision,
            recall=recall,
            f1=_safe_div(2 * precision * recall, precision + recall),
            support=support,
        )
    correct = sum(matrix[i][i] for i in range(len(labels)))
    return {
        "accuracy": _safe_div(correct, len(refs)),
        "macro_f1": _safe_div(sum(s.f1 for s in per_class.values()), len(per_class)),
        "per_class": {k: vars(v) for k, v in per_class.items()},
        "labels": labels,
        "confusion_matrix": {"rows": labels, "columns": columns, "counts": matrix},
    }


# --- JSON answers ---------------------------------------------------------------------------


def has_keys(prediction: dict[str, Any] | None, reference: dict[str, Any] | None) -> bool:
    """Whether the answer is an object with every field the teacher's answer has."""
    if prediction is None:
        return False
    return reference is None or set(fields(reference)) <= set(fields(prediction))


def json_field_scores(predictions: Sequence[str], references: Sequence[str]) -> dict[str, Any]:
    """Schema validity (an object with all the teacher's keys), parse rate, and micro field-level
    precision/recall/F1; answers that are not objects have no fields."""
    valid = parses = 0
    tp = pred_total = ref_total = 0
    field_hits: Counter[str] = Counter()
    field_seen: Counter[str] = Counter()
    for prediction, reference in zip(predictions, references, strict=True):
        pred_obj = parse_json_object(prediction)
        ref_obj = parse_json_object(reference)
        pred_fields = fields(pred_obj) if pred_obj is not None else {}
        ref_fields = fields(ref_obj) if ref_obj is not None else {}
        hits = [path for path, key in ref_fields.items() if pred_fields.get(path) == key]
        parses += pred_obj is not None
        valid += has_keys(pred_obj, ref_obj)
        tp += len(hits)
        pred_total += len(pred_fields)
        ref_total += len(ref_fields)
        field_seen.update(ref_fields.keys())
        field_hits.update(hits)
    precision = _safe_div(tp, pred_total)
    recall = _safe_div(tp, ref_total)
    return {
        "json_valid": _safe_div(valid, len(predictions)),
        "json_parses": _safe_div(parses, len(predictions)),
        "field_precision": precision,
        "field_recall": recall,
        "field_f1": _safe_div(2 * precision * recall, precision + recall),
        "field_accuracy": {k: field_hits[k] / n for k, n in sorted(field_seen.items())},
    }


# --- agreement with the teacher ---------------------------------------------------------------


# How each task kind is compared: the same modes the rollout gates apply (gateway.answers).
AGREEMENT_MODE: dict[str, Mode] = {"label": "label", "json": "json", "text": "normalized"}


def agreement_score(prediction: str, reference: str, kind: TaskKind) -> float:
    """How much the student says what the teacher said, as the rollout gate would score it."""
    return answers.agreement(reference, prediction, AGREEMENT_MODE[kind])


def agrees(prediction: str, reference: str, kind: TaskKind) -> bool:
    """Whether the student agrees with the teacher completely under the task kind's mode."""
    return agreement_score(prediction, reference, kind) == 1.0


def example_scores(prediction: str, reference: str, kind: TaskKind) -> dict[str, float]:
    """Per-example scores, used to rank the worst examples in the report."""
    return {
        "agree": float(agrees(prediction, reference, kind)),
        "exact_match": float(exact_match(prediction, reference)),
        "token_f1": token_f1(prediction, reference),
        "rouge_l": rouge_l(prediction, reference),
    }


def worst_indices(scores: Sequence[dict[str, float]], n: int) -> list[int]:
    """Indices of the n lowest-scoring examples: disagreements first, then by token F1, ROUGE-L."""
    order = sorted(
        range(len(scores)),
        key=lambda i: (scores[i]["agree"], scores[i]["token_f1"], scores[i]["rouge_l"], i),
    )
    return order[:n]


# --- latency ----------------------------------------------------------------------------------


def latency_summary(
    latencies_ms: Sequence[float], completion_tokens: Sequence[int], wall_s: float
) -> dict[str, float]:
    """p50/p95/mean latency (linear-interpolated percentiles) and throughput in tokens/s."""
    if not latencies_ms:
        return {"p50_ms": 0.0, "p95_ms": 0.0, "mean_ms": 0.0, "tokens_per_s": 0.0}
    values = np.asarray(latencies_ms, dtype=float)
    return {
        "p50_ms": float(np.percentile(values, 50)),
        "p95_ms": float(np.percentile(values, 95)),
        "mean_ms": float(values.mean()),
        "tokens_per_s": _safe_div(float(sum(completion_tokens)), wall_s),
    }


# --- everything at once -----------------------------------------------------------------------


def compute_metrics(
    predictions: Sequence[str], references: Sequence[str], kind: TaskKind | None = None
) -> dict[str, Any]:
    """All quality metrics for one eval run; which extras appear depends on the task kind."""
    if len(predictions) != len(references):
        raise ValueError(
            f"{len(predictions)} predictions for {len(references)} references: they must pair up"
        )
    kind = kind or detect_task_kind(references)
    n = len(references)
    pairs = list(zip(predictions, references, strict=True))
    metrics: dict[str, Any] = {
        "n": n,
        "task_kind": kind,
        "exact_match": _safe_div(sum(exact_match(p, r) for p, r in pairs), n),
        "normalized_exact_match": _safe_div(sum(normalized_exact_match(p, r) for p, r in pairs), n),
        "token_f1": _safe_div(sum(token_f1(p, r) for p, r in pairs), n),
        "rouge_l": _safe_div(sum(rouge_l(p, r) for p, r in pairs), n),
        "bleu": corpus_bleu(predictions, references),
        "agreement": _safe_div(sum(agreement_score(p, r, kind) for p, r in pairs), n),
    }
    if kind == "label":
        metrics["classification"] = classification_report(predictions, references)
        metrics["accuracy"] = metrics["classification"]["accuracy"]
        metrics["macro_f1"] = metrics["classification"]["macro_f1"]
    if kind == "json":
        metrics["json"] = json_field_scores(predictions, references)
        metrics["json_valid"] = metrics["json"]["json_valid"]
        metrics["json_parses"] = metrics["json"]["json_parses"]
        metrics["field_f1"] = metrics["json"]["field_f1"]
    metrics["headline"] = list(HEADLINE[kind])
    return metrics


# The numbers that lead eval.json, the CLI line and the report, per task kind: JSON answers are
# judged field by field and by schema validity, not as strings.
HEADLINE: dict[str, tuple[str, ...]] = {
    "json": ("field_f1", "json_valid", "agreement"),
    "label": ("agreement", "accuracy", "macro_f1"),
    "text": ("agreement", "token_f1", "rouge_l"),
}
HEADLINE_NAMES: dict[str, str] = {
    "field_f1": "field F1",
    "json_valid": "JSON valid (all keys)",
    "agreement": "agreement",
    "accuracy": "accuracy",
    "macro_f1": "macro F1",
    "token_f1": "token F1",
    "rouge_l": "ROUGE-L",
}


def headline_text(metrics: dict[str, Any]) -> str:
    """'field F1 0.912, JSON valid (all keys) 0.990, ...': the task kind's leading numbers."""
    keys = metrics.get("headline") or HEADLINE["text"]
    return ", ".join(f"{HEADLINE_NAMES[k]} {metrics[k]:.3f}" for k in keys if k in metrics)
