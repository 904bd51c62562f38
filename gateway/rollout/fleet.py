"""Coordination of the rollout controllers of a fleet, in PostgreSQL.

- Leadership: a session advisory lock held on a connection of its own. Exactly one replica
  holds it; when that process dies its connection closes and PostgreSQL releases the lock,
  so another replica takes it at its next poll (TCP keepalives bound a silent network loss).
  The lease: the lock's session runs with `idle_session_timeout`, and the leader's loop
  touches it every poll, so a leader whose loop hangs (or whose process is stopped) while its
  connection stays up loses the session, and the lock, after `lease_s`. Before every gate
  decision the leader confirms the session under the change lock: a leader that lost it
  steps down instead of deciding. Each leader takes a new epoch when it takes the lock
  (`fleet_rollout_leader`), and its decision is written in one transaction with a check of
  that epoch (a fencing token): a leader that froze between its confirmation and its write
  finds the epoch moved and writes nothing. Only the leader evaluates gates.
- Versions: every change of rollout state (any replica: the leader's gate decisions, an
  operator's command) bumps `fleet_rollout_version` under the fleet's change lock; every replica
  polls the number and reloads the rollouts when it moved, so all apply the same weights.
- Windows: each replica publishes its own numbers for the active step
  (`fleet_rollout_windows`, one row per replica instance and variant); the leader merges them.
"""

from __future__ import annotations

import logging
import os
import time
from contextlib import suppress
from typing import Any

import orjson
import psycopg

from gateway.rollout.gates import Window
from gateway.rollout.window import Shared, merge_by_variant

log = logging.getLogger("distill.rollout")

LEADER_LOCK = 0x524F4C4C  # "ROLL": the controller's leadership
ROUTE_LOCKS = 0x524F5554  # "ROUT": one change of rollout state at a time, fleet-wide
KEEPALIVE = "keepalives=1 keepalives_idle=2 keepalives_interval=1 keepalives_count=3"
LEASE_S = 5.0  # default: a leader that stops touching its lock session loses it after this
# The change lock's session: held for one transition (milliseconds), so a process frozen
# while holding it frees the fleet's changes after this long instead of never.
CHANGE_LOCK_IDLE_S = 30.0
LEASE_SETTING = "idle_session_timeout"  # PostgreSQL 14 and later
SCHEMA = """
CREATE TABLE IF NOT EXISTS fleet_rollout_version (
    id INTEGER PRIMARY KEY, version BIGINT NOT NULL, replica TEXT, ts TIMESTAMPTZ DEFAULT now());
INSERT INTO fleet_rollout_version (id, version) VALUES (1, 0) ON CONFLICT DO NOTHING;
CREATE TABLE IF NOT EXISTS fleet_rollout_leader (
    id INTEGER PRIMARY KEY, epoch BIGINT NOT NULL, instance TEXT, ts TIMESTAMPTZ DEFAULT now());
INSERT INTO fleet_rollout_leader (id, epoch) VALUES (1, 0) ON CONFLICT DO NOTHING;
CREATE TABLE IF NOT EXISTS fleet_rollout_windows (
    instance TEXT NOT NULL, step TEXT NOT NULL, variant TEXT NOT NULL, numbers JSONB NOT NULL,
    ts TIMESTAMPTZ DEFAULT now(), PRIMARY KEY (instance, step, variant));
"""


def with_keepalive(dsn: str) -> str:
    """The DSN with TCP keepalives, so a replica cut off silently loses its lock in seconds."""
    params = psycopg.conninfo.conninfo_to_dict(dsn)
    return psycopg.conninfo.make_conninfo(
        "", **(dict(psycopg.conninfo.conninfo_to_dict(KEEPALIVE)) | params)
    )


def step_key(rollout_id: str, step_index: int) -> str:
    """The window a gate decision is taken on: one rollout's one step (pure)."""
    return f"{rollout_id}:{step_index}"


