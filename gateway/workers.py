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
Metrics: the workers keep their values in files in one private directory (prometheus_client's
multiprocess mode, gateway.metrics), so `/metrics` from any worker is the host's.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import socket
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import uvicorn
from fastapi import FastAPI
from prometheus_client.multiprocess import mark_process_dead
from uvicorn.config import STARTUP_FAILURE
from uvicorn.supervisors.multiprocess import Multiprocess, Process

from gateway.config import DistillConfig, load_config
from gateway.metrics import MULTIPROC_ENV, multiprocess_dir
from gateway.rollout.host import HostCoordinator, coordination_dir
from gateway.secret_files import load_secret_files, secret_names
from gateway.store.spool import SpoolBusyError, claim

CONFIG_ENV = "DISTILL_WORKER_CONFIG"  # the supervisor's config file, for its workers
MAX_SLOTS = 256

log = logging.getLogger("distill.workers")


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


def reuse_port_sockets(host: str, port: int, count: int) -> list[socket.socket]:
    """`count` sockets bound to one address with SO_REUSEPORT, one per worker.

    The kernel spreads new connections over them by a hash of each connection's addresses.
    One shared socket (uvicorn's default) lets whichever worker wakes first accept a whole
    burst: 64 keep-alive connections opened at once ended 93 % on one worker in
    bench/gateway/workers.py, and req/s stayed that of one worker. This is nginx's
    `listen ... reuseport`.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sockets: list[socket.socket] = []
    for _ in range(count):
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            for opened in [*sockets, sock]:
                opened.close()
            raise OSError(exc.errno, f"cannot listen on {host}:{port}: {exc.strerror}") from exc
        port = sock.getsockname()[1]  # port 0: the others join the port the first one got
        sock.set_inheritable(True)
        sockets.append(sock)
    return sockets


class LoopServer(uvicorn.Server):
    """uvicorn's server, remembering the event loop it serves on."""

    loop: asyncio.AbstractEventLoop | None = None

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        self.loop = asyncio.get_running_loop()
        await super().serve(sockets)


class LoopCheckedProcess(Process):
    """A worker whose answer to the supervisor's health ping goes through its event loop.

    uvicorn answers the ping from a thread, so a worker whose loop hangs (it then serves
    nothing, yet the kernel keeps handing its socket new connections, and it may hold the
    rollout leadership) still looked healthy. Here the answer waits for the loop to run a
    callback: a hung loop leaves the ping unanswered, and the supervisor kills the worker
    after `timeout_worker_healthcheck` (5 s) and starts another on its socket, which replays
    its spool; its flock on the leadership is released with it.
    """

    @property
    def server(self) -> LoopServer:
        if not isinstance(self._server, LoopServer):
            self._server = LoopServer(config=self.config)
        return self._server

    def pong(self) -> None:
        self.child_conn.recv()
        loop = self.server.loop
        # Once serving (starting up, the app may hold the loop for seconds: loading the store)
        if self.server.started and loop is not None and not loop_runs(loop):
            return  # the loop is closed: the worker is on its way out
        self.child_conn.send(self.server.started)


def loop_runs(loop: asyncio.AbstractEventLoop) -> bool:
    """Block until `loop` runs a callback (forever, if it never does); False if it is closed."""
    ran = threading.Event()
    try:
        loop.call_soon_threadsafe(ran.set)
    except RuntimeError:
        return False
    ran.wait()
    return True


class SocketPerWorker(Multiprocess):
    """uvicorn's supervisor, except that worker i listens on socket i only.

    A worker restarted (it died, or SIGHUP) gets the socket of the one it replaces: the
    connections queued on that socket meanwhile wait for it rather than being refused.
    """

    def __init__(self, config: uvicorn.Config, sockets: list[socket.socket]) -> None:
        super().__init__(config, sockets)
        self.per_worker = sockets

    def _spawn(self, index: int) -> Process:
        process = LoopCheckedProcess(self.config, [self.per_worker[index]])
        process.start()
        return process

    def init_processes(self) -> None:
        self.processes = [self._spawn(i) for i in range(self.processes_num)]

    def restart_all(self) -> None:
        for idx, old in enumerate(self.processes):
            if self.should_exit.is_set():
                return
            new = self._spawn(idx)
            if not new.wait_until_ready(self.config.timeout_worker_healthcheck, self.should_exit):
                new.kill()
                new.join()
                return  # keep the old worker, as uvicorn does
            old.terminate()
            old.join()
            forget(old)
            self.processes[idx] = new

    def keep_subprocess_alive(self) -> None:
        if self.should_exit.is_set():
            return
        for idx, process in enumerate(self.processes):
            if process.is_alive(timeout=self.config.timeout_worker_healthcheck):
                continue
            process.kill()  # hung or dead
            process.join()
            forget(process)
            if process.exitcode == STARTUP_FAILURE:  # broken config: would fail every time
                log.error("worker [%s] failed to start; stopping", process.pid)
                self.should_exit.set()
                return
            if self.should_exit.is_set():
                return
            log.info("worker [%s] died; starting another on its socket", process.pid)
            self.processes[idx] = self._spawn(idx)


def forget(process: Process) -> None:
    """A worker is gone: its live gauges (in flight, leader, ...) leave /metrics; its
    counters stay in the sums, so they never go down."""
    path = multiprocess_dir()
    if path and process.pid is not None:
        mark_process_dead(process.pid, path)  # type: ignore[no-untyped-call]


def metrics_dir() -> str:
    """A new, empty, private (0700) directory for the workers' metric files."""
    return tempfile.mkdtemp(prefix="distill-metrics-")


def serve_workers(config_path: str, host: str, port: int, workers: int, log_level: str) -> None:
    """Run `workers` gateway processes on host:port under uvicorn's supervisor."""
    from gateway.serve_cli import SERVER_OPTIONS

    os.environ[CONFIG_ENV] = os.path.abspath(config_path)  # spawned workers inherit it
    # The workers' metric files: never a previous run's (a counter would start from its value),
    # set before any worker imports prometheus_client (it picks its value class then).
    os.environ[MULTIPROC_ENV] = metrics = metrics_dir()
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
    sockets = reuse_port_sockets(host, port, workers)
    log.info("listening on %s:%d with %d workers", host, sockets[0].getsockname()[1], workers)
    try:
        SocketPerWorker(config, sockets).run()
    finally:
        shutil.rmtree(metrics, ignore_errors=True)
