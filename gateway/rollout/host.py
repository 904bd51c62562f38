"""Coordination of the rollout controllers of one host's workers (`distill serve --workers N`).

The embedded store's twin of `gateway.rollout.fleet.FleetCoordinator`, on engines made for
several processes on one machine instead of PostgreSQL:

- Leadership: an exclusive `flock` on `leader.lock`, held by one worker's open descriptor; the
  kernel releases it when that process dies (also by `kill -9`), and another worker takes it at
  its next poll.
- Versions and windows: a SQLite database in WAL mode (`rollouts.sqlite`), which many processes
  read and write with real transactions. A change of rollout state runs inside `BEGIN
  IMMEDIATE` (SQLite's write lock: one change at a time, the others wait) and bumps the
  version every worker polls; each worker publishes its step's numbers, the leader merges them.

The rollout state itself stays in the store (the DuckDB file), as with one process.
"""

from __future__ import annotations

import fcntl
import logging
import os
import sqlite3
import time
from contextlib import closing, suppress
from pathlib import Path

import orjson

from gateway.rollout.gates import Window
from gateway.rollout.window import Shared, merge_by_variant

log = logging.getLogger("distill.rollout")

BUSY_TIMEOUT_S = 30.0  # how long a change waits for another worker's change to finish
SCHEMA = """
CREATE TABLE IF NOT EXISTS rollout_version (
    id INTEGER PRIMARY KEY, version INTEGER NOT NULL, instance TEXT, ts REAL);
INSERT OR IGNORE INTO rollout_version (id, version) VALUES (1, 0);
CREATE TABLE IF NOT EXISTS rollout_windows (
    instance TEXT NOT NULL, step TEXT NOT NULL, variant TEXT NOT NULL, numbers TEXT NOT NULL,
    PRIMARY KEY (instance, step, variant));
"""


def coordination_dir(store_path: str) -> Path:
    """Where one host's workers coordinate: beside the store they share (pure)."""
    return Path(f"{store_path}.workers")


class HostCoordinator:
    """One worker's seat among the host's workers (blocking calls: run them off the loop)."""

    scope = "workers"

    def __init__(self, directory: Path, replica: str) -> None:
        self.directory = directory
        self.replica = replica
        self.instance = f"{replica}-{os.getpid()}-{os.urandom(3).hex()}"
        self.database = directory / "rollouts.sqlite"
        self._leader_fd: int | None = None
        self.leading = False
        self.lost = 0  # a flock is held while the descriptor is open: never lost alive

    def _connect(self) -> sqlite3.Connection:
        # Autocommit (isolation_level None): transactions are the explicit BEGINs below. The
        # lock's connection is used from whichever thread asyncio.to_thread picks.
        conn = sqlite3.connect(
            self.database, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
        )
        conn.execute("PRAGMA journal_mode=WAL")
        return conn

    def setup(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        with closing(self._connect()) as conn:
            conn.executescript(SCHEMA)  # idempotent: workers starting together may all run it

    # -- leadership ------------------------------------------------------------------------

    def hold_leadership(self) -> bool:
        """Take the leader lock if free; once held it stays ours until we release or die."""
        if self._leader_fd is None:
            self.directory.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.directory / "leader.lock", os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                return False
            self._leader_fd = fd
            self.leading = True
            log.warning("worker %s now leads this host's rollouts", self.instance)
        return self.leading

    def fence(self) -> None:
        """No fencing token: the version lives in SQLite, the rollout state in the store."""
        return None

    def step_down(self, reason: str) -> None:
        log.error("worker %s stops leading: %s", self.instance, reason)
        self.release()

    def confirm(self) -> bool:
        """The flock stays ours while our descriptor is open (no lease on one host)."""
        return self.leading

    def release(self) -> None:
        if self._leader_fd is not None:
            with suppress(OSError):
                os.close(self._leader_fd)  # closing the descriptor drops the flock
            self._leader_fd = None
        self.leading = False

    # -- versions --------------------------------------------------------------------------

    def version(self) -> int:
        with closing(self._connect()) as conn:
            return self.current(conn)

    def lock(self) -> sqlite3.Connection:
        """Hold the host's change lock (SQLite's write lock) until `unlock`."""
        conn = self._connect()
        try:
            conn.execute("BEGIN IMMEDIATE")
        except BaseException:
            conn.close()
            raise
        return conn

    def unlock(self, conn: sqlite3.Connection) -> None:
        try:
            if conn.in_transaction:
                conn.execute("COMMIT")
        finally:
            conn.close()

    def current(self, conn: sqlite3.Connection) -> int:
        row = conn.execute("SELECT version FROM rollout_version WHERE id = 1").fetchone()
        return int(row[0]) if row else 0

    def bump(self, conn: sqlite3.Connection) -> int:
        row = conn.execute(
            "UPDATE rollout_version SET version = version + 1, instance = ?, ts = ? "
            "WHERE id = 1 RETURNING version",
            [self.instance, time.time()],
        ).fetchone()
        return int(row[0]) if row else 0

    # -- windows ---------------------------------------------------------------------------

    def publish(self, step: str, numbers: dict[str, Shared]) -> None:
        if not numbers:
            return
        with closing(self._connect()) as conn:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(
                "INSERT INTO rollout_windows (instance, step, variant, numbers) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (instance, step, variant) "
                "DO UPDATE SET numbers = excluded.numbers",
                [
                    (self.instance, step, variant, orjson.dumps(shared).decode())
                    for variant, shared in numbers.items()
                ],
            )
            conn.execute("COMMIT")

    def windows(self, step: str) -> dict[str, Window]:
        """The host's numbers for one step, per variant, merged over every worker."""
        with closing(self._connect()) as conn:
            rows = conn.execute(
                "SELECT variant, numbers FROM rollout_windows WHERE step = ?", [step]
            ).fetchall()
        return merge_by_variant((variant, orjson.loads(numbers)) for variant, numbers in rows)
