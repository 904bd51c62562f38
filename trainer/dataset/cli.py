"""`distill dataset build`: the command-line shell around `build_dataset`."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from gateway.store.cli import store_option
from gateway.store.db import StoreBusyError
from trainer.dataset.build import DatasetError, build_dataset
from trainer.dataset.config import (
    BALANCE_MODES,
    PII_ANSWER_MODES,
    SWITCHABLE,
    TARGETS,
    BuildConfig,
)
from trainer.dataset.consensus import Judge


def _timestamp(ctx: click.Context, param: click.Parameter, value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise click.BadParameter(
            f"{value!r} is not an ISO time; use e.g. 2025-01-31 or 2025-01-31T12:00:00Z"
        ) from exc
    # A time without a zone is taken as UTC, the zone the gateway logs in.
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _labels(
    ctx: click.Context, param: click.Parameter, value: str | None
) -> tuple[str, ...] | None:
    if value is None:
        return None
    return tuple(label.strip() for label in value.split(",") if label.strip())


def _filter_switches(command: Callable[..., Any]) -> Callable[..., Any]:
    for name in reversed(SWITCHABLE):
        flag = "--no-" + name.replace("_", "-")
        command = click.option(
            flag, f"skip_{name}", is_flag=True, help=f"Do not apply the {name} filter."
        )(command)
    return command


@click.group()
def dataset() -> None:
    """Curate logged traffic into a training set."""


@dataset.command()
@store_option(
    "The log store: a DuckDB file or a directory of Parquet segments (DIR/<table>/*.parquet)."
)
@click.option("--route", required=True, help="The route whose teacher answers become targets.")
@click.option(
    "--since", callback=_timestamp, help="Only rows at or after this ISO time (UTC if no zone)."
)
@click.option("--until", callback=_timestamp, help="Only rows before this ISO time.")
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    help="Output directory (must not exist). Default: datasets/<route>/<timestamp>.",
)
@click.option("--eval-fraction", type=float, default=0.1, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@_filter_switches
@click.option(
    "--no-pii",
    "skip_pii",
    is_flag=True,
    help="Do not scrub PII (emails, phones, cards, IBANs, IPs).",
)
@click.option(
    "--pii-answers",
    type=click.Choice(PII_ANSWER_MODES),
    default="pseudonymize",
    show_default=True,
    help="PII in the teacher's answers (the targets): pseudonymize (fakes of the same kind, as "
    "in the prompt), replace ([EMAIL] placeholders), keep as written, or drop the row.",
)
@click.option(
    "--min-chars", type=int, default=1, show_default=True, help="Min chars of prompt and of answer."
)
@click.option(
    "--max-chars",
    type=int,
    default=32_000,
    show_default=True,
    help="Max chars of prompt and of answer.",
)
@click.option(
    "--feedback-threshold",
    type=float,
    default=0.0,
    show_default=True,
    help="Drop rows with any feedback score at or below this.",
)
@click.option("--near-dup-threshold", type=float, default=0.9, show_default=True)
@click.option("--per-user-cap", type=int, help="Keep at most N rows per user (a seeded sample).")
@click.option("--balance", type=click.Choice(BALANCE_MODES), default="none", show_default=True)
@click.option(
    "--labels", callback=_labels, help="The label set, comma-separated (default: detect)."
)
@click.option(
    "--min-rows", type=int, default=10, show_default=True, help="Fewer train rows is an error."
)
@click.option(
    "--target",
    type=click.Choice(TARGETS),
    default="primary",
    show_default=True,
    help="Per pair: the primary teacher's answer, the majority of all teachers' answers (ties "
    "to the primary), or the answer a judge prefers.",
)
@click.option(
    "--judge-base-url",
    help="--target judge: OpenAI-compatible URL of the judge (the gateway, so it is logged).",
)
@click.option("--judge-model", help="--target judge: the model name to ask.")
@click.option(
    "--judge-api-key", envvar="DISTILL_JUDGE_API_KEY", default="none", help="Key for the judge."
)
@click.option(
    "--judge-teacher",
    help="--target judge: the teacher (variant name; 'teacher' is the primary) whose answer "
    "wins when no judge endpoint is given or it does not answer.",
)
@click.option(
    "--max-disagreement",
    type=float,
    help="Drop examples where more than this share of teachers disagree with the target.",
)
@click.option(
    "--drop-disagreement", is_flag=True, help="Drop every example the teachers disagree on."
)
@click.option(
    "--text-only",
    is_flag=True,
    help="Leave out agent rows (tools, tool calls, tool results), e.g. for a student that will "
    "not be asked to call tools; `distill train` and OpenAI fine-tuning take them.",
)
@click.option(
    "--review-out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the examples the teachers disagree on to this JSONL file for review.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the dataset card as JSON.")
def build(
    store: Path,
    route: str,
    since: datetime | None,
    until: datetime | None,
    out: Path | None,
    eval_fraction: float,
    seed: int,
    skip_pii: bool,
    pii_answers: str,
    min_chars: int,
    max_chars: int,
    feedback_threshold: float,
    near_dup_threshold: float,
    per_user_cap: int | None,
    balance: str,
    labels: tuple[str, ...] | None,
    min_rows: int,
    target: str,
    judge_base_url: str | None,
    judge_model: str | None,
    judge_api_key: str,
    judge_teacher: str | None,
    max_disagreement: float | None,
    drop_disagreement: bool,
    text_only: bool,
    review_out: Path | None,
    as_json: bool,
    **skips: bool,
) -> None:
    """Filter, deduplicate, split and export a route's teacher answers as chat JSONL."""
    if drop_disagreement:
        if max_disagreement is not None:
            raise click.UsageError("pass --drop-disagreement or --max-disagreement, not both")
        max_disagreement = 0.0
    judge = _judge(target, judge_base_url, judge_model, judge_api_key, judge_teacher)
    disabled = frozenset(name.removeprefix("skip_") for name, on in skips.items() if on)
    try:
        config = BuildConfig(
            route=route,
            since=since,
            until=until,
            eval_fraction=eval_fraction,
            seed=seed,
            disabled=disabled,
            min_chars=min_chars,
            max_chars=max_chars,
            feedback_threshold=feedback_threshold,
            near_dup_threshold=near_dup_threshold,
            per_user_cap=per_user_cap,
            balance=balance,
            labels=labels,
            min_rows=min_rows,
            scrub_pii=not skip_pii,
            pii_answers=pii_answers,
            target=target,
            judge_teacher=judge_teacher,
            max_disagreement=max_disagreement,
            text_only=text_only,
        )
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    try:
        out_dir, card = build_dataset(
            store,
            config,
            out,
            warn=lambda m: click.echo(f"warning: {m}", err=True),
            judge=judge,
            review_out=review_out,
        )
    except DatasetError as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        click.echo(json.dumps({"out": str(out_dir), **card}, indent=2))
    else:
        _summary(out_dir, card)


