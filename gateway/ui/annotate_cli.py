"""`distill annotate`: correct, exclude, include or label a logged exchange from the terminal."""

from __future__ import annotations

import getpass
import json
from pathlib import Path

import click

from gateway.store.backend import as_store
from gateway.store.cli import store_option
from gateway.store.db import StoreBusyError
from gateway.ui.annotation import Annotation, RefusedAnnotationError, UnknownRequestError, add

ACTIONS = {"correct": "correction", "exclude": "exclude", "include": "include", "label": "label"}


def _default_author() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers)
        return "cli"


@click.command()
@click.argument("action", type=click.Choice(list(ACTIONS)))
@click.argument("request_id")
@click.option("--answer", help="correct: the gold assistant answer that replaces the teacher's.")
@click.option("--label", help="label: the label to attach.")
@click.option("--note", help="Why, for the people who read the history.")
@store_option("The log store: the gateway's DuckDB file or a directory of Parquet segments.")
@click.option("--author", help="Who says so (default: your login name).")
@click.option("--json", "as_json", is_flag=True, help="Print the stored row as JSON.")
def annotate(
    action: str,
    request_id: str,
    answer: str | None,
    label: str | None,
    note: str | None,
    store: Path,
    author: str | None,
    as_json: bool,
) -> None:
    """Record ACTION on the exchange REQUEST_ID; `distill dataset build` honours it.

    \b
    correct  ID --answer TEXT   the gold answer replaces the teacher's in training data
    exclude  ID                 drop the exchange from training data
    include  ID                 undo an exclusion
    label    ID --label NAME    attach a label
    """
    if not as_store(store).exists():
        raise click.UsageError(
            f"log store {store} does not exist: pass --store (or DISTILL_STORE) pointing at the "
            "gateway's DuckDB file or its Parquet directory"
        )
    try:
        item = Annotation(
            request_id=request_id,
            kind=ACTIONS[action],
            author=author or _default_author(),
            answer=answer,
            label=label,
            note=note,
        )
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    try:
        row = add(store, item)
    except (UnknownRequestError, RefusedAnnotationError, StoreBusyError) as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        click.echo(json.dumps(row, default=str, indent=2))
    else:
        click.echo(f"{row['id']}: {action} {request_id} by {row['author']}")
