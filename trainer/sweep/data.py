"""Write the deterministic data-size subsamples of a dataset, each a complete dataset dir."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

from trainer.sweep.plan import subsample_indices


def read_card(dataset_dir: Path) -> dict[str, Any]:
    card = dataset_dir / "dataset.json"
    if not card.is_file():
        return {}
    try:
        value = json.loads(card.read_text())
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def check_dataset(dataset_dir: Path) -> list[str]:
    """The non-empty lines of train.jsonl; refuses a dataset without train and eval splits."""
    for split in ("train.jsonl", "eval.jsonl"):
        if not (dataset_dir / split).is_file():
            raise ValueError(
                f"{dataset_dir / split} not found: pass --dataset the output of "
                "`distill dataset build` (it needs train.jsonl and eval.jsonl)"
            )
    lines = [
        line for line in (dataset_dir / "train.jsonl").read_text().splitlines() if line.strip()
    ]
    if not lines:
        raise ValueError(f"{dataset_dir / 'train.jsonl'} is empty; build a bigger dataset")
    return lines


def write_subsample(dataset_dir: Path, out_dir: Path, percent: int, *, seed: int = 0) -> Path:
    """`percent` % of train.jsonl (same eval.jsonl) with a card recording where it came from."""
    lines = check_dataset(dataset_dir)
    keep = subsample_indices(len(lines), percent, seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    train = "".join(lines[i] + "\n" for i in keep)
    (out_dir / "train.jsonl").write_text(train)
    shutil.copyfile(dataset_dir / "eval.jsonl", out_dir / "eval.jsonl")
    digest = hashlib.sha256(train.encode())
    digest.update((out_dir / "eval.jsonl").read_bytes())
    parent = read_card(dataset_dir)
    counts = parent.get("counts")
    if isinstance(counts, dict):
        counts = {**counts, "train": len(keep)}
    card = {
        **parent,
        "content_hash": digest.hexdigest(),
        "parent_content_hash": parent.get("content_hash"),
        **({"counts": counts} if counts is not None else {}),
        "subsample": {"percent": percent, "seed": seed, "rows": len(keep), "of": len(lines)},
    }
    (out_dir / "dataset.json").write_text(json.dumps(card, indent=2))
    return out_dir
