"""The one `distill` command: subcommands are imported only when used, so `serve` stays light."""

from __future__ import annotations

import importlib

import click

from gateway.secret_files import CLI_SECRETS, SecretFileError, load_secret_files

# name -> ("module:attribute", one-line help). Heavy modules (torch, vLLM) load only on use.
COMMANDS: dict[str, tuple[str, str]] = {
    "serve": ("gateway.serve_cli:serve", "Run the gateway (OpenAI-compatible proxy)."),
    "teacher": ("distill_demo.teacher.cli:teacher", "Run the deterministic demo teacher server."),
    "rollout": ("gateway.rollout.cli:rollout", "Shadow, canary, promote and roll back students."),
    "store": ("gateway.store.cli:store", "Inspect, migrate and export the log store."),
    "keys": ("gateway.keys_cli:keys", "Make client API keys and their config entries."),
    "annotate": (
        "gateway.ui.annotate_cli:annotate",
        "Correct, exclude or label a logged exchange.",
    ),
    "dataset": ("trainer.dataset.cli:dataset", "Curate logged traffic into a training set."),
    "train": ("trainer.training.cli:train", "Distill a LoRA adapter onto a student model."),
    "eval": ("trainer.evaluation.cli:eval_command", "Evaluate an adapter; write report.html."),
    "sweep": ("trainer.sweep.cli:sweep", "One-parameter sweeps and data-size ablations."),
    "adapters": ("trainer.registry.cli:adapters", "The adapter registry; load into vLLM."),
    "model": ("trainer.models.cli:model", "Build student base models offline (smollm2, tiny)."),
    "demo": ("distill_demo.cli:demo", "The whole loop in one command, offline."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        target, _ = COMMANDS[cmd_name]
        module_name, attr = target.split(":")
        module = importlib.import_module(module_name)
        command = getattr(module, attr)
        assert isinstance(command, click.Command)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][1]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup)
@click.version_option(package_name="distill")
def main() -> None:
    """Distill: replace an expensive LLM with small distilled students, safely."""
    try:  # NAME_FILE -> NAME (Docker and Kubernetes secrets as files), before any command
        load_secret_files(CLI_SECRETS)
    except SecretFileError as exc:
        raise click.ClickException(str(exc)) from None
