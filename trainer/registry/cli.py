"""`distill adapters`: register, list, show, and load/unload adapters on a vLLM server."""

from __future__ import annotations

import json
from pathlib import Path

import click
import httpx
from rich.console import Console
from rich.table import Table

from gateway.store.cli import store_option
from trainer.registry.registry import (
    AdapterNotFoundError,
    get_adapter,
    list_adapters,
    register_adapter,
    set_state,
)
from trainer.registry.states import STATES, InvalidTransitionError
from trainer.registry.validate import DEFAULT_MAX_RANK, AdapterError, check_name, read_adapter
from trainer.registry.vllm import ServingError, load_adapter, unload_adapter

_STORE = store_option(
    "The log store: its DuckDB file (store.path in distill.yaml) or a fleet store URL "
    "(postgresql://…?data_path=…).",
    default=None,
    required=True,
)
_USER_ERRORS = (AdapterError, AdapterNotFoundError, InvalidTransitionError, ServingError)


def _fail(exc: Exception) -> click.ClickException:
    return click.ClickException(str(exc))


@click.group()
def adapters() -> None:
    """The adapter registry (versions, lineage, state); load adapters into vLLM."""


@adapters.command()
@click.argument("adapter_dir", type=click.Path(path_type=Path))
@click.option("--name", help="Name to serve it under (default: the directory's name).")
@click.option("--route", help="The gateway route this adapter is meant for.")
@click.option("--max-rank", default=DEFAULT_MAX_RANK, show_default=True, help="Serving rank limit.")
@click.option("--force", is_flag=True, help="Register even if training's learning check failed.")
@_STORE
def register(
    adapter_dir: Path,
    name: str | None,
    route: str | None,
    max_rank: int,
    force: bool,
    store: str | Path,
) -> None:
    """Validate ADAPTER_DIR and add it to the registry as a candidate.

    Refuses an adapter whose `distill train` run failed its learning check, unless --force.
    """
    try:
        record = register_adapter(
            store, adapter_dir, name=name, route=route, max_rank=max_rank, force=force
        )
    except _USER_ERRORS as exc:
        raise _fail(exc) from exc
    click.echo(f"registered {record.name} ({record.path}) as {record.state}")


@adapters.command("list")
@click.option("--route", help="Only adapters for this route.")
@click.option("--state", type=click.Choice(STATES), help="Only adapters in this state.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@_STORE
def list_command(route: str | None, state: str | None, as_json: bool, store: str | Path) -> None:
    """List registered adapters, newest first."""
    records = list_adapters(store, route=route, state=state)
    if as_json:
        click.echo(json.dumps([r.to_json() for r in records], indent=2))
        return
    table = Table("name", "state", "route", "base model", "dataset", "agreement", "created")
    for r in records:
        agreement = r.metrics.get("agreement")
        table.add_row(
            r.name,
            r.state,
            r.route or "-",
            r.base_model,
            (r.dataset_hash or "-")[:12],
            f"{agreement:.3f}" if isinstance(agreement, int | float) else "-",
            r.created_at.strftime("%Y-%m-%d %H:%M"),
        )
    Console(width=160).print(table)


@adapters.command()
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@_STORE
def show(name: str, as_json: bool, store: str | Path) -> None:
    """Show one adapter's state, lineage and metrics."""
    try:
        record = get_adapter(store, name)
    except _USER_ERRORS as exc:
        raise _fail(exc) from exc
    data = record.to_json()
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    for key in ("name", "state", "route", "path", "base_model", "dataset_hash", "created_at"):
        click.echo(f"{key:>13}: {data[key]}")
    click.echo(f"{'metrics':>13}: {json.dumps(record.metrics, sort_keys=True)}")
    click.echo(f"{'lineage':>13}: {json.dumps(record.lineage, sort_keys=True)}")


@adapters.command("set-state")
@click.argument("name")
@click.argument("state", type=click.Choice(STATES))
@_STORE
def set_state_command(name: str, state: str, store: str | Path) -> None:
    """Move NAME to STATE by hand (the rollout controller does this itself)."""
    try:
        record = set_state(store, name, state)
    except _USER_ERRORS as exc:
        raise _fail(exc) from exc
    click.echo(f"{record.name} is now {record.state}")


_SERVER = click.option("--server", required=True, help="vLLM base URL, e.g. http://host:8000/v1.")


@adapters.command()
@click.argument("name")
@_SERVER
@click.option("--path", "path", type=click.Path(path_type=Path), help="Adapter directory.")
@store_option("Registry to take the adapter's path from when --path is not given.", default=None)
@click.option("--timeout", default=120.0, show_default=True, help="Seconds to wait for vLLM.")
def load(
    name: str, server: str, path: Path | None, store: str | Path | None, timeout: float
) -> None:
    """Load adapter NAME into a running vLLM server and confirm it is served."""
    try:
        check_name(name)
        if path is None:
            if store is None:
                raise click.UsageError("give the adapter directory with --path, or --store")
            path = Path(get_adapter(store, name).path)
        adapter = read_adapter(path)
        with httpx.Client(timeout=timeout) as client:
            model = load_adapter(client, server, name, adapter)
    except _USER_ERRORS as exc:
        raise _fail(exc) from exc
    click.echo(f"loaded {name} on {server} (parent {model.get('parent')})")


@adapters.command()
@click.argument("name")
@_SERVER
@click.option("--timeout", default=60.0, show_default=True, help="Seconds to wait for vLLM.")
def unload(name: str, server: str, timeout: float) -> None:
    """Unload adapter NAME from a running vLLM server."""
    try:
        with httpx.Client(timeout=timeout) as client:
            unload_adapter(client, server, name)
    except _USER_ERRORS as exc:
        raise _fail(exc) from exc
    click.echo(f"unloaded {name} from {server}")
