"""Training defaults by kind of student: a pretrained model, or the random-init tiny stand-in.

`distill train`, `distill sweep`, the demo and the benches start from the preset the base model
calls for; a --config file and flags override it, and the adapter's lineage (distill.json,
config.preset) says which preset applied. The measurements behind each value are in
docs/training-defaults.md (bench/student_recipe.py and bench/heldout.py reproduce them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# What `distill model tiny` writes beside its weights; nothing else carries it.
TINY_MARKER = "distill_tiny.json"


@dataclass(frozen=True)
class Preset:
    name: str
    values: dict[str, Any] = field(default_factory=dict)


# A pretrained student (SmolLM2-135M-Instruct measured, on 2 CPU cores): it already speaks,
# so a LoRA needs far fewer, smaller steps than the random-init model, and each step costs
# ~100x more (30 layers of 576 against 2 of 128). One pass over the data, at least 60 steps.
PRETRAINED = Preset(
    "pretrained",
    {
        "learning_rate": 1e-3,
        "epochs": 1.0,
        "min_steps": 60,
        "batch_size": 8,
        "rank": 16,
        "alpha": 32,
        "warmup_ratio": 0.1,
    },
)
# The random-init stand-in: TrainConfig's own field defaults were chosen for it (lr 2e-3,
# >= 300 steps of 16); it learns a label set from scratch and needs the many steps.
RANDOM_INIT = Preset("random-init", {})


def preset_for(base_model: str) -> Preset:
    """The tiny stand-in (its marker file) gets RANDOM_INIT; every other base is pretrained."""
    path = Path(base_model).expanduser()
    return RANDOM_INIT if (path / TINY_MARKER).is_file() else PRETRAINED


def preset_defaults(base_model: str) -> dict[str, Any]:
    """The settings `load_train_config(defaults=...)` starts from for this base model."""
    preset = preset_for(base_model)
    return {**preset.values, "preset": preset.name}
