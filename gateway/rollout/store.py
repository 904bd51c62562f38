"""Rollouts and their decisions in the store, so a restarted gateway resumes where it was."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import duckdb
import orjson

from gateway.rollout.gates import Gates
from gateway.rollout.state import ACTIVE, Rollout
from gateway.store.backend import StoreRef, as_store

log = logging.getLogger("distill.rollout")


def _now() -> datetime:
    return datetime.now(UTC)


def new_id(prefix: str) -> str:
    return f"{prefix}_{os.urandom(8).hex()}"


@dataclass(frozen=True)
class Decision:
    """Why a rollout changed state: recorded beside the state it led to."""

    decision: str
    from_step: int
    reason: str
    numbers: dict[str, Any] = field(default_factory=dict)


class FencedError(RuntimeError):
    """The fence of a write matched nothing: the writer's leadership has been taken over."""


@dataclass(frozen=True)
class Change:
    """One rollout row to write, with the decision that led to it (if it is one)."""

    rollout: Rollout
    step_started_at: float
    decision: Decision | None = None


def save(
    at: StoreRef,
    rollout: Rollout,
    step_started_at: float,
    decision: Decision | None = None,
    *,
    fence: tuple[str, list[Any]] | None = None,
    also: Sequence[Change] = (),
) -> None:
    """Write a rollout's state and, when given, the decision that led to it, plus the other
    rows the same transition changes (`also`: a promotion it replaced or restored), in one
    transaction: a reader never sees a new state without its decision, nor two promoted
    rollouts on one route. `fence`: a statement run first in that transaction that must match
    exactly one row (a fleet leader's epoch), else FencedError and nothing is written."""
    with as_store(at).connect() as conn:
        conn.begin()
        try:
            if fence is not None:
                matched = conn.execute(*fence).fetchone()
                if not matched or matched[0] != 1:
                    raise FencedError(
                        f"rollout {rollout.id}: another replica took the leadership; "
                        "this decision was not written"
                    )
            for change in (Change(rollout, step_started_at, decision), *also):
                _write(conn, change)
            conn.commit()
        except BaseException:
            conn.rollback()
            raise


def _write(conn: duckdb.DuckDBPyConnection, change: Change) -> None:
    rollout, decision = change.rollout, change.decision
    gates = asdict(rollout.gates) | {
        "shadow_rate": rollout.shadow_rate,
        "paused_from": rollout.paused_from,
    }
    conn.execute(
        "INSERT OR REPLACE INTO rollouts (id, route, adapter, state, step_index, steps, "
        "gates, step_started_at, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, "
        "to_timestamp(?), coalesce((SELECT created_at FROM rollouts WHERE id = ?), ?), ?)",
        [
            rollout.id,
            rollout.route,
            rollout.adapter,
            rollout.state,
            rollout.step_index,
            orjson.dumps(list(rollout.steps)).decode(),
            orjson.dumps(gates).decode(),
            change.step_started_at,
            rollout.id,
            _now(),
            _now(),
        ],
    )
    if decision is not None:
        conn.execute(
            "INSERT INTO rollout_decisions (id, rollout_id, ts, decision, from_step, "
            "to_step, reason, numbers) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                new_id("dec"),
                rollout.id,
                _now(),
                decision.decision,
                decision.from_step,
                rollout.step_index,
                decision.reason,
                orjson.dumps(decision.numbers).decode(),
            ],
        )


def load_promoted(at: StoreRef) -> dict[str, Rollout]:
    """Per route, the most recently promoted rollout: its adapter serves the route."""
    if not as_store(at).exists():
        return {}
    with as_store(at).connect() as conn:  # at start: migrates a store from an older version
        return _promoted(conn)


def load_current(at: StoreRef) -> tuple[dict[str, Rollout], list[tuple[Rollout, float]]]:
    """`load_promoted` and `load_latest` on one read-only connection: what a follower reloads
    when the rollout version moved (a writable open would migrate and checkpoint each time)."""
    if not as_store(at).exists():
        return {}, []
    with as_store(at).connect(read_only=True) as conn:
        return _promoted(conn), _latest(conn)


def load_replaced(at: StoreRef, route: str) -> Rollout | None:
    """The route's most recently replaced promotion: it serves again when its successor is
    rolled back by hand."""
    if not as_store(at).exists():
        return None
    where = "route = ? AND state = 'replaced' ORDER BY updated_at DESC LIMIT 1"
    with as_store(at).connect() as conn:
        found = _load(conn, where, [route])
    return found[0][0] if found else None


