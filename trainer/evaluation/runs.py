"""Record an eval or sweep run in the store's `runs` table."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

from gateway.store.backend import StoreRef, as_store


def record_run(
    store: StoreRef,
    *,
    kind: str,
    metrics: dict[str, Any],
    config: dict[str, Any],
    dataset_hash: str | None,
    base_model: str | None,
    adapter_path: str | None,
    sweep_id: str | None = None,
) -> str:
    """Insert one row and return its id; the store is held only for this insert."""
    run_id = uuid.uuid4().hex
    with as_store(store).connect() as conn:
        conn.execute(
            "INSERT INTO runs (id, ts, kind, sweep_id, dataset_hash, base_model, config, metrics,"
            " adapter_path) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                run_id,
                datetime.now(UTC),
                kind,
                sweep_id,
                dataset_hash,
                base_model,
                json.dumps(config, default=str),
                json.dumps(metrics, default=str),
                adapter_path,
            ],
        )
    return run_id
