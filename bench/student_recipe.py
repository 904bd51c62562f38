"""Which LoRA settings suit the real student: train SmolLM2-135M-Instruct on the demo task with
each setting, answer the held-out split greedily, and report agreement, loss and time.

    python bench/student_recipe.py --lr 3e-4,1e-3,2e-3 --steps 48 --batch-size 8

Datasets are written straight from the demo teacher's rule (the gateway path is measured by
bench/heldout.py); the eval prompts are new tickets, never trained on. One JSON line per
setting goes to stdout and to --out. Used to choose trainer/training/presets.py's values.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path
from typing import Any

from distill_demo.teacher import task


def write_triage(out: Path, n_train: int, n_eval: int, seed: int) -> Path:
    rng = random.Random(seed)
    out.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("eval", n_eval)):
        rows = []
        for _ in range(n):
            ticket, _ = task.generate_ticket(rng)
            messages = [
                {"role": "system", "content": task.SYSTEM_PROMPT},
                {"role": "user", "content": ticket},
                {"role": "assistant", "content": task.classify(ticket)},
            ]
            rows.append(json.dumps({"messages": messages}))
        (out / f"{split}.jsonl").write_text("\n".join(rows) + "\n")
    card = {"content_hash": f"triage-{seed}-{n_train}", "counts": {"train": n_train}}
    (out / "dataset.json").write_text(json.dumps(card))
    return out


def run_one(
    data: Path, base: Path, work: Path, settings: dict[str, Any], eval_n: int
) -> dict[str, Any]:
    from trainer.evaluation.runner import EvalConfig, run_eval
    from trainer.training import train_adapter
    from trainer.training.config import TrainConfig, load_train_config

    fields = TrainConfig.__dataclass_fields__
    values = {k: v for k, v in settings.items() if k in fields}
    if "check_examples" in fields:
        values["check_examples"] = 0  # measured below, on more examples
    config = load_train_config(None, save_steps=0, **values)
    name = "-".join(f"{k}{v}" for k, v in settings.items())
    t0 = time.perf_counter()
    result = train_adapter(data, str(base), work / name, config, progress=False)
    train_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    evaluated = run_eval(
        result.adapter_dir,
        data,
        work / f"eval-{name}",
        EvalConfig(limit=eval_n, max_tokens=8, perplexity=False),
        base_model=str(base),
    )
    m = evaluated.metrics
    return {
        **settings,
        "agreement": round(m["agreement"], 4),
        "n_eval": m["n"],
        "final_loss": round(result.metrics["final_loss"], 4),
        "train_s": round(train_s, 1),
        "tokens_per_s": round(result.metrics["tokens_per_second"], 1),
        "eval_s": round(time.perf_counter() - t0, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lr", default="1e-3", help="comma-separated learning rates")
    parser.add_argument("--steps", default="48", help="comma-separated step counts")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--rank", type=int, default=16)
    parser.add_argument("--n-train", type=int, default=1200)
    parser.add_argument("--eval", type=int, default=100, help="held-out examples per setting")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("student_recipe.jsonl"))
    args = parser.parse_args()

    from trainer.models.smollm2 import build_smollm2

    base, _ = build_smollm2()
    work = Path(tempfile.mkdtemp(prefix="distill-recipe-"))
    data = write_triage(work / "data", args.n_train, args.eval, args.seed)
    for lr in [float(x) for x in args.lr.split(",")]:
        for steps in [int(x) for x in args.steps.split(",")]:
            settings = {
                "learning_rate": lr,
                "max_steps": steps,
                "batch_size": args.batch_size,
                "rank": args.rank,
                "alpha": 2 * args.rank,
                "seed": args.seed,
            }
            row = run_one(data, base, work, settings, args.eval)
            print(json.dumps(row), flush=True)
            with args.out.open("a") as f:
                f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
