"""`distill sweep` for real: a tiny lr sweep plus a data-size ablation, recorded in a store."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner

from gateway.cli import main
from tests.fixtures.models import write_triage_dataset

# Few steps keep three real training runs to seconds each; learning is not what is tested here.
CONFIG = "max_steps: 5\nsave_steps: 0\nmin_examples: 8\n"


@pytest.fixture
def small_dataset(tmp_path: Path) -> Path:
    return write_triage_dataset(tmp_path / "data", n_train=80, n_eval=20, seed=5)


@pytest.mark.slow
def test_sweep_trains_evaluates_and_records_every_run(
    small_dataset: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    config = tmp_path / "train.yaml"
    config.write_text(CONFIG)
    out, store = tmp_path / "sweep", tmp_path / "distill.duckdb"
    result = CliRunner().invoke(
        main,
        [
            "sweep",
            "--dataset",
            str(small_dataset),
            "--base-model",
            str(tiny_model_dir),
            "--out",
            str(out),
            "--param",
            "lr=1e-2",
            "--data-sizes",
            "50,100",
            "--config",
            str(config),
            "--eval-limit",
            "8",
            "--store",
            str(store),
        ],
    )
    assert result.exit_code == 0, result.output
    document = json.loads((out / "sweep.json").read_text())
    runs = document["runs"]
    assert [r["name"] for r in runs] == ["baseline", "learning_rate=0.01", "data=50%"]
    assert all("error" not in r for r in runs)
    assert all(r["metrics"]["n"] == 8 for r in runs)
    # each run trained with its own settings: the adapter's lineage says so
    lineage = json.loads((out / "runs" / "01" / "adapter" / "distill.json").read_text())
    assert lineage["config"]["learning_rate"] == pytest.approx(0.01)
    assert runs[0]["config"]["learning_rate"] == pytest.approx(2e-3)

    # the 50 % run trained on half of train.jsonl, and on the same eval split
    full = (small_dataset / "train.jsonl").read_text().splitlines()
    half = (out / "data" / "p050" / "train.jsonl").read_text().splitlines()
    assert len(half) == 40 and set(half) <= set(full)
    assert (out / "data" / "p050" / "eval.jsonl").read_bytes() == (
        small_dataset / "eval.jsonl"
    ).read_bytes()
    assert runs[2]["dataset_hash"] != runs[0]["dataset_hash"]

    assert [row["value"] for row in document["tables"]["learning_rate"]] == [
        "0.002 (base)",
        "0.01",
    ]
    assert [p["percent"] for p in document["data_curve"]] == [50, 100]
    assert len(document["marginal_gains"]) == 1
    assert document["best"]["index"] in (0, 1, 2)

    page = (out / "sweep.html").read_text()
    assert page.count("data:image/png;base64,") == 1
    assert "learning_rate" in page and "data_size" in page

    with duckdb.connect(str(store), read_only=True) as conn:
        rows = conn.execute(
            "SELECT kind, sweep_id, adapter_path, metrics FROM runs ORDER BY adapter_path"
        ).fetchall()
    assert len(rows) == 3
    assert {r[0] for r in rows} == {"sweep"} and {r[1] for r in rows} == {document["sweep_id"]}
    for _, _, adapter_path, metrics in rows:
        assert (Path(adapter_path) / "adapter_config.json").is_file()
        assert "agreement" in json.loads(metrics)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--param", "rank=1024"], "rank=1024 is above 512"),
        (["--param", "lr=fast"], "'fast' is not a number"),
        (["--param", "colour=red"], "not a training setting"),
        (["--data-sizes", "0,50"], "percentage in 1..100"),
    ],
)
def test_sweep_refuses_bad_plans_before_training(
    small_dataset: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    out = tmp_path / "sweep"
    result = CliRunner().invoke(
        main,
        [
            "sweep",
            "--dataset",
            str(small_dataset),
            "--base-model",
            str(tmp_path / "unused"),
            "--out",
            str(out),
            *args,
        ],
    )
    assert result.exit_code != 0
    assert message in result.output, result.output
    assert not out.exists()


def test_sweep_refuses_a_dataset_without_splits(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main,
        ["sweep", "--dataset", str(tmp_path), "--base-model", "m", "--out", str(tmp_path / "o")],
    )
    assert result.exit_code != 0
    assert "train.jsonl not found" in result.output
