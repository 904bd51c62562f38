"""The eval report, its diff, output atomicity, dataset parsing and served-name resolution."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from markupsafe import escape

from trainer.evaluation import metrics as m
from trainer.evaluation.data import DatasetError, load_eval_examples, parse_example
from trainer.evaluation.diff import diff_segments
from trainer.evaluation.generate import GenerationError, served_model_name
from trainer.evaluation.outdir import atomic_output_dir
from trainer.evaluation.report import render_report
from trainer.evaluation.runner import EvalConfig


@pytest.mark.parametrize(
    ("teacher", "student", "expected"),
    [
        ("billing", "billing", [("equal", "billing")]),
        ("billing", "account", [("delete", "billing"), ("insert", "account")]),
        (
            "the cat sat",
            "the dog sat",
            [("equal", "the "), ("delete", "cat"), ("insert", "dog"), ("equal", " sat")],
        ),
        ("a b", "a b c", [("equal", "a b"), ("insert", " c")]),
        ("", "x", [("insert", "x")]),
    ],
)
def test_diff_segments(teacher: str, student: str, expected: list[tuple[str, str]]) -> None:
    segments = diff_segments(teacher, student)
    assert segments == expected
    # the segments rebuild both texts exactly
    assert "".join(t for op, t in segments if op != "insert") == teacher
    assert "".join(t for op, t in segments if op != "delete") == student


def _records(pairs: list[tuple[str, str, str]], kind: m.TaskKind) -> list[dict[str, Any]]:
    return [
        {
            "index": i,
            "prompt": prompt,
            "target": target,
            "prediction": prediction,
            "scores": m.example_scores(prediction, target, kind),
        }
        for i, (prompt, target, prediction) in enumerate(pairs)
    ]


def _render(pairs: list[tuple[str, str, str]], worst: int = 10) -> str:
    targets = [t for _, t, _ in pairs]
    predictions = [p for _, _, p in pairs]
    metrics = m.compute_metrics(predictions, targets)
    records = _records(pairs, metrics["task_kind"])
    info = {
        "adapter": "/tmp/adapters/triage-v1",
        "dataset": "/tmp/data",
        "dataset_hash": "abc",
        "base_model": "/tmp/tiny",
        "mode": "local",
        "server": None,
        "model": None,
        "created_at": "2026-01-01T00:00:00+00:00",
    }
    latency = m.latency_summary([10.0] * len(pairs), [1] * len(pairs), 1.0)
    order = m.worst_indices([r["scores"] for r in records], worst)
    return render_report(info=info, metrics=metrics, latency=latency, examples=records, worst=order)


def test_report_is_self_contained_with_plots_and_escapes_user_text() -> None:
    evil = '<script>alert("x")</script> my invoice'
    page = _render(
        [
            ("card charged twice", "billing", "billing"),
            ("app crashes", "technical", "<b>account</b>"),
            ("login fails", "account", "account"),
            (evil, "billing", "technical"),
        ]
    )
    assert "<script>" not in page
    assert str(escape(evil)) in page
    assert "<b>account</b>" not in page and "&lt;b&gt;account&lt;/b&gt;" in page
    # scores vs baseline and gate, confusion matrix, length histogram, per-class bars, inline
    assert len(re.findall(r'src="data:image/png;base64,[A-Za-z0-9+/=]+"', page)) == 4
    assert not re.search(r'(src|href)="(https?:)?//', page)
    # the summary table carries the real numbers: 2 of 4 agree
    assert re.search(r"agreement with teacher</td><td[^>]*>0\.500<", page)
    # worst examples: only the two disagreements (perfect answers left out), diff marked up
    worst = page[page.index('id="worst"') :]
    assert (
        "app crashes" in worst and "login fails" not in worst and "card charged twice" not in worst
    )
    assert "<del>billing</del> <ins>technical</ins>" in worst  # never "billingtechnical"
    # every metric shown is explained; the majority baseline (billing, 2 of 4) and the gate
    assert re.search(r'majority-class baseline \(always "billing"\)</td><td[^>]*>0\.500<', page)
    assert re.search(r"rollout gate: min agreement</td><td[^>]*>0\.90<", page)
    glossary = page[page.index('id="glossary"') :]
    assert all(label in glossary for label in ("accuracy", "token F1", "macro F1"))
    assert '<meta name="viewport"' in page


def test_report_for_json_answers_has_field_plot() -> None:
    page = _render(
        [
            ("t1", '{"category": "billing", "priority": "low"}', '{"category": "billing"}'),
            ("t2", '{"category": "account", "priority": "high"}', "nope"),
        ]
    )
    assert "Per-field accuracy" in page
    # t1's answer parses but lacks "priority": not valid against the teacher's keys.
    assert re.search(r"JSON valid \(all keys\)</td><td[^>]*>0\.000<", page)
    assert re.search(r"JSON parses</td><td[^>]*>0\.500<", page)
    # JSON answers lead with field F1 and schema validity, not string agreement.
    rows = re.findall(r"<td[^>]*>([^<]+)</td><td", page)
    assert rows[1:3] == ["JSON field F1", "JSON valid (all keys)"], rows[:4]


def test_atomic_output_dir_replaces_only_on_success(tmp_path: Path) -> None:
    target = tmp_path / "out"
    with atomic_output_dir(target) as scratch:
        (scratch / "eval.json").write_text("{}")
    assert (target / "eval.json").read_text() == "{}"

    with pytest.raises(RuntimeError), atomic_output_dir(target) as scratch:
        (scratch / "eval.json").write_text('{"half": true}')
        raise RuntimeError("generation failed")
    # the earlier complete result is untouched and no scratch dirs remain
    assert (target / "eval.json").read_text() == "{}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]

    with atomic_output_dir(target) as scratch:
        (scratch / "report.html").write_text("new")
    assert sorted(p.name for p in target.iterdir()) == ["report.html"]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "not valid JSON"),
        ('{"messages": []}', "with a prompt and an answer"),
        (
            '{"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]}',
            "must be the assistant",
        ),
    ],
)
def test_parse_example_errors(line: str, message: str) -> None:
    with pytest.raises(DatasetError, match=message):
        parse_example(line, "eval.jsonl:1")


def test_load_eval_examples(tmp_path: Path) -> None:
    rows = [
        {
            "messages": [
                {"role": "system", "content": "s"},
                {"role": "user", "content": f"ticket {i}"},
                {"role": "assistant", "content": "billing"},
            ]
        }
        for i in range(5)
    ]
    (tmp_path / "eval.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    examples = load_eval_examples(tmp_path, limit=3)
    assert len(examples) == 3
    assert examples[2].user_text == "ticket 2"
    assert examples[0].target == "billing"
    assert [msg["role"] for msg in examples[0].messages] == ["system", "user"]
    with pytest.raises(DatasetError, match="not found"):
        load_eval_examples(tmp_path / "nope")
    (tmp_path / "eval.jsonl").write_text("\n")
    with pytest.raises(DatasetError, match="no examples"):
        load_eval_examples(tmp_path)


MODELS = [
    {"id": "tiny", "root": "/models/tiny", "parent": None},
    {"id": "triage-v1", "root": "/adapters/triage-v1", "parent": "tiny"},
]


@pytest.mark.parametrize(
    ("adapter", "explicit", "expected"),
    [
        ("/adapters/triage-v1", None, "triage-v1"),  # found by path
        ("/elsewhere/triage-v1", None, "triage-v1"),  # found by directory name
        ("/adapters/other", "triage-v1", "triage-v1"),  # named explicitly
        ("/adapters/other", None, GenerationError),
        ("/adapters/triage-v1", "missing", GenerationError),
    ],
)
def test_served_model_name(adapter: str, explicit: str | None, expected: object) -> None:
    if expected is GenerationError:
        with pytest.raises(GenerationError, match="distill adapters load"):
            served_model_name(MODELS, Path(adapter), explicit)
    else:
        assert served_model_name(MODELS, Path(adapter), explicit) == expected


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"limit": 0}, "limit=0"),
        ({"max_tokens": 0}, "max_tokens=0"),
        ({"concurrency": -1}, "concurrency=-1"),
        ({"worst": -2}, "worst=-2"),
    ],
)
def test_eval_config_validation(kwargs: dict[str, int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        EvalConfig(**kwargs)
