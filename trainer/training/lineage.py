"""What an adapter records about its making (distill.json), and the check that vLLM can serve it."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import subprocess
from pathlib import Path
from typing import Any

import gateway
from trainer.training.config import TrainConfig
from trainer.training.data import TrainingInputError

ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors", "distill.json")


def dataset_card(dataset_dir: Path) -> dict[str, Any]:
    """dataset.json, or a card with a hash computed from the files when it is missing."""
    card_path = dataset_dir / "dataset.json"
    if card_path.is_file():
        try:
            card = json.loads(card_path.read_text())
        except json.JSONDecodeError as exc:
            raise TrainingInputError(f"{card_path} is not valid JSON ({exc.msg})") from None
        if isinstance(card, dict) and card.get("content_hash"):
            return card
    digest = hashlib.sha256()
    for name in ("train.jsonl", "eval.jsonl"):
        if (dataset_dir / name).is_file():
            digest.update((dataset_dir / name).read_bytes())
    return {"content_hash": digest.hexdigest(), "content_hash_source": "computed by train"}


def git_commit() -> str | None:
    """The commit of the code that trained, when it runs from a git checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def library_versions() -> dict[str, str]:
    import peft
    import torch
    import transformers

    return {
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "peft": peft.__version__,
    }


def lineage_record(
    *,
    base_model: str,
    dataset_dir: Path,
    card: dict[str, Any],
    config: TrainConfig,
    metrics: dict[str, float],
    steps: int,
    resumed_from: str | None,
    check: dict[str, Any] | None = None,
    answer_tokens: dict[str, int] | None = None,
    serving: dict[str, Any] | None = None,
    tokenizer: dict[str, Any] | None = None,
    search: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The content of distill.json (the registry stores it as the adapter's lineage)."""
    return {
        "format": 1,
        "created_at": dt.datetime.now(dt.UTC).isoformat(),
        "base_model": base_model,
        "dataset": {"dir": str(dataset_dir.resolve()), **card},
        "dataset_hash": card["content_hash"],
        "config": config.to_dict(),
        "metrics": metrics,
        "steps": steps,
        "resumed_from": resumed_from,
        # Did the run learn (agreement on the eval split beside the majority baseline)? The
        # registry refuses a failed one as a rollout candidate unless forced.
        "check": check,
        # The student's tokens in the longest answer: eval and sweep generate this long (+margin).
        "answer_tokens": answer_tokens,
        # The vLLM --max-lora-rank this adapter needs, and how to serve it when above 16.
        "serving": serving,
        "tokenizer": tokenizer,  # the pad token training used, and why when it chose one
        "search": search,  # the learning-rate search before the run: candidates and choice
        "code_version": gateway.__version__,
        "git_commit": git_commit(),
        "libraries": library_versions(),
    }


def servability_problems(adapter_config: dict[str, Any], max_rank: int) -> list[str]:
    """Why vLLM would refuse an adapter with this adapter_config.json (empty: it would not)."""
    problems = []
    if adapter_config.get("peft_type") != "LORA":
        problems.append(f"peft_type={adapter_config.get('peft_type')!r} (only LORA)")
    if adapter_config.get("bias", "none") != "none":
        problems.append(f"bias={adapter_config.get('bias')!r} (must be 'none')")
    if adapter_config.get("use_dora"):
        problems.append("use_dora=true (DoRA is not supported)")
    if adapter_config.get("modules_to_save"):
        problems.append(f"modules_to_save={adapter_config['modules_to_save']} (must be empty)")
    rank = int(adapter_config.get("r", 0))
    if rank > max_rank:
        problems.append(f"r={rank} (above the serving limit {max_rank})")
    return problems


def check_adapter_dir(adapter_dir: Path, max_rank: int) -> None:
    """Refuse to publish an adapter that is incomplete or that vLLM would reject."""
    missing = [name for name in ADAPTER_FILES if not (adapter_dir / name).is_file()]
    if missing:
        raise RuntimeError(f"adapter in {adapter_dir} is missing {', '.join(missing)}")
    saved = json.loads((adapter_dir / "adapter_config.json").read_text())
    problems = servability_problems(saved, max_rank)
    if problems:
        raise RuntimeError(f"adapter is not servable by vLLM: {'; '.join(problems)}")
