"""One eval run: generate with the student, score against the teacher, write eval.json + report."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from trainer.evaluation import metrics as m
from trainer.evaluation.data import dataset_hash, load_eval_examples
from trainer.evaluation.generate import (
    GenerationError,
    GenerationRun,
    generate_locally,
    generate_with_server,
    generation_budget,
)
from trainer.evaluation.memory import peak_rss_mb
from trainer.evaluation.outdir import atomic_output_dir
from trainer.evaluation.perplexity import answer_perplexity
from trainer.evaluation.report import render_report
from trainer.evaluation.runs import record_run
from trainer.registry.validate import read_adapter
from trainer.training.tool_calls import generated_key


@dataclass(frozen=True)
class EvalConfig:
    """How to run an eval; everything has a default that suits the tiny demo task."""

    limit: int | None = None  # first N eval examples only
    max_tokens: int | None = None  # answer budget per example (None: the longest answer's +25 %)
    concurrency: int = 8  # in-flight requests when using a server
    batch_size: int = 16  # prompts per generate() call when local
    worst: int = 20  # examples shown side by side in the report
    perplexity: bool = True  # local runs: also score the answers' perplexity under the student

    def __post_init__(self) -> None:
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"limit={self.limit}: must be at least 1 (or unset for all)")
        if self.max_tokens is not None and self.max_tokens < 1:
            raise ValueError(f"max_tokens={self.max_tokens}: must be at least 1 (or unset)")
        for name in ("concurrency", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)}: must be at least 1")
        if self.worst < 0:
            raise ValueError(f"worst={self.worst}: must be 0 or more")


@dataclass(frozen=True)
class EvalResult:
    out_dir: Path
    metrics: dict[str, Any]
    latency: dict[str, float]
    run_id: str | None


def summary_metrics(metrics: dict[str, Any], latency: dict[str, float]) -> dict[str, Any]:
    """The flat headline numbers (no matrices), as stored in `runs` and compared across runs."""
    flat = {k: v for k, v in metrics.items() if isinstance(v, int | float | str)}
    return {**flat, **latency}


def run_eval(
    adapter_dir: str | Path,
    dataset_dir: str | Path,
    out_dir: str | Path,
    config: EvalConfig | None = None,
    *,
    server: str | None = None,
    model: str | None = None,
    base_model: str | None = None,
    store: str | Path | None = None,
) -> EvalResult:
    config = config or EvalConfig()
    adapter = read_adapter(adapter_dir)
    examples = load_eval_examples(dataset_dir, limit=config.limit)
    prompts = [e.messages for e in examples]
    tools = [e.tools for e in examples]
    base = base_model or adapter.base_model
    looks_like_path = base.startswith(("/", ".", "~")) or base.count("/") > 1
    if not server and not Path(base).exists() and looks_like_path:
        raise GenerationError(
            f"base model {base} does not exist; pass --base-model with the student's path"
        )
    if config.max_tokens is None:
        budget = generation_budget([e.target for e in examples], base, adapter.lineage)
        config = replace(config, max_tokens=budget)
    assert config.max_tokens is not None

    served: str | None = None
    run: GenerationRun
    if server:
        served, run = generate_with_server(
            server,
            adapter.path,
            prompts,
            model=model,
            max_tokens=config.max_tokens,
            concurrency=config.concurrency,
            tools=tools,
        )
    else:
        run = generate_locally(
            adapter.path,
            base,
            prompts,
            max_tokens=config.max_tokens,
            batch_size=config.batch_size,
            tools=tools,
        )

    # An answer that calls tools is compared by its calls (trainer.training.tool_calls).
    pairs = zip(run.generations, examples, strict=True)
    predictions = [generated_key(g.text) if e.calls_tools else g.text for g, e in pairs]
    targets = [e.target for e in examples]
    metrics = m.compute_metrics(predictions, targets)
    if config.perplexity and not server:
        # Perplexity needs the student's token probabilities: only a local run has them.
        metrics["perplexity"] = answer_perplexity(adapter.path, base, examples, config.batch_size)
    # Peak resident memory of this process (the student when local, the client with a server).
    metrics["peak_rss_mb"] = peak_rss_mb()
    latency = m.latency_summary(
        [g.latency_ms for g in run.generations],
        [g.completion_tokens for g in run.generations],
        run.wall_s,
    )
    kind = metrics["task_kind"]
    records: list[dict[str, Any]] = [
        {
            "index": i,
            "prompt": example.user_text,
            "target": example.target,
            "prediction": generation.text,
            "latency_ms": generation.latency_ms,
            "completion_tokens": generation.completion_tokens,
            "scores": m.example_scores(predictions[i], example.target, kind),
        }
        for i, (example, generation) in enumerate(zip(examples, run.generations, strict=True))
    ]
    info: dict[str, Any] = {
        "adapter": str(adapter.path),
        "dataset": str(Path(dataset_dir).resolve()),
        "dataset_hash": dataset_hash(dataset_dir),
        "base_model": base,
        "mode": "server" if server else "local",
        "server": server,
        "model": served,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "config": asdict(config),
    }
    worst = m.worst_indices([r["scores"] for r in records], config.worst)
    html = render_report(info=info, metrics=metrics, latency=latency, examples=records, worst=worst)

    with atomic_output_dir(out_dir) as scratch:
        headline = {k: metrics[k] for k in metrics["headline"] if k in metrics}
        document = {**info, "headline": headline, "metrics": metrics, "latency": latency}
        (scratch / "eval.json").write_text(json.dumps(document, indent=2))
        (scratch / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
        (scratch / "report.html").write_text(html)

    run_id = None
    if store is not None:
        run_id = record_run(
            store,
            kind="eval",
            metrics=summary_metrics(metrics, latency),
            config={
                **info["config"],
                "mode": info["mode"],
                "server": server,
                "model": served,
                "out_dir": str(Path(out_dir).resolve()),
                "dataset": info["dataset"],
            },  # the console reads predictions and the dataset's card
            dataset_hash=info["dataset_hash"],
            base_model=base,
            adapter_path=str(adapter.path),
        )
    return EvalResult(Path(out_dir), metrics, latency, run_id)