def _judge(
    target: str,
    base_url: str | None,
    model: str | None,
    api_key: str,
    teacher: str | None,
) -> Judge | None:
    if target != "judge":
        if base_url or model or teacher:
            raise click.UsageError("--judge-* options need --target judge")
        return None
    if bool(base_url) != bool(model):
        raise click.UsageError("pass both --judge-base-url and --judge-model")
    if not base_url and not teacher:
        raise click.UsageError(
            "--target judge needs a judge: --judge-base-url URL --judge-model M, or "
            "--judge-teacher NAME to take that teacher's answer"
        )
    if not (base_url and model):
        return None
    from trainer.dataset.judge import HttpJudge  # the openai client loads only when needed

    return HttpJudge(base_url, model, api_key)


def _summary(out_dir: Path, card: dict[str, Any]) -> None:
    console = Console()
    table = Table(title=f"dataset for route {card['route']}", show_header=True)
    table.add_column("step")
    table.add_column("rows", justify="right")
    table.add_row("rows in window", str(card["rows_in"]))
    for name, info in card["filters"].items():
        if info["enabled"]:
            table.add_row(f"  {name}", f"-{info['removed']}")
    table.add_row("kept", str(card["rows_kept"]))
    table.add_row("train", str(card["files"]["train.jsonl"]["rows"]))
    table.add_row("eval", str(card["files"]["eval.jsonl"]["rows"]))
    console.print(table)
    replaced = {k: v for k, v in card["pii"]["replaced"].items() if v}
    if replaced:
        console.print(
            f"PII replaced: {replaced}; answers: {card['pii']['answers_rewritten']} rewritten "
            f"({card['pii']['answers']}), {card['pii']['answers_kept_with_pii']} kept, "
            f"{card['pii']['answers_dropped']} dropped"
        )
    if card["label_distribution"]:
        console.print(f"labels (train): {card['label_distribution']['train']}")
    target = card["target"]
    if target["pairs_with_secondary"]:
        agreement = ", ".join(
            f"{name} {row['agreement_with_target']:.1%}" for name, row in target["teachers"].items()
        )
        console.print(
            f"target {target['mode']}: {target['pairs_with_disagreement']} of "
            f"{target['pairs_with_secondary']} pairs disagree; agreement with target: {agreement}"
        )
    notes = card["annotations"]
    if notes["rows"]:
        console.print(
            f"gold: {notes['corrections_applied']} corrections applied, "
            f"{notes['excluded']} rows excluded"
        )
    if card["sources"]["kept"]["synthetic"]:
        console.print(f"rows kept: {card['sources']['kept']}")
    console.print(f"wrote {out_dir} (content hash {card['content_hash'][:16]})")


