"""Read an adapter directory and check it is one vLLM will serve (pure checks, thin reader)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# vLLM's default --max-lora-rank; a server started with a larger one can take more.
DEFAULT_MAX_RANK = 16
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
WEIGHT_FILES = ("adapter_model.safetensors", "adapter_model.bin")


class AdapterError(ValueError):
    """An adapter directory that cannot be registered or served, with what to do about it."""


@dataclass(frozen=True)
class AdapterInfo:
    path: Path
    base_model: str
    rank: int
    dataset_hash: str | None
    lineage: dict[str, Any] = field(default_factory=dict)
    adapter_config: dict[str, Any] = field(default_factory=dict)

    @property
    def metrics(self) -> dict[str, Any]:
        metrics = self.lineage.get("metrics")
        return metrics if isinstance(metrics, dict) else {}


def config_problems(config: dict[str, Any], *, max_rank: int = DEFAULT_MAX_RANK) -> list[str]:
    """Why vLLM would refuse this peft adapter_config.json; empty when it is servable."""
    problems = []
    peft_type = str(config.get("peft_type", "LORA")).upper()
    if peft_type != "LORA":
        problems.append(f"peft_type is {peft_type}; vLLM serves LoRA adapters only")
    if config.get("bias", "none") != "none":
        problems.append(f"bias={config.get('bias')!r}; retrain with bias='none'")
    if config.get("use_dora"):
        problems.append("use_dora=true; vLLM does not serve DoRA, retrain with use_dora=False")
    if config.get("modules_to_save"):
        problems.append(
            f"modules_to_save={config['modules_to_save']}; vLLM cannot load extra full modules, "
            "retrain without modules_to_save"
        )
    ranks = [config.get("r", 8), *dict(config.get("rank_pattern") or {}).values()]
    top = max(int(r) for r in ranks)
    if top > max_rank:
        problems.append(
            f"LoRA rank {top} is above the serving limit {max_rank}; retrain with r<={max_rank} "
            "or start vLLM with a larger --max-lora-rank"
        )
    return problems


def check_problems(lineage: dict[str, Any]) -> list[str]:
    """What `distill train`'s learning check found wrong with this adapter (empty: passed or
    not checked)."""
    check = lineage.get("check")
    if not isinstance(check, dict) or check.get("passed") is not False:
        return []
    return [str(p) for p in check.get("problems") or ["the learning check failed"]]


def _read_json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise AdapterError(f"{path} is not valid JSON ({exc}); re-save the adapter") from exc
    if not isinstance(value, dict):
        raise AdapterError(f"{path} must hold a JSON object")
    return value


def dataset_hash_of(lineage: dict[str, Any]) -> str | None:
    """The training set's content hash, wherever the lineage file keeps it."""
    direct = lineage.get("dataset_hash")
    if direct:
        return str(direct)
    dataset = lineage.get("dataset")
    if isinstance(dataset, dict) and dataset.get("content_hash"):
        return str(dataset["content_hash"])
    return None


def read_adapter(path: str | Path) -> AdapterInfo:
    """Load adapter_config.json (required) and distill.json (lineage, optional) from a directory."""
    directory = Path(path).expanduser().resolve()
    if not directory.is_dir():
        raise AdapterError(
            f"adapter directory {directory} does not exist; pass the --out of `distill train`"
        )
    config_path = directory / "adapter_config.json"
    if not config_path.is_file():
        raise AdapterError(
            f"{directory} has no adapter_config.json: it is not a peft adapter directory"
        )
    if not any((directory / name).is_file() for name in WEIGHT_FILES):
        raise AdapterError(f"{directory} has no adapter weights ({' or '.join(WEIGHT_FILES)})")
    config = _read_json(config_path)
    lineage_path = directory / "distill.json"
    lineage = _read_json(lineage_path) if lineage_path.is_file() else {}
    base = lineage.get("base_model") or config.get("base_model_name_or_path")
    if not base:
        raise AdapterError(
            f"{directory}: no base model in distill.json or adapter_config.json "
            "(base_model_name_or_path); re-save the adapter with its base model recorded"
        )
    return AdapterInfo(
        path=directory,
        base_model=str(base),
        rank=int(config.get("r", 8)),
        dataset_hash=dataset_hash_of(lineage),
        lineage=lineage,
        adapter_config=config,
    )


def check_name(name: str) -> str:
    if not NAME_PATTERN.match(name):
        raise AdapterError(
            f"adapter name {name!r} is not usable as a served model name: use letters, digits, "
            "'.', '_' or '-' (at most 128 characters)"
        )
    return name
