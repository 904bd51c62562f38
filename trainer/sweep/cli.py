"""`distill sweep`: one parameter at a time and data-size ablations, each trained and evaluated."""

from __future__ import annotations

from pathlib import Path

import click

from gateway.store.cli import store_option
from gateway.ui.evals import QUALITY_METRICS

SWEEP_METRICS = QUALITY_METRICS  # one list with the console's eval comparison


@click.command()
@click.option("--dataset", type=click.Path(path_type=Path), required=True, help="Dataset dir.")
@click.option("--base-model", required=True, help="Student base model path or id.")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Output dir.")
@click.option(
    "--param",
    "params",
    multiple=True,
    help="NAME=V1,V2,... varied one at a time around the base config (repeatable), e.g. "
    "lr=1e-3,3e-3,1e-2  rank=4,8,16  epochs=1,3  max_steps=100,300  "
    "target_modules=q_proj+v_proj,q_proj+k_proj+v_proj+o_proj  base_model=PATH1,PATH2.",
)
@click.option("--data-sizes", help="Percentages of train.jsonl to ablate, e.g. 10,25,50,75,100.")
@click.option(
    "--preset",
    type=click.Choice(["lr-search"]),
    help="lr-search: the rates `distill train --search lr` tries (a third, one and three times "
    "the base config's), each run as short as the search's.",
)
@click.option("--config", type=click.Path(path_type=Path), help="Base train config (YAML).")
@click.option(
    "--metric",
    type=click.Choice(SWEEP_METRICS),
    default="agreement",
    show_default=True,
    help="Metric to plot and to pick the best run by.",
)
@click.option("--eval-limit", type=int, help="Evaluate each run on the first N eval examples.")
@click.option(
    "--max-tokens",
    type=int,
    help="Answer budget per eval example [default: the longest teacher answer's tokens + 25 %].",
)
@click.option("--seed", default=0, show_default=True, help="Seed of the data subsamples.")
@store_option("Record runs (the log store: a DuckDB file or a fleet store URL).", default=None)
def sweep(
    dataset: Path,
    base_model: str,
    out: Path,
    params: tuple[str, ...],
    data_sizes: str | None,
    preset: str | None,
    config: Path | None,
    metric: str,
    eval_limit: int | None,
    max_tokens: int | None,
    seed: int,
    store: str | Path | None,
) -> None:
    """Train and evaluate one run per parameter value and per data size; write sweep.html."""
    from trainer.evaluation.runner import EvalConfig
    from trainer.sweep.data import check_dataset
    from trainer.sweep.plan import parse_data_sizes, parse_param, plan_runs
    from trainer.sweep.runner import run_configs, run_sweep
    from trainer.training import load_train_config
    from trainer.training.presets import preset_defaults

    try:
        check_dataset(dataset)
        base = load_train_config(config, defaults=preset_defaults(base_model))
        parsed = [parse_param(p) for p in params]
        if preset == "lr-search":
            from trainer.training.search import sweep_preset

            with (dataset / "train.jsonl").open() as fh:
                n_train = sum(1 for line in fh if line.strip())
            base, lr_param = sweep_preset(base, n_train)
            parsed.append(lr_param)
        sizes = parse_data_sizes(data_sizes) if data_sizes else []
        runs = plan_runs(base.to_dict(), base_model, parsed, sizes)
        run_configs(base, runs)
        eval_config = EvalConfig(limit=eval_limit, max_tokens=max_tokens)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"sweep of {len(runs)} runs into {out}")
    result = run_sweep(
        dataset,
        base_model,
        out,
        base,
        runs,
        metric=metric,
        eval_config=eval_config,
        seed=seed,
        store=store,
        log=click.echo,
    )
    best = result.document["best"]
    click.echo(f"wrote {out / 'sweep.json'} and {out / 'sweep.html'}")
    if best:
        best_dir = out / "runs" / f"{best['index']:02d}"
        click.echo(f"best by {metric}: {best['name']} ({best_dir})")
    if store is not None:
        click.echo(f"recorded sweep {result.sweep_id} in {store}")
    if result.failed:
        raise click.ClickException(
            f"{result.failed} of {len(runs)} runs failed; see the errors above and in sweep.json"
        )
