"""Registry functions over the store's `adapters` table; the gateway's rollout code calls these."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from gateway.store.db import connect
from trainer.registry.states import STATES, next_state
from trainer.registry.validate import (
    DEFAULT_MAX_RANK,
    AdapterError,
    check_name,
    check_problems,
    config_problems,
    read_adapter,
)

_COLUMNS = (
    "name, path, base_model, route, state, dataset_hash, lineage, metrics, created_at, updated_at"
)


class AdapterNotFoundError(LookupError):
    """No adapter of that name in the registry."""


@dataclass(frozen=True)
class AdapterRecord:
    name: str
    path: str
    base_model: str
    route: str | None
    state: str
    dataset_hash: str | None
    created_at: datetime
    updated_at: datetime
    lineage: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["created_at"] = self.created_at.isoformat()
        data["updated_at"] = self.updated_at.isoformat()
        return data


def _loads(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    parsed = json.loads(value) if isinstance(value, str) else value
    return parsed if isinstance(parsed, dict) else {}


def _record(row: tuple[Any, ...]) -> AdapterRecord:
    name, path, base, route, state, dataset_hash, lineage, metrics, created, updated = row
    return AdapterRecord(
        name=name,
        path=path,
        base_model=base,
        route=route,
        state=state,
        dataset_hash=dataset_hash,
        lineage=_loads(lineage),
        metrics=_loads(metrics),
        created_at=created,
        updated_at=updated,
    )


def _fetch(conn: duckdb.DuckDBPyConnection, name: str) -> AdapterRecord | None:
    row = conn.execute(f"SELECT {_COLUMNS} FROM adapters WHERE name = ?", [name]).fetchone()
    return _record(row) if row else None


def register_adapter(
    store: str | Path,
    adapter_dir: str | Path,
    *,
    name: str | None = None,
    route: str | None = None,
    max_rank: int = DEFAULT_MAX_RANK,
    now: datetime | None = None,
    force: bool = False,
) -> AdapterRecord:
    """Validate an adapter directory and add it to the registry as a `candidate`.

    An adapter whose training run failed its learning check is refused unless `force`.
    """
    info = read_adapter(adapter_dir)
    problems = config_problems(info.adapter_config, max_rank=max_rank)
    if problems:
        raise AdapterError(f"{info.path} cannot be served by vLLM: " + "; ".join(problems))
    failed = check_problems(info.lineage)
    if failed and not force:
        raise AdapterError(
            f"{info.path} did not learn its task in training ({'; '.join(failed)}), so it is "
            "not a rollout candidate; retrain it (see `check.advice` in its distill.json), or "
            "register it anyway with --force"
        )
    name = check_name(name or str(info.lineage.get("name") or info.path.name))
    stamp = now or datetime.now(UTC)
    with connect(store) as conn:
        existing = _fetch(conn, name)
        if existing is not None:
            raise AdapterError(
                f"adapter {name!r} is already registered (path {existing.path}, state "
                f"{existing.state}); register this version under a new --name"
            )
        conn.execute(
            f"INSERT INTO adapters ({_COLUMNS}) VALUES (?, ?, ?, ?, 'candidate', ?, ?, ?, ?, ?)",
            [
                name,
                str(info.path),
                info.base_model,
                route,
                info.dataset_hash,
                json.dumps(info.lineage),
                json.dumps(info.metrics),
                stamp,
                stamp,
            ],
        )
        record = _fetch(conn, name)
    assert record is not None
    return record


def get_adapter(store: str | Path, name: str) -> AdapterRecord:
    with connect(store, read_only=True) as conn:
        record = _fetch(conn, name)
    if record is None:
        raise AdapterNotFoundError(
            f"no adapter named {name!r} in {store}; see `distill adapters list --store {store}`"
        )
    return record


def list_adapters(
    store: str | Path, *, route: str | None = None, state: str | None = None
) -> list[AdapterRecord]:
    """Registered adapters, newest first, optionally for one route or in one state."""
    if state is not None and state not in STATES:
        raise ValueError(f"unknown adapter state {state!r}: use one of {', '.join(STATES)}")
    if not Path(store).exists():
        return []
    query = f"SELECT {_COLUMNS} FROM adapters WHERE true"
    params: list[Any] = []
    if route is not None:
        query += " AND route = ?"
        params.append(route)
    if state is not None:
        query += " AND state = ?"
        params.append(state)
    with connect(store, read_only=True) as conn:
        rows = conn.execute(query + " ORDER BY created_at DESC, name", params).fetchall()
    return [_record(row) for row in rows]


def transition_adapter(
    conn: duckdb.DuckDBPyConnection, name: str, state: str, *, now: datetime | None = None
) -> AdapterRecord:
    """`set_state` on a connection the caller holds, e.g. inside its own rollout transaction."""
    current = _fetch(conn, name)
    if current is None:
        raise AdapterNotFoundError(f"no adapter named {name!r} in the registry")
    target = next_state(current.state, state)
    conn.execute(
        "UPDATE adapters SET state = ?, updated_at = ? WHERE name = ?",
        [target, now or datetime.now(UTC), name],
    )
    record = _fetch(conn, name)
    assert record is not None
    return record


def set_state(
    store: str | Path, name: str, state: str, *, now: datetime | None = None
) -> AdapterRecord:
    """Move an adapter along its lifecycle; an invalid transition raises and changes nothing."""
    with connect(store) as conn:
        conn.execute("BEGIN")
        try:
            record = transition_adapter(conn, name, state, now=now)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return record
