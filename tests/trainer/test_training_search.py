"""The learning-rate search before a run: candidates, choice, default on a new base model."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from gateway.cli import main
from tests.fixtures.models import write_triage_dataset
from trainer.registry import registry as reg
from trainer.training.cli import _wants_search
from trainer.training.config import TrainConfig
from trainer.training.search import (
    Candidate,
    base_is_new,
    lr_candidates,
    pick,
    search_steps,
    sweep_preset,
)


@pytest.mark.parametrize(
    ("lr", "candidates"),
    [(2e-3, [0.000667, 0.002, 0.006]), (1e-3, [0.000333, 0.001, 0.003]), (0.5, [0.167, 0.5])],
)
def test_lr_candidates(lr: float, candidates: list[float]) -> None:
    assert lr_candidates(lr) == candidates


@pytest.mark.parametrize(("full", "steps"), [(8, 10), (40, 10), (100, 25), (300, 50), (9000, 50)])
def test_search_steps(full: int, steps: int) -> None:
    assert search_steps(full) == steps


def _c(lr: float, agreement: float | None, eval_loss: float | None, loss: float) -> Candidate:
    return Candidate(lr, 10, agreement, eval_loss, loss, None)


@pytest.mark.parametrize(
    ("candidates", "chosen"),
    [
        ([_c(1, 0.2, 0.5, 0.5), _c(2, 0.9, 0.9, 0.9), _c(3, 0.4, 0.1, 0.1)], 2),  # agreement
        ([_c(1, 0.9, 0.5, 0.5), _c(2, 0.9, 0.3, 0.9)], 2),  # tie: lower eval loss
        ([_c(1, None, None, 0.5), _c(2, None, None, 0.2)], 2),  # no eval split: train loss
        ([_c(1, 0.5, float("nan"), 0.5), _c(2, 0.5, 0.7, 0.9)], 2),  # NaN loss loses
    ],
)
def test_pick(candidates: list[Candidate], chosen: float) -> None:
    assert pick(candidates).learning_rate == chosen


@pytest.mark.parametrize(
    ("settings", "n", "steps", "values"),
    [
        ({"learning_rate": 2e-3, "min_steps": 300}, 600, 50, ["0.000667", "0.002", "0.006"]),
        (
            {"learning_rate": 1e-3, "min_steps": 0, "epochs": 1.0},
            160,
            10,
            ["0.000333", "0.001", "0.003"],
        ),
    ],
)
def test_sweep_preset_is_the_search_as_a_sweep(
    settings: dict[str, float], n: int, steps: int, values: list[str]
) -> None:
    config, (name, tried) = sweep_preset(TrainConfig(**settings), n)  # type: ignore[arg-type]
    assert config.max_steps == steps and name == "learning_rate" and tried == values


def test_base_is_new() -> None:
    assert base_is_new("/m/a", [])
    assert base_is_new("/m/a", ["/m/b"])
    assert not base_is_new("/m/a", ["/m/b", "/m/a"])


def test_search_defaults_to_base_models_new_to_the_registry(
    trained_adapter_dir: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    store = tmp_path / "store.duckdb"
    base = str(tiny_model_dir)
    assert _wants_search(None, False, None, base) is False  # no registry to ask
    assert _wants_search(None, False, store, base) is True  # empty registry: new
    assert _wants_search("lr", False, None, base) is True
    reg.register_adapter(store, trained_adapter_dir)
    assert _wants_search(None, False, store, base) is False  # known now
    assert _wants_search("lr", False, store, base) is True
    with pytest.raises(click.UsageError, match="contradict"):
        _wants_search("lr", True, store, base)


def test_search_lr_from_the_cli(tiny_model_dir: Path, tmp_path: Path) -> None:
    data = write_triage_dataset(tmp_path / "data", n_train=120, n_eval=30)
    out = tmp_path / "adapters" / "searched"
    args = ["train", "--dataset", str(data), "--base-model", str(tiny_model_dir)]
    result = CliRunner().invoke(
        main, [*args, "--out", str(out), "--quiet", "--max-steps", "40", "--search", "lr"]
    )
    assert result.exit_code in (0, 3), result.output  # 3: 40 steps may not learn the task
    assert "lr search: chose" in result.output
    lineage = json.loads((out / "distill.json").read_text())
    search = lineage["search"]
    tried = [c["learning_rate"] for c in search["candidates"]]
    assert tried == lr_candidates(lineage["search"]["configured"]) and len(tried) == 3
    assert search["chosen"] in tried and lineage["config"]["learning_rate"] == search["chosen"]
    assert all(c["steps"] == search["steps_per_candidate"] == 10 for c in search["candidates"])
    assert all(c["agreement"] is not None for c in search["candidates"])
    assert sorted(p.name for p in out.parent.iterdir()) == ["searched"]  # scratch removed
