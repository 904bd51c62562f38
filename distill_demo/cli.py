"""`distill demo`: the command-line shell around `run_demo`."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from types import FrameType

import click


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # SIGTERM stops the demo the way Ctrl-C does: children first


@click.command()
@click.option(
    "--workdir",
    type=click.Path(file_okay=False, path_type=Path),
    default="distill-demo",
    show_default=True,
    help="Where the model cache, store, dataset, adapters, reports and logs go. A re-run "
    "replaces the previous run's files there (the base model is kept).",
)
@click.option("--requests", default=600, show_default=True, help="Requests before training.")
@click.option("--seed", default=0, show_default=True, help="Traffic, split and training seed.")
@click.option("--keep-running", is_flag=True, help="Leave teacher, gateway and vLLM running.")
@click.option("--vllm-url", help="Use this running vLLM (…/v1, runtime LoRA on) instead of one.")
@click.option(
    "--base-model",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="The base model directory (required with --vllm-url: the model it serves).",
)
@click.option(
    "--student",
    type=click.Choice(["smollm2", "tiny"]),
    default="smollm2",
    show_default=True,
    help="The student to build when --base-model is not given: the real SmolLM2-135M-Instruct "
    "(cached in ~/.cache/distill), or the tiny random-init stand-in (fast, knows no language).",
)
@click.option(
    "--good-steps",
    type=int,
    help="Training steps of the good adapter (default: SmolLM2 one epoch of 8, >= 60; tiny 300).",
)
@click.option(
    "--weak-steps", type=int, help="Training steps of the weak adapter (default: 12; tiny 40)."
)
@click.option(
    "--rollouts",
    type=click.Choice(["demo", "console"]),
    default="demo",
    show_default=True,
    help="console: load both adapters, keep traffic flowing and wait while you run the two "
    "rollouts yourself from the review console (the demo prints its address and token).",
)
@click.option("--stop", is_flag=True, help="Stop what a --keep-running demo left in --workdir.")
def demo(
    workdir: Path,
    requests: int,
    seed: int,
    keep_running: bool,
    vllm_url: str | None,
    base_model: Path | None,
    student: str,
    good_steps: int | None,
    weak_steps: int | None,
    rollouts: str,
    stop: bool,
) -> None:
    """The whole loop, offline: traffic → dataset → LoRA → eval → shadow/canary rollout."""
    from rich.console import Console

    from distill_demo import services
    from distill_demo.run import DemoError, run_demo
    from distill_demo.settings import DemoSettings

    if stop:
        stopped = services.stop_recorded(workdir)
        click.echo(f"stopped {', '.join(stopped)}" if stopped else f"nothing running in {workdir}")
        return
    try:
        settings = DemoSettings(
            workdir=workdir,
            requests=requests,
            seed=seed,
            keep_running=keep_running,
            vllm_url=vllm_url,
            base_model=base_model.resolve() if base_model else None,
            student=student,
            good_steps=good_steps,
            weak_steps=weak_steps,
            rollouts=rollouts,
        )
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    console = Console()
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        run_demo(settings, console)
    except DemoError as exc:
        raise click.ClickException(str(exc)) from None
    except KeyboardInterrupt:
        console.print("[red]interrupted[/]: every process the demo started was stopped")
        raise SystemExit(130) from None
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