def load_latest(at: StoreRef) -> list[tuple[Rollout, float]]:
    """Per route, the rollout that decides its weights now: the most recently changed one that
    a later promotion has not replaced (a fleet replica reloads these when the version moves)."""
    if not as_store(at).exists():
        return []
    with as_store(at).connect() as conn:
        return _latest(conn)


def load_active(at: StoreRef) -> list[tuple[Rollout, float]]:
    """Active rollouts with the wall-clock time their step started."""
    if not as_store(at).exists():
        return []
    with as_store(at).connect() as conn:
        return _load(conn, "state IN (?, ?, ?)", list(ACTIVE))


def _promoted(conn: duckdb.DuckDBPyConnection) -> dict[str, Rollout]:
    rows = conn.execute(
        "SELECT route, arg_max(id, updated_at) FROM rollouts WHERE state = 'promoted' "
        "GROUP BY route"
    ).fetchall()
    ids = [rid for _, rid in rows]
    return {r.route: r for r, _ in _load(conn, "id IN (SELECT unnest(?))", [ids])}


def _latest(conn: duckdb.DuckDBPyConnection) -> list[tuple[Rollout, float]]:
    rows = conn.execute(
        "SELECT route, arg_max(id, updated_at) FROM rollouts WHERE state != 'replaced' "
        "GROUP BY route"
    ).fetchall()
    return _load(conn, "id IN (SELECT unnest(?))", [[rid for _, rid in rows]])


def _load(
    conn: duckdb.DuckDBPyConnection, where: str, params: list[Any]
) -> list[tuple[Rollout, float]]:
    rows = conn.execute(
        "SELECT id, route, adapter, state, step_index, steps, gates, "
        f"epoch(step_started_at) FROM rollouts WHERE {where}",
        params,
    ).fetchall()
    out = []
    for rid, route, adapter, state, step_index, steps, gates_json, started in rows:
        try:  # validated on read: one bad stored row must not stop the gateway starting
            gates = orjson.loads(gates_json)
            shadow_rate = gates.pop("shadow_rate", 0.5)
            paused_from = gates.pop("paused_from", None)
            rollout = Rollout(
                id=rid,
                route=route,
                adapter=adapter,
                steps=tuple(orjson.loads(steps)),
                gates=Gates(**gates),
                state=state,
                step_index=step_index,
                paused_from=paused_from,
                shadow_rate=shadow_rate,
            )
            out.append((rollout, float(started)))
        except (ValueError, TypeError, AttributeError) as exc:  # JSONDecodeError is a ValueError
            log.error(
                "stored rollout %s (route %s) is invalid and was not resumed: %s; its route "
                "serves the teacher; start a new rollout with valid gates",
                rid,
                route,
                exc,
            )
    return out


def history(at: StoreRef, route: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
    """Rollouts (newest first) with their decisions, for `rollout status`."""
    if not as_store(at).exists():
        return []
    with as_store(at).connect() as conn:
        where = "WHERE route = ?" if route else ""
        params: list[Any] = [route] if route else []
        rollouts = conn.execute(
            f"SELECT id, route, adapter, state, step_index, steps, gates, created_at, updated_at "
            f"FROM rollouts {where} ORDER BY created_at DESC LIMIT {int(limit)}",
            params,
        ).fetchall()
        out = []
        for rid, r_route, adapter, state, step_index, steps, gates, created, updated in rollouts:
            decisions = conn.execute(
                "SELECT ts, decision, from_step, to_step, reason, numbers FROM rollout_decisions"
                " WHERE rollout_id = ? ORDER BY ts",
                [rid],
            ).fetchall()
            out.append(
                {
                    "id": rid,
                    "route": r_route,
                    "adapter": adapter,
                    "state": state,
                    "step_index": step_index,
                    "steps": orjson.loads(steps),
                    "gates": orjson.loads(gates),
                    "created_at": created.isoformat(),
                    "updated_at": updated.isoformat(),
                    "decisions": [
                        {
                            "ts": ts.isoformat(),
                            "decision": d,
                            "from_step": f,
                            "to_step": t,
                            "reason": reason,
                            "numbers": orjson.loads(numbers) if numbers else None,
                        }
                        for ts, d, f, t, reason, numbers in decisions
                    ],
                }
            )
    return out
