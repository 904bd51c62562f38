"""`distill serve --workers N`: N gateway processes on one host sharing one port, each a replica.

    distill serve (uvicorn's Multiprocess supervisor: binds the port, restarts a dead worker,
    │              SIGTERM/SIGINT -> every worker shuts down gracefully, then the parent exits)
    ├── worker (slot 0): spool <spool>.w0 ─┐
    └── worker (slot 1): spool <spool>.w1 ─┴─> the store (DuckDB file: one writer at a time,
                                               by DuckDB's own file lock; or the fleet store)

A worker's slot is the first spool directory whose flock it can take: a worker restarted
after `kill -9` takes its dead predecessor's slot and replays what it left, and any live
worker adopts a spool no worker claims (LogWriter.adopt_orphans). Rollouts: with the fleet
store each worker is a fleet replica (PostgreSQL leadership); otherwise the host's workers
share one controller through `gateway.rollout.host` (flock leadership, SQLite versions).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

from fastapi import FastAPI

from gateway.config import DistillConfig, load_config
from gateway.rollout.host import HostCoordinator, coordination_dir
from gateway.secret_files import load_secret_files, secret_names
from gateway.store.spool import SpoolBusyError, claim

CONFIG_ENV = "DISTILL_WORKER_CONFIG"  # the supervisor's config file, for its workers
MAX_SLOTS = 256


def slot_spool(spool: Path, slot: int) -> Path:
    """Worker `slot`'s spool: a sibling of the configured one, so each adopts the other's (pure)."""
    return spool.with_name(f"{spool.name}.w{slot}")


def worker_replica(replica: str | None, slot: int) -> str:
    """A worker's name in log rows and metrics: stable across its restarts (pure)."""
    return f"{replica or socket.gethostname()}-w{slot}"


def for_slot(config: DistillConfig, slot: int) -> DistillConfig:
    """The config one worker serves: its own replica name and spool directory (pure)."""
    server = config.server.model_copy(
        update={"replica": worker_replica(config.server.replica, slot)}
    )
    spool = slot_spool(config.store.spool_path, slot)
    store = config.store.model_copy(update={"spool_dir": str(spool)})
    return config.model_copy(update={"server": server, "store": store})


def free_slots(spool: Path) -> Iterator[int]:
    """Slots whose spool no live worker holds now (their flock is free), lowest first."""
    for slot in range(MAX_SLOTS):
        fd = claim(slot_spool(spool, slot))
        if fd is not None:
            os.close(fd)  # the worker's Spool claims it for good (or finds a sibling was faster)
            yield slot


def worker_app() -> FastAPI:
    """The app one worker serves (uvicorn's factory, called in each worker process)."""
    from gateway.app import create_app
    from gateway.serve_cli import settle_heap

    config = load_config(os.environ[CONFIG_ENV])
    load_secret_files(secret_names(config))
    for slot in free_slots(config.store.spool_path):
        mine = for_slot(config, slot)
        fleet = (
            None  # a fleet replica: create_app coordinates it through PostgreSQL
            if config.store.format == "fleet"
            else HostCoordinator(coordination_dir(config.store.path), mine.server.replica or "")
        )
        try:
            app = create_app(mine, fleet=fleet)
        except SpoolBusyError:
            continue  # a sibling took this slot between our check and its claim
        settle_heap()
        return app
    raise RuntimeError(f"no free worker spool beside {config.store.spool_path}")


def serve_workers(config_path: str, host: str, port: int, workers: int, log_level: str) -> None:
    """Run `workers` gateway processes on host:port under uvicorn's supervisor."""
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    from gateway.serve_cli import SERVER_OPTIONS

    os.environ[CONFIG_ENV] = os.path.abspath(config_path)  # spawned workers inherit it
    config = uvicorn.Config(
        "gateway.workers:worker_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=log_level,
        **SERVER_OPTIONS,
        timeout_graceful_shutdown=30,
    )
    Multiprocess(config, sockets=[config.bind_socket()]).run()
