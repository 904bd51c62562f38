"""`distill serve`: run the gateway under uvicorn (optionally beside the demo teacher)."""

from __future__ import annotations

import asyncio
import gc
import ipaddress
import logging
import os
from typing import Any

import click

from gateway.auth import Authenticator
from gateway.config import ConfigError, DistillConfig, load_config, parse_config
from gateway.secret_files import load_secret_files, secret_names

DEMO_TEACHER_PORT = 9000
GC_GEN0_THRESHOLD = 7000  # Python's default is 700
# How the gateway runs under uvicorn, with one process or several (gateway.workers).
SERVER_OPTIONS: dict[str, Any] = {"access_log": False, "http": "httptools", "loop": "uvloop"}


def settle_heap() -> None:
    """Take everything alive after start-up out of the cyclic garbage collector's sight.

    The long-lived objects of FastAPI, pydantic, DuckDB and the app (~75k) were traversed by
    every full collection: ~40 ms pauses and ~10% of the CPU under load; young collections,
    every 700 allocations, took another ~5% (bench/README.md). Reference counting still frees
    everything as before; only cycles wait a little longer.
    """
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GC_GEN0_THRESHOLD, gen1, gen2)


def demo_config() -> dict[str, Any]:
    """The embedded defaults: one route, gpt-4o → the demo teacher on 127.0.0.1:9000."""
    return {
        "store": {"path": "distill.duckdb"},
        "upstreams": {"teacher": {"base_url": f"http://127.0.0.1:{DEMO_TEACHER_PORT}/v1"}},
        "routes": [
            {
                "name": "support-triage",
                "match": ["gpt-4o"],
                "teacher": {"upstream": "teacher", "model": "gpt-4o"},
            }
        ],
        "pricing": {"gpt-4o": {"prompt_per_1k": 0.0025, "completion_per_1k": 0.01}},
    }


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
@click.option(
    "--demo-teacher",
    is_flag=True,
    help="Also run the demo teacher on 127.0.0.1:9000; without a config file, "
    "serve the embedded defaults (route gpt-4o → that teacher, store distill.duckdb).",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Gateway processes sharing the port, each a replica of the store (one per core).",
)
@click.option("--log-level", default="warning", show_default=True)
def serve(
    config_path: str,
    host: str | None,
    port: int | None,
    demo_teacher: bool,
    workers: int,
    log_level: str,
) -> None:
    """Run the gateway: an OpenAI-compatible proxy that logs every exchange."""
    import uvicorn

    from gateway.app import create_app

    try:
        if demo_teacher and not os.path.exists(config_path):
            config: DistillConfig = parse_config(
                demo_config(), source="embedded defaults", environ=os.environ
            )
        else:
            config = load_config(config_path)
        load_secret_files(secret_names(config))  # NAME_FILE -> NAME (secrets mounted as files)
        keys_set = Authenticator.from_config(config.server).enabled  # counts usable keys
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    host = host or config.server.host
    port = port or config.server.port
    if not is_loopback(host) and not keys_set and not config.server.allow_open:
        raise click.ClickException(
            f"refusing to serve on {host} without client API keys: add server.api_keys "
            "(see `distill keys new`) or server.api_keys_env, or set server.allow_open: true "
            "if this network is trusted"
        )
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(name)s %(message)s")
    if workers > 1:
        if demo_teacher:
            raise click.ClickException(
                "--demo-teacher runs in one process: start the teacher on its own "
                "(distill teacher) and point the config at it to use --workers"
            )
        from gateway.workers import serve_workers

        click.echo(f"distill gateway on http://{host}:{port}/v1, {workers} workers")
        serve_workers(config_path, host, port, workers, log_level)
        return
    servers = [
        uvicorn.Server(
            uvicorn.Config(
                create_app(config),
                host=host,
                port=port,
                log_level=log_level,
                **SERVER_OPTIONS,
            )
        )
    ]
    if demo_teacher:
        from distill_demo.teacher.server import create_teacher_app

        servers.append(
            uvicorn.Server(
                uvicorn.Config(
                    create_teacher_app(),
                    host="127.0.0.1",
                    port=DEMO_TEACHER_PORT,
                    log_level=log_level,
                    access_log=False,
                )
            )
        )
        click.echo(f"demo teacher on http://127.0.0.1:{DEMO_TEACHER_PORT}/v1")
    click.echo(f"distill gateway on http://{host}:{port}/v1 (store: {config.store.path})")
    for server in servers:
        server.config.load()  # import the protocol modules now, so settle_heap freezes them
    settle_heap()
    if len(servers) == 1:
        servers[0].run()
        return

    async def run_all() -> None:
        await asyncio.gather(*(s.serve() for s in servers))

    import uvloop

    uvloop.run(run_all())
