"""`distill store`: look inside the log store, migrate it, export a snapshot as Parquet."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from gateway.store.backend import has_table, store_at
from gateway.store.db import StoreBusyError, connect
from gateway.store.schema import migrate
from gateway.store.writer import table_columns

F = TypeVar("F", bound=Callable[..., Any])


class StoreArg(click.ParamType[str | Path]):
    """A DuckDB file or Parquet directory (a Path), or a fleet store URL (kept as given)."""

    name = "store"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> str | Path:
        text = str(value)
        return text if text.startswith(("postgresql://", "postgres://")) else Path(text)


def store_option(
    help_text: str,
    name: str = "store",
    *,
    default: str | None = "distill.duckdb",
    required: bool = False,
) -> Callable[[F], F]:
    """The `--store` option every command that reads or writes the log store shares: a file,
    a directory or a fleet URL, from the command line or DISTILL_STORE (or DISTILL_STORE_FILE)."""
    return click.option(
        "--store",
        name,
        type=StoreArg(),
        default=default,
        required=required,
        show_default=default is not None,
        envvar="DISTILL_STORE",
        help=help_text,
    )


STORE = store_option("The gateway's DuckDB file (store.path).", name="store_path")
ANY_STORE = store_option(
    "The log store: a DuckDB file, a directory of Parquet segments, or a fleet store URL "
    "(postgresql://...?data_path=...).",
    name="store_path",
)


@click.group()
def store() -> None:
    """Inspect, migrate and export the log store."""


@store.command()
@ANY_STORE
def stats(store_path: Path) -> None:
    """Rows per table, and requests per route, variant and kind."""
    target = store_at(store_path)
    if not target.exists():
        raise click.ClickException(f"{store_path} does not exist: point --store at the log store")
    try:
        with target.connect(read_only=True) as conn:
            # The contract's tables, wherever the Store keeps them (file, lake or PostgreSQL).
            tables = sorted(t for t in table_columns() if has_table(conn, t))
            for table in tables:
                count = conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()
                click.echo(f"{table:<20} {count[0] if count else 0:>10}")
            rows = conn.execute(
                "SELECT coalesce(route, '-'), variant, kind, count(*), "
                "count(*) FILTER (WHERE status != 200) FROM requests "
                "GROUP BY ALL ORDER BY ALL"
            ).fetchall()
    except (FileNotFoundError, StoreBusyError) as exc:
        raise click.ClickException(str(exc)) from None
    if rows:
        click.echo("\nroute / variant / kind: requests (failed)")
        for route, variant, kind, count, failed in rows:
            click.echo(f"  {route} / {variant} / {kind}: {count} ({failed})")


@store.command(name="migrate")
@STORE
def migrate_command(store_path: Path) -> None:
    """Create the store or bring its schema up to date."""
    try:
        with connect(store_path) as conn:
            version = migrate(conn)
    except StoreBusyError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{store_path}: schema version {version}")


@store.command()
@STORE
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    required=True,
    help="A new directory: <out>/<table>/part-export.parquet, the Parquet store layout.",
)
def export(store_path: Path, out: Path) -> None:
    """Snapshot every table as Parquet (readable by `dataset build --store OUT`)."""
    if out.exists() and any(out.iterdir()):
        raise click.ClickException(f"{out} exists and is not empty: choose a new directory")
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    try:
        with connect(store_path, read_only=True) as conn:
            tables = [
                r[0]
                for r in conn.execute(
                    "SELECT table_name FROM information_schema.tables "
                    "WHERE table_schema = 'main' AND table_name != 'schema_migrations'"
                ).fetchall()
            ]
            for table in tables:
                (tmp / table).mkdir(parents=True)
                target = str(tmp / table / "part-export.parquet").replace("'", "''")
                conn.execute(f"COPY \"{table}\" TO '{target}' (FORMAT parquet)")
    except (FileNotFoundError, StoreBusyError) as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise click.ClickException(str(exc)) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if out.exists():
        out.rmdir()
    tmp.rename(out)
    click.echo(f"exported {len(tables)} tables to {out}")
