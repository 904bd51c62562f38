"""`distill serve`: run the gateway under uvicorn."""

from __future__ import annotations

import ipaddress
import logging
import os

import click

from gateway.config import ConfigError, load_config


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@click.command()
@click.option(
    "--config",
    "config_path",
    default="distill.yaml",
    show_default=True,
    envvar="DISTILL_CONFIG",
    help="The distill.yaml to serve.",
)
@click.option("--host", default=None, help="Bind address (default: server.host, 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port (default: server.port, 8080).")
@click.option("--log-level", default="warning", show_default=True)
def serve(config_path: str, host: str | None, port: int | None, log_level: str) -> None:
    """Run the gateway: an OpenAI-compatible proxy that logs every exchange."""
    import uvicorn

    from gateway.app import create_app

    try:
        config = load_config(config_path)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    host = host or config.server.host
    port = port or config.server.port
    keys_set = bool(config.server.api_keys_env and os.environ.get(config.server.api_keys_env))
    if not is_loopback(host) and not keys_set and not config.server.allow_open:
        raise click.ClickException(
            f"refusing to serve on {host} without client API keys: set server.api_keys_env "
            "(and that variable), or server.allow_open: true if this network is trusted"
        )
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(name)s %(message)s")
    app = create_app(config)
    click.echo(f"distill gateway on http://{host}:{port}/v1 (store: {config.store.path})")
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level=log_level,
        access_log=False,
        http="httptools",
        loop="uvloop",
    )
