"""Training settings: a validated dataclass with a help text per field, loadable from YAML."""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

LLAMA_LINEAR_MODULES: tuple[str, ...] = (
    "q_proj",
    "k_proj",
    "v_proj",
    "o_proj",
    "gate_proj",
    "up_proj",
    "down_proj",
)
LR_SCHEDULERS: tuple[str, ...] = ("linear", "cosine", "constant", "constant_with_warmup")
CURRICULA: tuple[str, ...] = ("none", "length", "disagreement")
PRECISIONS: tuple[str, ...] = ("fp32", "bf16")
VLLM_MAX_LORA_RANK = 512  # the largest --max-lora-rank vLLM accepts


def _help(text: str) -> dict[str, str]:
    return {"help": text}


@dataclass
class TrainConfig:
    """LoRA SFT settings. Defaults let a small unseen classification task converge."""

    rank: int = field(default=16, metadata=_help("LoRA rank r (vLLM must allow it)."))
    alpha: int = field(default=32, metadata=_help("LoRA alpha; the update is scaled by alpha/r."))
    dropout: float = field(default=0.0, metadata=_help("Dropout on the LoRA input."))
    target_modules: list[str] = field(
        default_factory=lambda: list(LLAMA_LINEAR_MODULES),
        metadata=_help("Module names that get LoRA (default: every linear layer of a block)."),
    )
    learning_rate: float = field(default=2e-3, metadata=_help("Peak AdamW learning rate."))
    epochs: float = field(default=3.0, metadata=_help("Passes over train.jsonl."))
    min_steps: int = field(
        default=300,
        metadata=_help(
            "Train at least this many optimizer steps, repeating a small dataset (0: off)."
        ),
    )
    max_steps: int | None = field(
        default=None, metadata=_help("Stop after exactly this many steps (overrides epochs).")
    )
    batch_size: int = field(default=16, metadata=_help("Examples per step per device."))
    gradient_accumulation_steps: int = field(
        default=1, metadata=_help("Micro-batches summed into one optimizer step.")
    )
    max_seq_len: int = field(
        default=256, metadata=_help("Longer conversations are skipped (and counted).")
    )
    lr_scheduler: str = field(
        default="cosine", metadata=_help("One of " + ", ".join(LR_SCHEDULERS))
    )
    warmup_ratio: float = field(default=0.05, metadata=_help("Share of steps spent warming up."))
    weight_decay: float = field(default=0.0, metadata=_help("AdamW weight decay."))
    max_grad_norm: float = field(default=1.0, metadata=_help("Gradient clipping norm."))
    seed: int = field(default=0, metadata=_help("Seed for LoRA init and data order."))
    save_steps: int = field(
        default=100, metadata=_help("Checkpoint every N steps for --resume (0: no checkpoints).")
    )
    save_total_limit: int = field(default=2, metadata=_help("Checkpoints kept on disk."))
    logging_steps: int = field(default=25, metadata=_help("Log the loss every N steps."))
    min_examples: int = field(
        default=16, metadata=_help("Refuse datasets with fewer training examples than this.")
    )
    num_threads: int = field(
        default=0, metadata=_help("CPU threads for torch (0: the cores available per process).")
    )
    max_serving_rank: int = field(
        default=16,
        metadata=_help(
            "The serving vLLM's --max-lora-rank (its default is 16). A higher --rank still "
            "trains; the summary and distill.json say which --max-lora-rank serves it."
        ),
    )
    curriculum: str = field(
        default="none",
        metadata=_help(
            "Example order: none (shuffled, length-bucketed), length (shortest first) or "
            "disagreement (pairs the teachers agreed on first; needs a vote/judge dataset)."
        ),
    )
    precision: str = field(
        default="fp32",
        metadata=_help("fp32, or bf16 autocast (CPUs with AVX512-BF16/AMX, or GPUs)."),
    )
    rationales: bool = field(
        default=False,
        metadata=_help(
            "Also learn the dataset's rationales as a second task ('[rationale]' in the system "
            "prompt); the plain prompt still gets the answer alone. Needs `dataset enrich`."
        ),
    )
    rationale_weight: float = field(
        default=1.0, metadata=_help("Loss weight of the rationale task relative to the answer.")
    )
    preset: str = field(
        default="none",
        metadata=_help(
            "Which defaults the run started from: pretrained, random-init (the tiny stand-in) "
            "or none (these field defaults); set by `distill train` from the base model."
        ),
    )
    check_examples: int = field(
        default=100,
        metadata=_help(
            "After training, answer this many eval prompts (greedy) and check the run learned: "
            "agreement above the majority-answer baseline, no constant answer (0: no check)."
        ),
    )

    def __post_init__(self) -> None:
        positive = ("rank", "alpha", "batch_size", "gradient_accumulation_steps", "max_seq_len")
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be at least 1")
        if self.rank > VLLM_MAX_LORA_RANK:
            raise ValueError(
                f"rank={self.rank} is above {VLLM_MAX_LORA_RANK}, the largest LoRA rank vLLM "
                "serves; lower --rank"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout={self.dropout} must be in [0, 1)")
        if not 0.0 < self.learning_rate < 1.0:
            raise ValueError(f"learning_rate={self.learning_rate} must be in (0, 1)")
        if self.epochs <= 0:
            raise ValueError(f"epochs={self.epochs} must be positive")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"max_steps={self.max_steps} must be at least 1 (or unset)")
        for name in (
            "min_steps",
            "save_steps",
            "min_examples",
            "num_threads",
            "weight_decay",
            "check_examples",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}={getattr(self, name)} must not be negative")
        if self.save_total_limit < 1 or self.logging_steps < 1:
            raise ValueError(
                f"save_total_limit={self.save_total_limit} and "
                f"logging_steps={self.logging_steps} must be at least 1"
            )
        if not 0.0 <= self.warmup_ratio < 1.0:
            raise ValueError(f"warmup_ratio={self.warmup_ratio} must be in [0, 1)")
        if self.max_grad_norm <= 0:
            raise ValueError(f"max_grad_norm={self.max_grad_norm} must be positive")
        if self.lr_scheduler not in LR_SCHEDULERS:
            raise ValueError(
                f"lr_scheduler={self.lr_scheduler!r} is not one of {', '.join(LR_SCHEDULERS)}"
            )
        if self.curriculum not in CURRICULA:
            raise ValueError(f"curriculum={self.curriculum!r} is not one of {', '.join(CURRICULA)}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision={self.precision!r} is not one of {', '.join(PRECISIONS)}")
        if not isinstance(self.rationales, bool):
            raise ValueError(f"rationales={self.rationales!r} must be true or false")
        if self.rationale_weight < 0:
            raise ValueError(f"rationale_weight={self.rationale_weight} must not be negative")
        if not self.target_modules or not all(isinstance(m, str) for m in self.target_modules):
            raise ValueError(f"target_modules={self.target_modules!r} must be module names")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def serving_note(self) -> str | None:
        """How to serve a rank above the serving limit (None when the limit covers it)."""
        if self.rank <= self.max_serving_rank:
            return None
        return (
            f"rank {self.rank} is above max_serving_rank={self.max_serving_rank} (vLLM's "
            f"default --max-lora-rank is 16): serve it with vLLM --max-lora-rank >= {self.rank} "
            f"and register it with `distill adapters register --max-rank {self.rank}`"
        )


