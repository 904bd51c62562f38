"""Registry functions over the store's `adapters` table; the gateway's rollout code calls these."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gateway.store.adapters import (
    ADAPTER_COLUMNS,
    AdapterNotFoundError,
    AdapterRecord,
    adapter_record,
    fetch_adapter,
    set_state,
    transition_adapter,
)
from gateway.store.backend import Store, as_store
from trainer.registry.states import STATES
from trainer.registry.validate import (
    DEFAULT_MAX_RANK,
    AdapterError,
    check_name,
    check_problems,
    config_problems,
    read_adapter,
)


def register_adapter(
    store: Store | str | Path,
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
    with as_store(store).connect() as conn:
        existing = fetch_adapter(conn, name)
        if existing is not None:
            raise AdapterError(
                f"adapter {name!r} is already registered (path {existing.path}, state "
                f"{existing.state}); register this version under a new --name"
            )
        conn.execute(
            f"INSERT INTO adapters ({ADAPTER_COLUMNS}) "
            "VALUES (?, ?, ?, ?, 'candidate', ?, ?, ?, ?, ?)",
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
        record = fetch_adapter(conn, name)
    assert record is not None
    return record


def get_adapter(store: Store | str | Path, name: str) -> AdapterRecord:
    with as_store(store).connect(read_only=True) as conn:
        record = fetch_adapter(conn, name)
    if record is None:
        raise AdapterNotFoundError(
            f"no adapter named {name!r} in {store}; see `distill adapters list --store {store}`"
        )
    return record


def list_adapters(
    store: Store | str | Path, *, route: str | None = None, state: str | None = None
) -> list[AdapterRecord]:
    """Registered adapters, newest first, optionally for one route or in one state."""
    if state is not None and state not in STATES:
        raise ValueError(f"unknown adapter state {state!r}: use one of {', '.join(STATES)}")
    if not as_store(store).exists():
        return []
    query = f"SELECT {ADAPTER_COLUMNS} FROM adapters WHERE true"
    params: list[Any] = []
    if route is not None:
        query += " AND route = ?"
        params.append(route)
    if state is not None:
        query += " AND state = ?"
        params.append(state)
    with as_store(store).connect(read_only=True) as conn:
        rows = conn.execute(query + " ORDER BY created_at DESC, name", params).fetchall()
    return [adapter_record(row) for row in rows]


__all__ = [
    "AdapterNotFoundError",
    "AdapterRecord",
    "get_adapter",
    "list_adapters",
    "register_adapter",
    "set_state",
    "transition_adapter",
]