class FleetCoordinator:
    """One replica's seat at the fleet's table (blocking calls: run them off the event loop)."""

    scope = "fleet"

    def __init__(self, dsn: str, replica: str, *, lease_s: float = LEASE_S) -> None:
        self.dsn = dsn
        self.replica = replica
        self.lease_s = lease_s
        # Unique per process life, so two replicas started under one name never share rows.
        self.instance = f"{replica}-{os.getpid()}-{os.urandom(3).hex()}"
        self._leader: psycopg.Connection[Any] | None = None
        self.leading = False
        self.lost = 0  # times this replica lost leadership it held (for the metric)
        self.epoch: int | None = None  # the fencing token of our leadership, while leading
        self._warned_no_lease = False

    def _connect(self, idle_s: float | None = None) -> psycopg.Connection[Any]:
        conn = psycopg.connect(with_keepalive(self.dsn), autocommit=True, connect_timeout=3)
        if idle_s is not None:  # PostgreSQL ends the session when we stop touching it
            try:
                conn.execute(f"SET {LEASE_SETTING} = {int(idle_s * 1000)}")
            except psycopg.errors.UndefinedObject:  # PostgreSQL before 14: no such setting
                if not self._warned_no_lease:
                    self._warned_no_lease = True
                    log.error(
                        "PostgreSQL %s has no idle_session_timeout (it came in 14): the "
                        "rollout leader has no lease, so a leader whose loop hangs keeps "
                        "leading; upgrade PostgreSQL to 14 or later",
                        conn.info.server_version,
                    )
        return conn

    def setup(self) -> None:
        with self._connect() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", [ROUTE_LOCKS])
            conn.execute(SCHEMA)

    # -- leadership ------------------------------------------------------------------------

    def hold_leadership(self) -> bool:
        """Take the leader lock if free, touch its session if held (the lease); True while
        leading. Called by the replica's loop every poll: a loop that stops calling it loses
        the lock after `lease_s`."""
        try:
            if self._leader is None or self._leader.closed:
                self._leader = self._connect(idle_s=self.lease_s)
                self.leading = False
            if self.leading:
                self._leader.execute("SELECT 1")  # the touch: a live session keeps the lock
            else:
                row = self._leader.execute(
                    "SELECT pg_try_advisory_lock(%s)", [LEADER_LOCK]
                ).fetchone()
                if row and row[0]:
                    self.setup()  # idempotent; the tables exist even if start found no server
                    taken = self._leader.execute(
                        "UPDATE fleet_rollout_leader SET epoch = epoch + 1, instance = %s, "
                        "ts = now() WHERE id = 1 RETURNING epoch",
                        [self.instance],
                    ).fetchone()
                    self.epoch = int(taken[0]) if taken else None
                    self.leading = self.epoch is not None
                if self.leading:
                    log.warning(
                        "replica %s now leads the fleet's rollouts (lease %.1f s, epoch %s)",
                        self.instance,
                        self.lease_s,
                        self.epoch,
                    )
        except psycopg.Error as exc:
            self._step_down(exc)
        return self.leading

    def confirm(self) -> bool:
        """Whether this replica still holds the leader lock, asked of PostgreSQL (its session
        is alive, so the session's lock is still held); steps down if not. Call it just before
        deciding: a leader frozen longer than the lease finds its session ended here."""
        if not self.leading or self._leader is None:
            return False
        started = time.monotonic()
        try:
            self._leader.execute("SELECT 1")
        except psycopg.Error as exc:
            self._step_down(exc)
            return False
        if time.monotonic() - started >= self.lease_s:  # the answer itself came too late
            self._step_down(RuntimeError(f"the confirmation took over {self.lease_s:.1f} s"))
            return False
        return True

    def fence(self) -> tuple[str, list[Any]] | None:
        """SQL for the store transaction that writes a gate decision: it matches one row only
        while no other replica has taken the leadership since ours began (a fencing token)."""
        if self.epoch is None:
            return None
        return (
            "UPDATE fleet_rollout_leader SET epoch = epoch WHERE id = 1 AND epoch = ?",
            [self.epoch],
        )

    def step_down(self, reason: str) -> None:
        self._step_down(RuntimeError(reason))

    def _step_down(self, exc: BaseException) -> None:
        if self.leading:
            self.lost += 1
            log.error(
                "replica %s lost rollout leadership and stops deciding: its lock session "
                "ended (no touch for over the %.1f s lease: a stalled loop or a stopped "
                "process; or the connection broke): %s",
                self.instance,
                self.lease_s,
                str(exc).strip(),
            )
        self.release()

    def release(self) -> None:
        if self._leader is not None:
            with suppress(psycopg.Error):
                self._leader.close()
            self._leader = None
        self.leading = False
        self.epoch = None

    # -- versions --------------------------------------------------------------------------

    def version(self) -> int:
        with self._connect() as conn:
            row = conn.execute("SELECT version FROM fleet_rollout_version WHERE id = 1").fetchone()
        return int(row[0]) if row else 0

    def lock(self) -> psycopg.Connection[Any]:
        """Hold the fleet's change lock (one change of rollout state at a time, fleet-wide)
        across reading the version, deciding and writing; `unlock` when done."""
        conn = self._connect(idle_s=max(CHANGE_LOCK_IDLE_S, 2 * self.lease_s))
        try:
            conn.execute("SELECT pg_advisory_lock(%s)", [ROUTE_LOCKS])
        except BaseException:
            conn.close()
            raise
        return conn

    def unlock(self, conn: psycopg.Connection[Any]) -> None:
        with suppress(psycopg.Error):
            conn.execute("SELECT pg_advisory_unlock(%s)", [ROUTE_LOCKS])
        conn.close()  # closing releases it in any case

    def current(self, conn: psycopg.Connection[Any]) -> int:
        row = conn.execute("SELECT version FROM fleet_rollout_version WHERE id = 1").fetchone()
        return int(row[0]) if row else 0

    def bump(self, conn: psycopg.Connection[Any]) -> int:
        row = conn.execute(
            "UPDATE fleet_rollout_version SET version = version + 1, replica = %s, ts = now() "
            "WHERE id = 1 RETURNING version",
            [self.instance],
        ).fetchone()
        return int(row[0]) if row else 0

    # -- windows ---------------------------------------------------------------------------

    def publish(self, step: str, numbers: dict[str, Shared]) -> None:
        if not numbers:
            return
        with self._connect() as conn, conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO fleet_rollout_windows (instance, step, variant, numbers) "
                "VALUES (%s, %s, %s, %s) ON CONFLICT (instance, step, variant) "
                "DO UPDATE SET numbers = EXCLUDED.numbers, ts = now()",
                [
                    (self.instance, step, variant, orjson.dumps(shared).decode())
                    for variant, shared in numbers.items()
                ],
            )

    def windows(self, step: str) -> dict[str, Window]:
        """The fleet's numbers for one step, per variant, merged over every replica."""
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT variant, numbers FROM fleet_rollout_windows WHERE step = %s", [step]
            ).fetchall()
        return merge_by_variant(rows)
