"""Pure reshaping of store rows for the console's plots: data-size curves and gate series."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from gateway.conversation import NotAConversation, conversation, text_of

# The headline metric of a curve: the one the sweep chose by (config `sweep_metric`), else the
# first of these every run recorded.
CURVE_METRICS = ("agreement", "accuracy", "exact_match", "token_f1", "rouge_l")


def loads(value: Any) -> Any:
    """A JSON column as Python; bad JSON stays the string it was."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value


def decode(rows: Iterable[dict[str, Any]], fields: tuple[str, ...]) -> list[dict[str, Any]]:
    return [{**row, **{f: loads(row.get(f)) for f in fields if f in row}} for row in rows]


def data_curves(runs: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per sweep, the headline metric against the share of training data (data-size ablation)."""
    sweeps: dict[str, list[tuple[float, dict[str, Any]]]] = {}
    chosen: dict[str, str] = {}
    for run in runs:
        config, metrics = loads(run.get("config")), loads(run.get("metrics"))
        if run.get("kind") != "sweep" or not isinstance(config, dict):
            continue
        percent = config.get("data_percent")
        if not isinstance(percent, int | float) or not isinstance(metrics, dict):
            continue
        sweeps.setdefault(str(run.get("sweep_id")), []).append((float(percent), metrics))
        if isinstance(config.get("sweep_metric"), str):
            chosen[str(run.get("sweep_id"))] = config["sweep_metric"]
    curves = []
    for sweep_id, points in sweeps.items():
        candidates = (chosen[sweep_id],) if sweep_id in chosen else CURVE_METRICS
        metric = next(
            (m for m in candidates if all(isinstance(p[1].get(m), int | float) for p in points)),
            None,
        )
        if metric is None or len({p for p, _ in points}) < 2:
            continue  # one point is not a curve; a sweep over other knobs has one percent
        best: dict[float, float] = {}
        for percent, metrics in points:
            best[percent] = max(best.get(percent, float("-inf")), float(metrics[metric]))
        curves.append({"sweep_id": sweep_id, "metric": metric, "points": sorted(best.items())})
    return curves


# (series name, where it sits in a decision's numbers, the gate it is held against, direction)
GATE_SERIES: tuple[tuple[str, tuple[str, ...], str, str], ...] = (
    ("agreement", ("student", "agreement"), "min_agreement", "min"),
    ("error rate", ("student", "error_rate"), "max_error_rate_increase", "max_increase"),
    ("p95 latency ms", ("student", "p95_ms"), "latency_ratio", "ratio"),
)


def _dig(numbers: Any, path: tuple[str, ...]) -> float | None:
    for key in path:
        if not isinstance(numbers, dict):
            return None
        numbers = numbers.get(key)
    return float(numbers) if isinstance(numbers, int | float) else None


def _threshold(kind: str, gates: Mapping[str, Any], gate: str, numbers: Any) -> float | None:
    value = gates.get(gate)
    if not isinstance(value, int | float):
        return None
    if kind == "min":
        return float(value)
    if kind == "max_increase":
        teacher = _dig(numbers, ("teacher", "error_rate")) or 0.0
        return teacher + float(value)
    teacher_p95 = _dig(numbers, ("teacher", "p95_ms"))
    slack = gates.get("latency_slack_ms", 0.0)
    if teacher_p95 is None or not isinstance(slack, int | float):
        return None
    return max(teacher_p95 * float(value), teacher_p95 + float(slack))


def gate_series(rollout: Mapping[str, Any], live: Mapping[str, Any] | None = None) -> list[Any]:
    """For each gate, its value and threshold at every decision that carried numbers.

    `live` (the controller's current windows) adds a last point for the step in progress.
    """
    gates = rollout.get("gates") or {}
    moments: list[tuple[str, str, Any]] = [
        (str(d["ts"]), str(d["decision"]), d.get("numbers"))
        for d in rollout.get("decisions", [])
        if d.get("numbers")
    ]
    if live:
        moments.append(
            ("now", "live", {"student": live.get("student"), "teacher": live.get("teacher")})
        )
    out = []
    for name, path, gate, kind in GATE_SERIES:
        points = [
            {
                "ts": ts,
                "decision": decision,
                "value": _dig(numbers, path),
                "teacher": _dig(numbers, ("teacher", *path[1:])),
                "threshold": _threshold(kind, gates, gate, numbers),
            }
            for ts, decision, numbers in moments
        ]
        points = [p for p in points if p["value"] is not None]
        out.append({"name": name, "gate": gate, "direction": kind, "points": points})
    return out


def eval_examples(
    records: list[dict[str, Any]], offset: int = 0, limit: int = 50
) -> dict[str, Any]:
    """An eval run's examples, student beside teacher, disagreements first (as the report)."""

    def key(r: dict[str, Any]) -> tuple[float, float, int]:
        scores = r.get("scores") or {}
        return (scores.get("agree", 0.0), scores.get("token_f1", 0.0), r.get("index", 0))

    ordered = sorted(records, key=key)
    rows = [
        {
            "index": r.get("index"),
            "prompt": r.get("prompt"),
            "teacher": r.get("target"),
            "student": r.get("prediction"),
            "agree": (r.get("scores") or {}).get("agree"),
            "token_f1": (r.get("scores") or {}).get("token_f1"),
        }
        for r in ordered[offset : offset + limit]
    ]
    disagreements = sum(1 for r in records if not (r.get("scores") or {}).get("agree"))
    return {
        "total": len(records),
        "disagreements": disagreements,
        "offset": offset,
        "limit": limit,
        "rows": rows,
    }


def _turn_view(turn: Mapping[str, Any]) -> dict[str, Any]:
    calls = [
        {
            "id": c.get("id"),
            "name": (c.get("function") or {}).get("name"),
            "arguments": (c.get("function") or {}).get("arguments"),
        }
        for c in turn.get("tool_calls") or ()
        if isinstance(c, dict)
    ]
    view = {"role": turn.get("role"), "content": text_of(turn.get("content"))}
    if turn.get("content") is not None and view["content"] is None:
        view["content"] = json.dumps(turn.get("content"))  # images etc.: shown as JSON
    if calls:
        view["tool_calls"] = calls
    if turn.get("tool_call_id"):
        view["tool_call_id"] = turn["tool_call_id"]
    if turn.get("refusal"):
        view["refusal"] = turn["refusal"]
    return view


def conversation_view(row: Mapping[str, Any]) -> dict[str, Any] | None:
    """A logged exchange as turns for the console, every endpoint alike (chat, completions,
    Responses): text, tool calls with their arguments, tool results; None if it is not one."""
    try:
        read = conversation(
            str(row.get("endpoint") or "chat"),
            loads(row.get("request")),
            loads(row.get("response")),
        )
    except NotAConversation:
        return None
    tools = [(t.get("function") or {}).get("name") for t in read.tools or ()]
    return {
        "messages": [_turn_view(m) for m in read.messages],
        "answer": _turn_view(read.answer),
        "tools": tools,
    }
