"""Eval runs in the console (pure): names, metric deltas, per-example comparison, datasets."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.ui import evals


@pytest.mark.parametrize(
    ("run", "expected"),
    [
        ({"adapter_path": "/a/adapters/triage-v2"}, "triage-v2"),
        ({"adapter_path": "/reg/x"}, "registered-x"),
        ({"adapter_path": None, "config": {"model": "served-name"}}, "served-name"),
        ({"adapter_path": None, "config": "garbage"}, "(no adapter recorded)"),
    ],
)
def test_adapter_name(run: dict[str, Any], expected: str) -> None:
    assert evals.adapter_name(run, {"/reg/x": "registered-x"}) == expected


def test_metric_deltas_know_which_way_is_better() -> None:
    a = {"accuracy": 0.8, "p95_ms": 100.0, "token_f1": 0.5, "n": 10}
    b = {"accuracy": 0.9, "p95_ms": 120.0, "token_f1": 0.5, "bleu": 3.0}
    got = {d["metric"]: d for d in evals.metric_deltas(a, b)}
    assert set(got) == {"accuracy", "p95_ms", "token_f1"}
    assert got["accuracy"]["delta"] == pytest.approx(0.1)
    assert got["accuracy"]["verdict"] == "better"
    assert got["p95_ms"]["verdict"] == "worse"
    assert got["token_f1"]["verdict"] == "same"


def record(i: int, prediction: str, agree: bool, prompt: str | None = None) -> dict[str, Any]:
    return {
        "index": i,
        "prompt": prompt or f"p{i}",
        "target": f"t{i}",
        "prediction": prediction,
        "scores": {"agree": float(agree)},
    }


def test_compare_examples_fixed_and_broken_first_and_changed_filter() -> None:
    a = [
        record(0, "x", False),
        record(1, "t1", True),
        record(2, "same", True),
        record(3, "q", True),
    ]
    b = [record(0, "t0", True), record(1, "y", False), record(2, "same", True)]
    b.append(record(3, "q", True, prompt="another prompt"))  # not the same example
    out = evals.compare_examples(a, b)
    assert [(r["index"], r["outcome"]) for r in out["rows"]] == [
        (1, "broken"),
        (0, "fixed"),
        (2, ""),
    ]
    assert (out["changed"], out["fixed"], out["broken"], out["unmatched"]) == (2, 1, 1, 1)
    changed = evals.compare_examples(a, b, changed_only=True, offset=1, limit=5)
    assert changed["total"] == 2 and [r["index"] for r in changed["rows"]] == [0]


def test_datasets_join_cards_adapters_and_runs() -> None:
    card = {"content_hash": "h1", "created_at": "2025-01-02", "rows": 10}
    adapters = [
        {"name": "v1", "dataset_hash": "h1", "lineage": {"dataset": {"dir": "/d1", **card}}}
    ]
    runs = [
        {"config": {"dataset": "/d1"}, "dataset_hash": "h1"},
        {"config": {"dataset": "/d2"}, "dataset_hash": "h2"},
        {"config": {}, "dataset_hash": None},
    ]
    old = {"content_hash": "h2", "created_at": "2024-12-01"}
    out = evals.datasets(runs, adapters, {"/d1": None, "/d2": old})
    assert [d["key"] for d in out] == ["h1", "h2"]
    assert out[0]["card"] == card and out[0]["adapters"] == ["v1"] and out[0]["runs"] == 1
    assert out[1]["dir"] == "/d2" and out[1]["card"] == old
