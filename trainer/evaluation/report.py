"""Render eval results as one self-contained report.html (plots inlined, user text escaped)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2

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
    metrics: dict[str, Any], predictions: list[str], targets: list[str]
) -> list[tuple[str, str]]:
    """(caption, data URI) for each plot this task kind has."""
    figures = []
    classification = metrics.get("classification")
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
) -> str:
    """The whole HTML page; `examples` are the per-example records written to predictions.jsonl."""
    predictions = [e["prediction"] for e in examples]
    targets = [e["target"] for e in examples]
    classification = metrics.get("classification") or {}
    per_class = [(label, scores) for label, scores in classification.get("per_class", {}).items()]
    worst_rows = [
        {**examples[i], "diff": diff_segments(examples[i]["target"], examples[i]["prediction"])}
        for i in worst
    ]
    return _ENV.get_template("report.html.jinja").render(
        title=Path(str(info["adapter"])).name,
        info=info,
        summary=summary_rows(metrics, latency),
        plots=build_plots(metrics, predictions, targets),
        per_class=per_class,
        worst=worst_rows,
        n=len(examples),
    )
