"""`distill train`: LoRA-distill a student from a dataset directory; prints a summary."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click

from gateway.store.cli import store_option
from trainer.training.config import CURRICULA, LR_SCHEDULERS, PRECISIONS

MULTI_GPU_HELP = """
Multi-GPU / multi-node: launch the same module with accelerate or torchrun, no code changes
(each process trains on its shard of every batch; rank 0 writes the adapter):

\b
  accelerate launch --multi_gpu --num_processes 4 -m trainer.training --dataset D ...
  torchrun --nproc_per_node 4 -m trainer.training --dataset D --base-model M --out A
"""


def _parse_sets(values: tuple[str, ...]) -> dict[str, str]:
    pairs = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", param_hint="--set")
        pairs[key.strip()] = value.strip()
    return pairs


@click.command(epilog=MULTI_GPU_HELP)
@click.option(
    "--dataset",
    "dataset_dir",
    type=click.Path(path_type=Path),
    required=True,
    help="Dataset dir with train.jsonl (and eval.jsonl, dataset.json).",
)
@click.option(
    "--base-model", required=True, help="Student base model: a local directory or a hub id."
)
@click.option(
    "--out", "out_dir", type=click.Path(path_type=Path), required=True, help="Adapter directory."
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    help="YAML file of training settings (see TrainConfig); flags override it.",
)
# Defaults come from the student's preset (trainer/training/presets.py): a pretrained base
# model, or the random-init tiny stand-in (its own values in brackets).
@click.option("--rank", type=int, help="LoRA rank (default 16).")
@click.option("--alpha", type=int, help="LoRA alpha (default 32).")
@click.option("--lr", "learning_rate", type=float, help="Learning rate (default 1e-3 [2e-3]).")
@click.option("--epochs", type=float, help="Passes over the data (default 1 [3]).")
@click.option("--min-steps", type=int, help="At least this many steps (default 60 [300]).")
@click.option("--max-steps", type=int, help="Exactly this many steps (overrides epochs).")
@click.option("--batch-size", type=int, help="Examples per step per device (default 8 [16]).")
@click.option("--max-seq-len", type=int, help="Skip longer conversations (default 256).")
@click.option("--target-modules", help="Comma-separated module names to adapt.")
@click.option("--seed", type=int, help="Random seed (default 0).")
@click.option(
    "--rationales/--no-rationales",
    default=None,
    help="Also learn the dataset's rationales as a '[rationale]'-prefixed second task.",
)
@click.option(
    "--curriculum",
    type=click.Choice(CURRICULA),
    help="Example order: none (default), length, disagreement.",
)
@click.option("--precision", type=click.Choice(PRECISIONS), help="fp32 (default) or bf16.")
@click.option(
    "--lr-scheduler", type=click.Choice(LR_SCHEDULERS), help="Learning-rate schedule (cosine)."
)
@click.option("--warmup-ratio", type=float, help="Share of steps spent warming up (0.05).")
@click.option("--set", "sets", multiple=True, help="Any other setting as KEY=VALUE (repeatable).")
@click.option(
    "--search",
    type=click.Choice(["lr"]),
    help="First a short learning-rate search: 3 rates around --lr, a few steps each, the one "
    "with the best eval agreement kept (recorded in distill.json). Default: on when --store "
    "is given and no registered adapter was trained on this base model.",
)
@click.option("--no-search", is_flag=True, help="No learning-rate search, whatever the registry.")
@store_option(
    "The registry (store.path in distill.yaml, or a fleet store URL): a base model new to it "
    "gets the lr search.",
    default=None,
)
@click.option(
    "--resume", is_flag=True, help="Continue an interrupted run from its last checkpoint."
)
@click.option("--overwrite", is_flag=True, help="Replace --out if it exists.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def train(
    dataset_dir: Path,
    base_model: str,
    out_dir: Path,
    config_path: Path | None,
    sets: tuple[str, ...],
    search: str | None,
    no_search: bool,
    store: str | Path | None,
    resume: bool,
    overwrite: bool,
    quiet: bool,
    **flags: Any,
) -> None:
    """Distill a LoRA adapter onto a student model (loss on assistant tokens only).

    Writes adapter_config.json, adapter_model.safetensors and distill.json (lineage) to OUT,
    all at once at the end; checkpoints go to a hidden .OUT.partial dir next to it. Then
    answers the eval prompts and checks the run learned; exit status 3 when it did not
    (flat loss, one answer for everything, or agreement not above the majority baseline).
    """
    from trainer.training import TrainingInputError, load_train_config, train_adapter
    from trainer.training.presets import preset_defaults

    try:
        # The preset for this kind of student first (pretrained or the tiny stand-in).
        defaults = preset_defaults(base_model)
        config = load_train_config(config_path, defaults=defaults, **_parse_sets(sets), **flags)
    except ValueError as exc:
        raise click.ClickException(f"bad training settings: {exc}") from exc
    try:
        search_lr = _wants_search(search, no_search, store, base_model)
        result = train_adapter(
            dataset_dir,
            base_model,
            out_dir,
            config,
            resume=resume,
            progress=not quiet,
            overwrite=overwrite,
            search_lr=search_lr,
            log=click.echo,
        )
    except TrainingInputError as exc:
        raise click.ClickException(str(exc)) from exc
    except KeyboardInterrupt:
        from trainer.training.train import work_dir_for

        raise click.ClickException(
            f"interrupted; {out_dir} was not written. Checkpoints (if any were saved) are in "
            f"{work_dir_for(out_dir)}: rerun the same command with --resume to continue"
        ) from None
    if os.environ.get("RANK", "0") != "0":
        return  # under torchrun/accelerate, rank 0 reports for everyone
    m = result.metrics
    click.echo(f"adapter: {result.adapter_dir}")
    click.echo(
        f"steps: {result.steps}  time: {result.seconds:.1f}s  "
        f"tokens/s: {m['tokens_per_second']:.0f}  processes: {m['processes']:.0f}  "
        f"threads: {m['threads']:.0f}"
    )
    line = f"train loss: {m['train_loss']:.4f} (last {m['final_loss']:.4f})"
    if "eval_loss" in m:
        line += f"  eval loss: {m['eval_loss']:.4f}"
    click.echo(line)
    if m["skipped_too_long"] or m["skipped_no_target"]:
        click.echo(
            f"skipped: {m['skipped_too_long']:.0f} too long, "
            f"{m['skipped_no_target']:.0f} without assistant tokens"
        )
    for note in result.notes:
        click.echo(f"note: {note}")
    if result.search and "candidates" in result.search:
        tried = ", ".join(f"{c['learning_rate']:g}" for c in result.search["candidates"])
        click.echo(f"lr search: chose {result.search['chosen']:g} of {tried}")
    _report_check(result.check)


def _wants_search(search: str | None, no_search: bool, store: str | Path | None, base: str) -> bool:
    """--search lr, --no-search, or by default: on for a base model new to the registry."""
    if search and no_search:
        raise click.UsageError("--search and --no-search contradict each other; pick one")
    if search or no_search:
        return bool(search)
    if store is None:
        return False  # no registry to ask
    from trainer.registry.registry import list_adapters
    from trainer.training.base_model import resolve_base_model
    from trainer.training.search import base_is_new

    known = [r.base_model for r in list_adapters(store)]
    new = base_is_new(resolve_base_model(base).name, known)
    if new:
        click.echo(f"lr search: on, no adapter in {store} was trained on {base} (--no-search)")
    return new


def _report_check(check: Any) -> None:
    """The learning check's line; a failed check warns, advises and exits with status 3."""
    from trainer.training.check import ADVICE, EXIT_CHECK_FAILED

    if check is None:
        click.echo("check: skipped (no eval split, or check_examples=0)")
        return
    click.echo(
        f"check on {check.n} eval prompts: agreement {check.agreement:.3f} "
        f"(majority-answer baseline {check.majority_baseline:.3f}; most frequent student answer "
        f"{check.top_answer_share:.0%} of prompts, teacher's {check.teacher_top_share:.0%})"
    )
    if check.passed:
        return
    click.secho("warning: this run did not learn the task:", fg="yellow", err=True)
    for problem in check.problems:
        click.echo(f"  - {problem}", err=True)
    click.echo(ADVICE, err=True)
    raise SystemExit(EXIT_CHECK_FAILED)