def planned_steps(config: TrainConfig, n_examples: int, world_size: int = 1) -> int:
    """Optimizer steps to run: max_steps if set, else epochs' worth but at least min_steps."""
    if config.max_steps is not None:
        return config.max_steps
    per_step = config.batch_size * config.gradient_accumulation_steps * world_size
    steps_per_epoch = max(1, -(-n_examples // per_step))
    return max(config.min_steps, round(config.epochs * steps_per_epoch))


def _coerce(name: str, annotation: Any, value: Any) -> Any:
    """Turn YAML/CLI values into the field's type ("3e-3" is a string in YAML 1.1)."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        if value is None:
            return None
        annotation = next(a for a in typing.get_args(annotation) if a is not type(None))
        origin = typing.get_origin(annotation)
    if origin is list:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list):
            raise ValueError(f"{name}={value!r} must be a list")
        return [str(v) for v in value]
    if annotation is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"{name}={value!r} is not true or false")
    try:
        if annotation is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(value)
        if annotation is float:
            return float(value)
        if annotation is str:
            return str(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}={value!r} is not a valid {annotation.__name__}") from None
    return value


def load_train_config(
    path: Path | None = None, *, defaults: dict[str, Any] | None = None, **overrides: Any
) -> TrainConfig:
    """`defaults` (a preset), then a YAML mapping (optional), then `overrides` (None ignored)."""
    values: dict[str, Any] = dict(defaults or {})
    if path is not None:
        try:
            loaded = yaml.safe_load(Path(path).read_text())
        except FileNotFoundError:
            raise ValueError(f"config file {path} does not exist") from None
        except yaml.YAMLError as exc:
            raise ValueError(f"config file {path} is not valid YAML: {exc}") from None
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ValueError(f"config file {path} must hold a mapping of setting: value")
        values.update(loaded)
    values.update({k: v for k, v in overrides.items() if v is not None})

    fields = typing.get_type_hints(TrainConfig)
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ValueError(
            f"unknown setting(s) {', '.join(unknown)}; known settings: {', '.join(fields)}"
        )
    coerced = {k: _coerce(k, fields[k], v) for k, v in values.items()}
    return TrainConfig(**coerced)
