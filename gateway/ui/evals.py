"""Eval runs for the console (pure): named by their adapter, compared side by side, and the
datasets they and the registry's adapters were built from."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import PurePath
from typing import Any

# The eval's quality metrics (also what `distill sweep --metric` may choose by), higher better.
QUALITY_METRICS = (
    "agreement",
    "accuracy",
    "macro_f1",
    "exact_match",
    "normalized_exact_match",
    "token_f1",
    "rouge_l",
    "bleu",
    "json_valid",
    "field_f1",
)
# Metrics compared between two runs, with the direction that is better.
HIGHER_IS_BETTER = (*QUALITY_METRICS, "tokens_per_s")
LOWER_IS_BETTER = ("p50_ms", "p95_ms", "p50_latency_ms", "perplexity", "peak_rss_mb")


def _config(run: Mapping[str, Any]) -> dict[str, Any]:
    config = run.get("config")
    return config if isinstance(config, dict) else {}


def adapter_name(run: Mapping[str, Any], registry: Mapping[str, str]) -> str:
    """The adapter a run evaluated: its registry name when its path is registered, else the
    directory's name, else the model it asked a server for."""
    path = run.get("adapter_path")
    config = _config(run)
    if path:
        return registry.get(str(path)) or PurePath(str(path)).name or str(path)
    return str(config.get("model") or "(no adapter recorded)")


def metric_deltas(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Per shared numeric metric: both values, b - a, and whether b is better, worse or equal."""
    out = []
    for key in (*HIGHER_IS_BETTER, *LOWER_IS_BETTER):
        x, y = a.get(key), b.get(key)
        if not isinstance(x, int | float) or not isinstance(y, int | float):
            continue
        delta = float(y) - float(x)
        better = delta > 0 if key in HIGHER_IS_BETTER else delta < 0
        verdict = "same" if abs(delta) < 1e-12 else ("better" if better else "worse")
        out.append({"metric": key, "a": x, "b": y, "delta": delta, "verdict": verdict})
    return out


def _agrees(record: Mapping[str, Any]) -> bool:
    return bool((record.get("scores") or {}).get("agree"))


def compare_examples(
    a: Sequence[Mapping[str, Any]],
    b: Sequence[Mapping[str, Any]],
    *,
    changed_only: bool = False,
    offset: int = 0,
    limit: int = 50,
) -> dict[str, Any]:
    """The two runs' answers per held-out example (matched by index and prompt).

    `changed` means the two students answered differently; `fixed` / `broken` say whether b
    now agrees with the teacher where a did not, or the reverse. Fixed and broken come first.
    """
    by_index = {r.get("index"): r for r in b}
    rows: list[dict[str, Any]] = []
    mismatched = 0
    for left in a:
        right = by_index.get(left.get("index"))
        if right is None or right.get("prompt") != left.get("prompt"):
            mismatched += 1
            continue
        was, now = _agrees(left), _agrees(right)
        rows.append(
            {
                "index": left.get("index"),
                "prompt": left.get("prompt"),
                "teacher": left.get("target"),
                "a": left.get("prediction"),
                "b": right.get("prediction"),
                "a_agrees": was,
                "b_agrees": now,
                "changed": left.get("prediction") != right.get("prediction"),
                "outcome": "fixed" if now and not was else "broken" if was and not now else "",
            }
        )
    counts = {
        "examples": len(rows),
        "changed": sum(bool(r["changed"]) for r in rows),
        "fixed": sum(r["outcome"] == "fixed" for r in rows),
        "broken": sum(r["outcome"] == "broken" for r in rows),
        "unmatched": mismatched,
    }
    rank = {"broken": 0, "fixed": 1, "": 2}
    shown = [r for r in rows if r["changed"]] if changed_only else rows
    shown.sort(key=lambda r: (rank[str(r["outcome"])], not r["changed"], r["index"] or 0))
    return {
        **counts,
        "total": len(shown),
        "offset": offset,
        "limit": limit,
        "rows": shown[offset : offset + limit],
    }


def datasets(
    runs: Iterable[Mapping[str, Any]],
    adapters: Iterable[Mapping[str, Any]],
    cards: Mapping[str, dict[str, Any] | None],
) -> list[dict[str, Any]]:
    """One entry per dataset (by content hash, else directory): its card and who used it.

    `cards` maps a dataset directory to its card read from disk (None when unreadable);
    adapters carry the card they were trained on in their lineage.
    """
    found: dict[str, dict[str, Any]] = {}

    def entry(directory: str | None, card: dict[str, Any] | None, hash_: str | None) -> Any:
        key = str((card or {}).get("content_hash") or hash_ or directory)
        item = found.setdefault(
            key, {"key": key, "dir": directory, "card": None, "adapters": [], "runs": 0}
        )
        item["dir"] = item["dir"] or directory
        if card and not item["card"]:
            item["card"] = card
        return item

    for adapter in adapters:
        lineage = adapter.get("lineage")
        dataset = lineage.get("dataset") if isinstance(lineage, dict) else None
        if not isinstance(dataset, dict):
            continue
        directory = dataset.get("dir")
        card = {k: v for k, v in dataset.items() if k != "dir"}
        entry(directory, cards.get(str(directory)) or card, adapter.get("dataset_hash"))[
            "adapters"
        ].append(adapter.get("name"))
    for run in runs:
        directory = _config(run).get("dataset")
        if not directory and not run.get("dataset_hash"):
            continue
        entry(directory, cards.get(str(directory)), run.get("dataset_hash"))["runs"] += 1
    return sorted(found.values(), key=lambda d: str((d["card"] or {}).get("created_at", "")))[::-1]
