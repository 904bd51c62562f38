"""Render eval results as one self-contained report.html (plots inlined, user text escaped)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2

from gateway.rollout.gates import Gates
from trainer.evaluation import plots
from trainer.evaluation.diff import diff_segments

_ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent),
    autoescape=True,  # prompts and answers are user text: never trust them as HTML
    undefined=jinja2.StrictUndefined,
)

# Summary rows: (label, key in metrics, format). Missing keys are skipped.
_SUMMARY: list[tuple[str, str, str]] = [
    ("examples", "n", "{:d}"),
    ("agreement with teacher", "agreement", "{:.3f}"),
    ("accuracy", "accuracy", "{:.3f}"),
    ("macro F1", "macro_f1", "{:.3f}"),
    ("exact match", "exact_match", "{:.3f}"),
    ("exact match (normalised)", "normalized_exact_match", "{:.3f}"),
    ("token F1", "token_f1", "{:.3f}"),
    ("ROUGE-L", "rouge_l", "{:.3f}"),
    ("BLEU (0-100)", "bleu", "{:.2f}"),
    ("JSON valid (all keys)", "json_valid", "{:.3f}"),
    ("JSON parses", "json_parses", "{:.3f}"),
    ("JSON field F1", "field_f1", "{:.3f}"),
    ("latency p50 (ms)", "p50_ms", "{:.1f}"),
    ("latency p95 (ms)", "p95_ms", "{:.1f}"),
    ("tokens/s", "tokens_per_s", "{:.1f}"),
    ("perplexity of the answers", "perplexity", "{:.3f}"),
    ("peak memory (MiB)", "peak_rss_mb", "{:.0f}"),
]


# One line per metric: what it measures, for the person reading the report.
EXPLAIN: dict[str, str] = {
    "n": "held-out examples the student answered (the teacher's answers are the reference)",
    "agreement": "share of answers that agree with the teacher's, compared as the rollout gate "
    "compares them (labels by label, JSON field by field); the gate's min_agreement applies",
    "accuracy": "share of examples whose label is the teacher's label",
    "macro_f1": "F1 per label, averaged with every label weighted alike, so rare labels count",
    "exact_match": "share of answers identical to the teacher's (surrounding spaces ignored)",
    "normalized_exact_match": "the same after ignoring case, punctuation and spacing",
    "token_f1": "overlap of the answers' words with the teacher's (harmonic mean of precision "
    "and recall), averaged over examples",
    "rouge_l": "longest common word sequence with the teacher's answer, as an F-measure",
    "bleu": "n-gram precision against the teacher's answers, corpus-level, 0-100",
    "json_valid": "share of answers that are JSON objects with every key the teacher's has",
    "json_parses": "share of answers that parse as JSON at all",
    "field_f1": "JSON fields matching the teacher's (value and path), as an F1 over all fields",
    "p50_ms": "median time to a full answer",
    "p95_ms": "time within which 95 % of answers finished",
    "tokens_per_s": "answer tokens generated per second over the whole run",
    "perplexity": "how surprised the student is by the teacher's answers (lower is closer)",
    "peak_rss_mb": "the most memory this process held during the run",
    "majority_baseline": "accuracy of always answering the most common label: a student must "
    "beat this to have learned anything",
}


def majority_baseline(classification: dict[str, Any]) -> tuple[str, float] | None:
    """The most common teacher label and the accuracy of always answering it."""
    per_class = classification.get("per_class") or {}
    total = sum(int(s["support"]) for s in per_class.values())
    if not total:
        return None
    label, scores = max(per_class.items(), key=lambda item: (item[1]["support"], item[0]))
    return label, int(scores["support"]) / total


def glossary(metrics: dict[str, Any], latency: dict[str, float]) -> list[tuple[str, str]]:
    """(label, explanation) for every metric the summary shows."""
    merged = {**metrics, **latency}
    return [
        (label, EXPLAIN[key])
        for label, key, _ in _SUMMARY
        if merged.get(key) is not None and key in EXPLAIN
    ]


def is_perfect(scores: dict[str, Any]) -> bool:
    """An example the student got exactly right: nothing to show among the worst."""
    return bool(scores.get("agree")) and scores.get("token_f1", 1.0) >= 1.0


def summary_rows(metrics: dict[str, Any], latency: dict[str, float]) -> list[tuple[str, str]]:
    merged = {**metrics, **latency}
    # The task kind's headline numbers first (JSON: field F1 and schema validity).
    lead = list(metrics.get("headline") or [])
    rank = {key: i for i, key in enumerate(["n", *lead])}
    ordered = sorted(_SUMMARY, key=lambda row: rank.get(row[1], len(rank)))
    return [
        (label, fmt.format(merged[key]))
        for label, key, fmt in ordered
        if merged.get(key) is not None
    ]


def build_plots(
    metrics: dict[str, Any],
    predictions: list[str],
    targets: list[str],
    gate: float | None = None,
) -> list[tuple[str, str]]:
    """(caption, data URI) for each plot this task kind has."""
    figures = []
    classification = metrics.get("classification")
    headline = {
        name: float(metrics[key])
        for name, key in (
            ("agreement", "agreement"),
            ("accuracy", "accuracy"),
            ("field F1", "field_f1"),
        )
        if isinstance(metrics.get(key), int | float)
    }
    if headline:
        baseline = majority_baseline(classification) if classification else None
        figures.append(
            (
                "Scores against the majority-class baseline and the rollout gate's threshold",
                plots.against_bars(
                    headline, baseline=baseline[1] if baseline else None, threshold=gate
                ),
            )
        )
    if classification:
        cm = classification["confusion_matrix"]
        figures.append(
            (
                "Confusion matrix",
                plots.confusion_matrix_plot(cm["rows"], cm["columns"], cm["counts"]),
            )
        )
    figures.append(
        (
            "Answer lengths, student vs teacher",
            plots.length_histogram(
                [len(p.split()) for p in predictions], [len(t.split()) for t in targets]
            ),
        )
    )
    if classification:
        labels = classification["labels"]
        per_class = classification["per_class"]
        series = {
            score: [per_class[label][score] for label in labels]
            for score in ("precision", "recall", "f1")
        }
        figures.append(("Per-class scores", plots.grouped_bars(labels, series, "Per-class scores")))
    elif metrics.get("json"):
        fields = metrics["json"]["field_accuracy"]
        figures.append(
            (
                "Per-field accuracy",
                plots.grouped_bars(list(fields), {"accuracy": list(fields.values())}, "Fields"),
            )
        )
    return figures


def render_report(
    *,
    info: dict[str, Any],
    metrics: dict[str, Any],
    latency: dict[str, float],
    examples: list[dict[str, Any]],
    worst: list[int],
    gate: float | None = None,
) -> str:
    """The whole HTML page; `examples` are the per-example records written to predictions.jsonl.

    `gate` is the rollout's min_agreement the student will be held to (default: the gate's
    default); the report draws it beside the scores.
    """
    if gate is None:
        gate = Gates().min_agreement
    predictions = [e["prediction"] for e in examples]
    targets = [e["target"] for e in examples]
    classification = metrics.get("classification") or {}
    per_class = [(label, scores) for label, scores in classification.get("per_class", {}).items()]
    worst_rows = [
        {**examples[i], "diff": diff_segments(examples[i]["target"], examples[i]["prediction"])}
        for i in worst
        if not is_perfect(examples[i].get("scores") or {})
    ]
    baseline = majority_baseline(classification) if classification else None
    return _ENV.get_template("report.html.jinja").render(
        title=Path(str(info["adapter"])).name,
        info=info,
        summary=summary_rows(metrics, latency),
        glossary=glossary(metrics, latency),
        baseline=baseline,
        baseline_explained=EXPLAIN["majority_baseline"],
        gate=gate,
        plots=build_plots(metrics, predictions, targets, gate),
        per_class=per_class,
        worst=worst_rows,
        n=len(examples),
    )