def _teacher_options(command: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option(
            "--base-url",
            required=True,
            envvar="OPENAI_BASE_URL",
            help="The gateway's OpenAI URL (…/v1), so every call is logged.",
        ),
        click.option("--model", required=True, help="The teacher model (a route's model name)."),
        click.option(
            "--api-key", envvar="OPENAI_API_KEY", default="none", help="The gateway's client key."
        ),
        click.option(
            "--concurrency", type=int, default=8, show_default=True, help="Requests in flight."
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


@dataset.command()
@click.option(
    "--dataset",
    "dataset_dir",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="A dataset directory written by `distill dataset build`.",
)
@click.option("--rationales", is_flag=True, help="Add a teacher's rationale to each train answer.")
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    help="Output directory (must not exist). Default: DATASET-rationales next to it.",
)
@_teacher_options
def enrich(
    dataset_dir: Path,
    rationales: bool,
    out: Path | None,
    base_url: str,
    model: str,
    api_key: str,
    concurrency: int,
) -> None:
    """Ask a teacher (through the gateway) to explain each training answer; write a new dataset."""
    from trainer.dataset.enrich import EnrichError, default_out, enrich_rationales
    from trainer.dataset.teacher_client import TeacherCallError, TeacherClient

    if not rationales:
        raise click.UsageError("say what to add: --rationales")
    try:
        client = TeacherClient(base_url, model, api_key=api_key, concurrency=concurrency)
        out_dir, card = enrich_rationales(dataset_dir, out or default_out(dataset_dir), client)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    except (EnrichError, TeacherCallError) as exc:
        raise click.ClickException(str(exc)) from exc
    info = card["rationales"]
    click.echo(
        f"wrote {out_dir}: {info['rows']} train rows with rationales "
        f"({info['requests']} teacher calls to {model})"
    )


@dataset.command()
@store_option("The log store whose route traffic the new inputs imitate.")
@click.option("--route", required=True, help="The route to write new inputs for.")
@click.option("--n", "n", type=int, required=True, help="How many new inputs to make.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--shots", type=int, default=3, show_default=True, help="Examples per request.")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the new inputs and answers to this JSONL file.",
)
@_teacher_options
def synth(
    store: Path,
    route: str,
    n: int,
    seed: int,
    shots: int,
    out: Path | None,
    base_url: str,
    model: str,
    api_key: str,
    concurrency: int,
) -> None:
    """Bootstrap a quiet route: new inputs like the logged ones, answered, marked synthetic."""
    from trainer.dataset.store import StoreError
    from trainer.dataset.synth import SynthConfig, SynthError, summary, synthesize
    from trainer.dataset.teacher_client import TeacherCallError, TeacherClient

    try:
        config = SynthConfig(route=route, n=n, seed=seed, shots=shots)
        client = TeacherClient(base_url, model, api_key=api_key, concurrency=concurrency)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    try:
        result = synthesize(store, config, client)
    except (SynthError, StoreError, TeacherCallError, StoreBusyError) as exc:
        raise click.ClickException(str(exc)) from exc
    if out is not None:
        tmp = out.with_name(f".{out.name}.tmp")
        tmp.write_text(
            "".join(
                json.dumps({"input": i, "answer": a, "synthetic": True}) + "\n"
                for i, a in zip(result.inputs, result.answers, strict=True)
            )
        )
        tmp.rename(out)
    report = summary(result, config)
    click.echo(
        f"{report['written']} synthetic inputs answered by {model} and logged on route {route} "
        f"(asked {report['asked']}, {report['duplicates_dropped']} duplicates dropped)"
    )
    if report["written"] < n:
        click.echo(f"warning: only {report['written']} of {n} were new", err=True)
