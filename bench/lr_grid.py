"""A learning-rate grid on a built dataset, every run `distill train` with its defaults but --lr.

    python bench/lr_grid.py --dataset DIR --lr 3e-4,1e-3,2e-3 [--max-steps N] [--jobs 2]
    python bench/lr_grid.py --dataset DIR --search     # `distill train --search lr`, timed

DIR is a `distill dataset build` output (bench/heldout.py --keep leaves one per task). Each run
trains the real student (`distill model smollm2`) and reports what `distill train`'s learning
check measured on the eval split (agreement with the teacher: exact label, or field-level F1 on
JSON answers), the losses, steps, wall time, tokens/s, torch threads and peak RSS, with the
load average before and after. --jobs 2 runs two settings at once with one torch thread each
(on 2 cores, two 1-thread runs finish sooner than two 2-thread runs in turn). --eval also runs
`distill eval` on each adapter (JSON validity and field F1 on every eval prompt). One JSON line
per run to stdout and to --out.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from distill_demo.services import distill_argv


def load() -> float:
    return round(os.getloadavg()[0], 2)


def lineage_row(lineage: dict[str, Any]) -> dict[str, Any]:
    """What a grid row shows from an adapter's distill.json (its learning check and metrics)."""
    m, config, check = lineage.get("metrics", {}), lineage.get("config", {}), lineage.get("check")
    row = {
        "learning_rate": config.get("learning_rate"),
        "steps": lineage.get("steps"),
        "agreement": m.get("agreement"),
        "majority_baseline": m.get("majority_baseline"),
        "check_n": (check or {}).get("n"),
        "first_loss": (check or {}).get("first_loss"),
        "final_loss": m.get("final_loss"),
        "eval_loss": m.get("eval_loss"),
        "train_s": m.get("train_seconds"),
        "train_tokens": m.get("train_tokens"),
        "tokens_per_s": m.get("tokens_per_second"),
        "threads": m.get("threads"),
        "peak_rss_mb": m.get("peak_rss_mb"),
    }
    if lineage.get("search"):
        row["search"] = lineage["search"]
    return row


def run_one(
    dataset: Path, base: Path, work: Path, name: str, flags: list[str], threads: int, evaluate: bool
) -> dict[str, Any]:
    out = work / name
    argv = ["train", "--dataset", str(dataset), "--base-model", str(base), "--out", str(out)]
    argv += [*flags, "--quiet", "--overwrite", "--set", "save_steps=0"]
    if threads:
        argv += ["--set", f"num_threads={threads}"]
    row: dict[str, Any] = {"run": name, "flags": " ".join(flags), "load_before": load()}
    t0 = time.perf_counter()
    done = subprocess.run(distill_argv(*argv), capture_output=True, text=True)
    row["wall_s"] = round(time.perf_counter() - t0, 1)
    row["load_after"] = load()
    row["exit"] = done.returncode  # 3: the learning check failed (the adapter is still written)
    lineage_file = out / "distill.json"
    if not lineage_file.is_file():
        row["error"] = done.stderr[-2000:]
        return row
    row.update(lineage_row(json.loads(lineage_file.read_text())))
    if evaluate:
        report_dir = work / f"eval-{name}"
        t0 = time.perf_counter()
        eval_argv = ["eval", "--adapter", str(out), "--dataset", str(dataset)]
        subprocess.run(
            distill_argv(*eval_argv, "--out", str(report_dir)),
            check=True,
            stdout=subprocess.DEVNULL,
        )
        report = json.loads((report_dir / "eval.json").read_text())
        metrics = report.get("metrics", report)
        row["eval"] = {
            k: metrics.get(k) for k in ("n", "agreement", "field_f1", "json_valid", "exact_match")
        }
        row["eval_s"] = round(time.perf_counter() - t0, 1)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dataset", type=Path, required=True, help="a dataset build directory")
    parser.add_argument("--lr", default="3e-4,1e-3,2e-3", help="comma-separated learning rates")
    parser.add_argument("--max-steps", type=int, help="steps per run (default: the CLI's own)")
    parser.add_argument("--search", action="store_true", help="time `distill train --search lr`")
    parser.add_argument("--jobs", type=int, default=1, help="runs at once")
    parser.add_argument(
        "--threads", type=int, default=0, help="torch threads per run (0: --jobs 1 lets the CLI "
        "choose, --jobs N gives each run cores / N)",
    )  # fmt: skip
    parser.add_argument(
        "--check-examples", type=int, help="eval prompts the learning check answers (CLI: 100)"
    )
    parser.add_argument("--eval", action="store_true", help="also `distill eval` each adapter")
    parser.add_argument("--out", type=Path, default=Path("lr_grid.jsonl"))
    parser.add_argument("--keep", action="store_true", help="keep the adapters")
    args = parser.parse_args()

    from trainer.models.smollm2 import build_smollm2

    base, _ = build_smollm2()
    threads = args.threads or (
        0 if args.jobs == 1 else max(1, len(os.sched_getaffinity(0)) // args.jobs)
    )
    runs: list[tuple[str, list[str]]]
    extra = ["--max-steps", str(args.max_steps)] if args.max_steps else []
    if args.check_examples is not None:
        extra += ["--set", f"check_examples={args.check_examples}"]
    if args.search:
        runs = [("search-lr", ["--search", "lr", *extra])]
    else:
        rates = [r.strip() for r in args.lr.split(",") if r.strip()]
        runs = [(f"lr-{r}", ["--no-search", "--lr", r, *extra]) for r in rates]
    work = Path(tempfile.mkdtemp(prefix="distill-lr-grid-"))
    try:
        with ThreadPoolExecutor(args.jobs) as pool:
            futures = [
                pool.submit(run_one, args.dataset, base, work, name, flags, threads, args.eval)
                for name, flags in runs
            ]
            for future in futures:
                row = future.result()
                print(json.dumps(row), flush=True)
                with args.out.open("a") as f:
                    f.write(json.dumps(row) + "\n")
    finally:
        if args.keep:
            print(f"adapters in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
