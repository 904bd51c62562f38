"""The adapter registry's table: records, and the lifecycle state a rollout moves along.

In gateway.store because the rollout controller sets the state (gateway must not import
trainer); `trainer.registry` registers and lists adapters on top of it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from gateway.store.adapter_states import next_state
from gateway.store.backend import Store, as_store

ADAPTER_COLUMNS = (
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


def _json_object(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    parsed = json.loads(value) if isinstance(value, str) else value
    return parsed if isinstance(parsed, dict) else {}


def adapter_record(row: tuple[Any, ...]) -> AdapterRecord:
    name, path, base, route, state, dataset_hash, lineage, metrics, created, updated = row
    return AdapterRecord(
        name=name,
        path=path,
        base_model=base,
        route=route,
        state=state,
        dataset_hash=dataset_hash,
        lineage=_json_object(lineage),
        metrics=_json_object(metrics),
        created_at=created,
        updated_at=updated,
    )


def fetch_adapter(conn: duckdb.DuckDBPyConnection, name: str) -> AdapterRecord | None:
    row = conn.execute(f"SELECT {ADAPTER_COLUMNS} FROM adapters WHERE name = ?", [name]).fetchone()
    return adapter_record(row) if row else None


def transition_adapter(
    conn: duckdb.DuckDBPyConnection, name: str, state: str, *, now: datetime | None = None
) -> AdapterRecord:
    """`set_state` on a connection the caller holds, e.g. inside its own rollout transaction."""
    current = fetch_adapter(conn, name)
    if current is None:
        raise AdapterNotFoundError(f"no adapter named {name!r} in the registry")
    target = next_state(current.state, state)
    conn.execute(
        "UPDATE adapters SET state = ?, updated_at = ? WHERE name = ?",
        [target, now or datetime.now(UTC), name],
    )
    record = fetch_adapter(conn, name)
    assert record is not None
    return record


def set_state(
    store: Store | str | Path, name: str, state: str, *, now: datetime | None = None
) -> AdapterRecord:
    """Move an adapter along its lifecycle; an invalid transition raises and changes nothing."""
    with as_store(store).connect() as conn:
        conn.execute("BEGIN")
        try:
            record = transition_adapter(conn, name, state, now=now)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return record
