"""`distill sweep` over the issue-8 options: rationales, curriculum and data size in one report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from distill_demo.teacher.data_tools import rationale
from gateway.cli import main
from tests.fixtures.models import write_triage_dataset

CONFIG = "max_steps: 4\nsave_steps: 0\nmin_examples: 8\n"


def _with_rationales(data: Path) -> Path:
    lines = []
    for line in (data / "train.jsonl").read_text().splitlines():
        record = json.loads(line)
        ticket, label = record["messages"][1]["content"], record["messages"][-1]["content"]
        lines.append(json.dumps({**record, "rationale": rationale(ticket, label)}))
    (data / "train.jsonl").write_text("\n".join(lines) + "\n")
    return data


@pytest.mark.slow
def test_sweep_shows_rationales_curriculum_and_data_size_side_by_side(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    data = _with_rationales(write_triage_dataset(tmp_path / "data", n_train=40, n_eval=8, seed=2))
    config = tmp_path / "train.yaml"
    config.write_text(CONFIG)
    out = tmp_path / "sweep"
    result = CliRunner().invoke(
        main,
        [
            "sweep",
            "--dataset",
            str(data),
            "--base-model",
            str(tiny_model_dir),
            "--out",
            str(out),
            "--param",
            "rationales=false,true",
            "--param",
            "curriculum=none,length",
            "--data-sizes",
            "25,50,100",
            "--config",
            str(config),
            "--eval-limit",
            "4",
        ],
    )
    assert result.exit_code == 0, result.output
    document = json.loads((out / "sweep.json").read_text())
    runs = {r["name"]: r for r in document["runs"]}
    assert list(runs) == [
        "baseline",
        "rationales=True",
        "curriculum=length",
        "data=25%",
        "data=50%",
    ]
    assert all("error" not in r for r in runs.values())
    # The rationale run learned twice the examples (answer + rationale task per row).
    train_examples = {n: r["train"]["metrics"]["train_examples"] for n, r in runs.items()}
    assert train_examples["rationales=True"] == 2 * train_examples["baseline"] == 80
    assert train_examples["data=25%"] == 10
    for name, key, value in (
        ("rationales=True", "rationales", True),
        ("curriculum=length", "curriculum", "length"),
    ):
        lineage = json.loads(
            (out / "runs" / f"{runs[name]['index']:02d}" / "adapter" / "distill.json").read_text()
        )
        assert lineage["config"][key] == value
    assert set(document["tables"]) == {"rationales", "curriculum", "data_size"}
    # Local eval adds perplexity; training reports peak memory; the report shows both.
    assert all(r["metrics"]["perplexity"] > 1.0 for r in runs.values())
    assert all(r["train"]["metrics"]["peak_rss_mb"] > 50 for r in runs.values())
    html = (out / "sweep.html").read_text()
    for heading in ("<h2>rationales</h2>", "<h2>curriculum</h2>", "<h2>data_size</h2>"):
        assert heading in html
    assert "<th>perplexity</th>" in html and "<th>peak MiB</th>" in html
