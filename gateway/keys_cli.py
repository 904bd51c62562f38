"""`distill keys`: make client API keys; only their SHA-256 goes into distill.yaml."""

from __future__ import annotations

import secrets

import click
import yaml

from gateway.auth import key_digest


@click.group()
def keys() -> None:
    """Client API keys for the gateway (server.api_keys)."""


@keys.command()
@click.option("--name", required=True, help="Who the key is for, e.g. the app's name.")
@click.option("--rate", type=float, default=None, help="Requests a second allowed (sustained).")
@click.option("--burst", type=float, default=None, help="Requests allowed at once.")
def new(name: str, rate: float | None, burst: float | None) -> None:
    """Print a new key (give it to the app) and its config entry (put it in distill.yaml)."""
    key = "dk-" + secrets.token_urlsafe(32)
    entry: dict[str, object] = {"name": name, "sha256": key_digest(key)}
    if rate:
        entry["rate_per_s"] = rate
    if burst:
        entry["burst"] = burst
    click.echo(f"key (shown once, store it in the app's secrets): {key}")
    click.echo("add under server.api_keys in distill.yaml:")
    click.echo(yaml.safe_dump([entry], sort_keys=False).rstrip())


@keys.command(name="hash")
@click.argument("key", required=False)
def hash_command(key: str | None) -> None:
    """Print the SHA-256 of an existing key (read from stdin when not given)."""
    key = key or click.prompt("key", hide_input=True)
    click.echo(key_digest(key.strip()))
