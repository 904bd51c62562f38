"""A short learning-rate search before the full run ("start small"): few candidates, few steps."""

from __future__ import annotations

import dataclasses
import math
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainer.training.config import TrainConfig, planned_steps

# Around the configured rate: a third, itself, three times (a half-decade apart each way).
LR_FACTORS: tuple[float, ...] = (1 / 3, 1.0, 3.0)
SEARCH_CHECK_EXAMPLES = 50  # eval prompts each candidate answers


@dataclass(frozen=True)
class Candidate:
    """One short run of the search and how it ended."""

    learning_rate: float
    steps: int
    agreement: float | None
    eval_loss: float | None
    final_loss: float | None
    passed: bool | None  # its learning check (None without an eval split)


def lr_candidates(learning_rate: float) -> list[float]:
    """The rates to try around `learning_rate`, within the (0, 1) TrainConfig accepts."""
    return [float(f"{learning_rate * f:.3g}") for f in LR_FACTORS if learning_rate * f < 1.0]


def search_steps(full_steps: int) -> int:
    """Steps per candidate: a quarter of the full run, between 10 and 50."""
    return max(10, min(50, full_steps // 4))


def _score(c: Candidate) -> tuple[float, float, float]:
    # Higher is better: agreement first, then the lower eval loss, then the lower train loss.
    def finite(x: float | None) -> float:
        return x if x is not None and math.isfinite(x) else math.inf

    agreement = c.agreement if c.agreement is not None else -1.0
    return (agreement, -finite(c.eval_loss), -finite(c.final_loss))


def pick(candidates: Sequence[Candidate]) -> Candidate:
    """The best candidate: highest eval agreement, then lowest eval loss, then train loss."""
    if not candidates:
        raise ValueError("no candidates to pick from")
    return max(candidates, key=_score)


def sweep_preset(config: TrainConfig, n_examples: int) -> tuple[TrainConfig, tuple[str, list[str]]]:
    """`distill sweep --preset lr-search`: the search's candidates as a sweep parameter, each
    run as short as a search run."""
    steps = search_steps(planned_steps(config, n_examples))
    values = [repr(lr) for lr in lr_candidates(config.learning_rate)]
    return dataclasses.replace(config, max_steps=steps), ("learning_rate", values)


def base_is_new(base_model: str, registered_bases: Sequence[str]) -> bool:
    """Whether no registered adapter was trained on this base model."""
    return base_model not in set(registered_bases)


def search_learning_rate(
    train: Callable[[Path, TrainConfig], Any],
    config: TrainConfig,
    n_examples: int,
    scratch: Path,
    log: Callable[[str], None] = print,
) -> tuple[TrainConfig, dict[str, Any]]:
    """Train each candidate briefly into `scratch`, keep the best rate; the record for lineage.

    `train(out_dir, config)` trains one adapter and returns train_adapter's TrainResult.
    """
    steps = search_steps(planned_steps(config, n_examples))
    results = []
    try:
        for i, lr in enumerate(lr_candidates(config.learning_rate)):
            short = dataclasses.replace(
                config,
                learning_rate=lr,
                max_steps=steps,
                save_steps=0,
                check_examples=min(config.check_examples, SEARCH_CHECK_EXAMPLES),
            )
            result = train(scratch / f"lr-{i}", short)
            m = result.metrics
            check = result.check
            results.append(
                Candidate(
                    learning_rate=lr,
                    steps=result.steps,
                    agreement=check.agreement if check else None,
                    eval_loss=m.get("eval_loss"),
                    final_loss=m.get("final_loss"),
                    passed=check.passed if check else None,
                )
            )
            log(
                f"lr search {i + 1}: lr {lr:g}, {result.steps} steps: "
                + (f"agreement {check.agreement:.3f}, " if check else "")
                + f"eval loss {m.get('eval_loss', float('nan')):.4f}"
            )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    best = pick(results)
    record = {
        "param": "learning_rate",
        "steps_per_candidate": steps,
        "picked_by": "eval agreement, then eval loss, then train loss",
        "candidates": [dataclasses.asdict(c) for c in results],
        "chosen": best.learning_rate,
        "configured": config.learning_rate,
    }
    return dataclasses.replace(config, learning_rate=best.learning_rate), record
