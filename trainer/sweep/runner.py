"""Run a planned sweep: train and evaluate every run, write sweep.json/sweep.html, record runs."""

from __future__ import annotations

import dataclasses
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainer.evaluation.outdir import atomic_output_dir
from trainer.evaluation.runner import EvalConfig, run_eval, summary_metrics
from trainer.evaluation.runs import record_run
from trainer.sweep.data import check_dataset, read_card, write_subsample
from trainer.sweep.plan import (
    DATA_SIZE,
    RunSpec,
    best_run,
    group_tables,
    marginal_gains,
)
from trainer.sweep.report import render_sweep_report
from trainer.training import TrainConfig, train_adapter


@dataclass(frozen=True)
class SweepResult:
    out_dir: Path
    sweep_id: str
    document: dict[str, Any]
    failed: int


def run_configs(base: TrainConfig, runs: list[RunSpec]) -> list[TrainConfig]:
    """Every run's full config, built up front so a bad value fails before any training."""
    configs = []
    for run in runs:
        try:
            configs.append(dataclasses.replace(base, **run.overrides))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"sweep run {run.name!r}: {exc}") from exc
    return configs


def run_sweep(
    dataset_dir: Path,
    base_model: str,
    out_dir: Path,
    base_config: TrainConfig,
    runs: list[RunSpec],
    *,
    metric: str = "agreement",
    eval_config: EvalConfig | None = None,
    seed: int = 0,
    store: str | Path | None = None,
    log: Callable[[str], None] = print,
) -> SweepResult:
    """Train + evaluate each run in order; one failed run is recorded and the rest go on."""
    dataset_dir, out_dir = Path(dataset_dir), Path(out_dir)
    check_dataset(dataset_dir)
    configs = run_configs(base_config, runs)
    eval_config = eval_config or EvalConfig()
    sweep_id = uuid.uuid4().hex[:12]
    results: list[dict[str, Any]] = []

    with atomic_output_dir(out_dir) as scratch:
        for index, (run, config) in enumerate(zip(runs, configs, strict=True)):
            run_dir = Path("runs") / f"{index:02d}"
            data = dataset_dir
            if run.data_percent != 100:
                data = scratch / "data" / f"p{run.data_percent:03d}"
                if not data.exists():
                    write_subsample(dataset_dir, data, run.data_percent, seed=seed)
            log(f"[{index + 1}/{len(runs)}] {run.name}")
            record: dict[str, Any] = {
                "index": index,
                "name": run.name,
                "overrides": run.overrides,
                "data_percent": run.data_percent,
                "base_model": run.base_model,
                "groups": run.groups,
                "config": config.to_dict(),
                "dataset_hash": read_card(data).get("content_hash"),
                "adapter_path": str((out_dir / run_dir / "adapter").resolve()),
                "eval_dir": str((out_dir / run_dir / "eval").resolve()),
            }
            started = time.monotonic()
            try:
                trained = train_adapter(
                    data, run.base_model, scratch / run_dir / "adapter", config, progress=False
                )
                evaluated = run_eval(
                    trained.adapter_dir,
                    data,
                    scratch / run_dir / "eval",
                    eval_config,
                    base_model=run.base_model,
                )
                _point_eval_at(scratch / run_dir / "eval", record["adapter_path"])
            except Exception as exc:  # one bad run must not lose the others' results
                record["error"] = f"{exc.__class__.__name__}: {exc}"
                log(f"    failed: {record['error']}")
            else:
                record["train"] = {
                    "steps": trained.steps,
                    "seconds": trained.seconds,
                    "tokens": trained.tokens,
                    "metrics": trained.metrics,
                }
                record["train_seconds"] = trained.seconds
                record["metrics"] = summary_metrics(evaluated.metrics, evaluated.latency)
                log(f"    {metric} {record['metrics'].get(metric, float('nan')):.3f}")
            record["seconds"] = time.monotonic() - started
            results.append(record)

        document = sweep_document(
            sweep_id, dataset_dir, base_model, base_config, runs, results, metric, seed
        )
        (scratch / "sweep.json").write_text(json.dumps(document, indent=2, default=str))
        (scratch / "sweep.html").write_text(render_sweep_report(document))

    if store is not None:
        for record in results:
            if "error" in record:
                continue
            record_run(
                store,
                kind="sweep",
                sweep_id=sweep_id,
                metrics=record["metrics"],
                config={
                    **record["config"],
                    "name": record["name"],
                    "data_percent": record["data_percent"],
                    "sweep_metric": metric,  # the console plots the metric the sweep chose by
                },
                dataset_hash=record["dataset_hash"],
                base_model=record["base_model"],
                adapter_path=record["adapter_path"],
            )
    failed = sum("error" in r for r in results)
    return SweepResult(out_dir, sweep_id, document, failed)


def sweep_document(
    sweep_id: str,
    dataset_dir: Path,
    base_model: str,
    base_config: TrainConfig,
    runs: list[RunSpec],
    results: list[dict[str, Any]],
    metric: str,
    seed: int,
) -> dict[str, Any]:
    """Everything sweep.json holds: runs, per-parameter tables, the data curve, the best run."""
    best = best_run(results, metric)
    tables = group_tables(runs, results, metric)
    curve = sorted(
        (int(row["value"].removesuffix(" (base)")), float(row[metric]))
        for row in tables.get(DATA_SIZE, [])
        if isinstance(row[metric], int | float)
    )
    return {
        "sweep_id": sweep_id,
        "dataset": str(dataset_dir.resolve()),
        "dataset_hash": read_card(dataset_dir).get("content_hash"),
        "base_model": base_model,
        "base_config": base_config.to_dict(),
        "metric": metric,
        "seed": seed,
        "runs": results,
        "tables": {k: v for k, v in tables.items() if k != "baseline"},
        "data_curve": [{"percent": p, metric: v} for p, v in curve],
        "marginal_gains": marginal_gains(curve),
        "best": None if best is None else {"index": best, "name": results[best]["name"]},
    }


def _point_eval_at(eval_dir: Path, adapter_path: str) -> None:
    """eval.json was written while the adapter sat in the scratch dir; name its final home."""
    path = eval_dir / "eval.json"
    document = json.loads(path.read_text())
    document["adapter"] = adapter_path
    path.write_text(json.dumps(document, indent=2))
