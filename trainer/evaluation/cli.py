"""`distill eval`: score an adapter against the teacher's held-out answers; write report.html."""

from __future__ import annotations

from pathlib import Path

import click

from gateway.store.cli import store_option
from trainer.evaluation.data import DatasetError
from trainer.evaluation.generate import GenerationError
from trainer.evaluation.metrics import headline_text
from trainer.registry.validate import AdapterError


@click.command("eval")
@click.option("--adapter", type=click.Path(path_type=Path), required=True, help="Adapter dir.")
@click.option("--dataset", type=click.Path(path_type=Path), required=True, help="Dataset dir.")
@click.option("--server", help="vLLM base URL (…/v1); without it, generate locally with peft.")
@click.option("--model", help="The adapter's served name on --server (default: found by path).")
@click.option("--base-model", help="Student base model (default: the one in distill.json).")
@click.option(
    "--out", type=click.Path(path_type=Path), help="Output dir [default: eval/<adapter>]."
)
@click.option("--limit", type=int, help="Evaluate only the first N examples.")
@store_option("Record in runs (the log store: a DuckDB file or a fleet store URL).", default=None)
@click.option(
    "--max-tokens",
    type=int,
    help="Answer budget per example [default: the longest teacher answer's tokens + 25 %].",
)
@click.option("--concurrency", default=8, show_default=True, help="Requests in flight (server).")
@click.option("--batch-size", default=16, show_default=True, help="Prompts per batch (local).")
@click.option("--worst", default=20, show_default=True, help="Worst examples in the report.")
def eval_command(
    adapter: Path,
    dataset: Path,
    server: str | None,
    model: str | None,
    base_model: str | None,
    out: Path | None,
    limit: int | None,
    store: str | Path | None,
    max_tokens: int | None,
    concurrency: int,
    batch_size: int,
    worst: int,
) -> None:
    """Generate the student's answers on eval.jsonl and compare them with the teacher's."""
    from trainer.evaluation.runner import EvalConfig, run_eval

    out = out or Path("eval") / adapter.resolve().name
    try:
        config = EvalConfig(
            limit=limit,
            max_tokens=max_tokens,
            concurrency=concurrency,
            batch_size=batch_size,
            worst=worst,
        )
        result = run_eval(
            adapter,
            dataset,
            out,
            config,
            server=server,
            model=model,
            base_model=base_model,
            store=store,
        )
    except (ValueError, AdapterError, DatasetError, GenerationError) as exc:
        raise click.ClickException(str(exc)) from exc
    metrics, latency = result.metrics, result.latency
    headline = f"{headline_text(metrics)}, p50 {latency['p50_ms']:.0f} ms"
    click.echo(f"{metrics['n']} examples: {headline}")
    click.echo(f"wrote {out / 'eval.json'} and {out / 'report.html'}")
    if result.run_id:
        click.echo(f"recorded run {result.run_id} in {store}")
