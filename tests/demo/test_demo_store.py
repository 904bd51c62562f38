"""The demo reads its store through the one store layer (gateway.store.backend's Store), as the
gateway, the trainer and the CLI do: the same figures from an embedded file or a fleet."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

import distill_demo
from distill_demo.summary import read_store
from gateway.rollout import store as records
from gateway.rollout.state import Rollout
from gateway.store.backend import EmbeddedStore, Store
from gateway.store.fleet import FleetStore
from tests.fixtures.imports import imported_modules

DEMO = Path(distill_demo.__file__).parent
OUTSIDE_THE_STORE = ("duckdb", "gateway.store.db")


def store_bypasses(source: str) -> list[str]:
    return [n for n in imported_modules(source) if n in OUTSIDE_THE_STORE]


def test_the_check_sees_both_forms() -> None:
    code = "import duckdb\ndef f():\n    from gateway.store.db import connect\n"
    assert store_bypasses(code) == ["duckdb", "gateway.store.db"]
    assert store_bypasses("from gateway.store.backend import store_at\n") == []


def test_no_demo_module_opens_duckdb_outside_the_store() -> None:
    offenders = {
        str(path.relative_to(DEMO.parent)): found
        for path in sorted(DEMO.rglob("*.py"))
        if (found := store_bypasses(path.read_text()))
    }
    assert offenders == {}


def fill(store: Store) -> None:
    with store.connect() as conn:
        for i, (kind, variant, status) in enumerate(
            [("primary", "teacher", 200), ("primary", "teacher", 502), ("shadow", "s1", 200)]
        ):
            conn.execute(
                "INSERT INTO requests BY NAME SELECT ? AS id, now() AS ts, 'r' AS route, "
                "? AS variant, ? AS kind, ? AS status, 10.0 * ? AS latency_ms, 'chat' AS endpoint, "
                "false AS stream",
                [f"req-{i}", variant, kind, status, i + 1],
            )
    rollout = Rollout(id="ro_1", route="r", adapter="s1", steps=(100.0,))
    records.save(store, rollout, time.time(), records.Decision("start", -1, "test"))


def check(numbers: object) -> None:
    assert numbers.rows == {"primary": 2, "shadow": 1, "total": 3}  # type: ignore[attr-defined]
    assert numbers.errors == 1  # type: ignore[attr-defined]
    assert [r["decisions"][0]["decision"] for r in numbers.rollouts] == ["start"]  # type: ignore[attr-defined]


def test_read_store_on_the_embedded_file_by_path_or_store(tmp_path: Path) -> None:
    store = EmbeddedStore(tmp_path / "distill.duckdb")
    fill(store)
    check(read_store(store.path, "r"))  # the path, as the demo keeps it
    check(read_store(store, "r"))


def test_read_store_on_a_fleet(pg_dsn: str, tmp_path: Path) -> None:
    store = FleetStore(pg_dsn, str(tmp_path / "lake"))
    try:
        fill(store)
        check(read_store(store, "r"))
    finally:
        store.close()


def test_a_missing_store_says_so(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_store(tmp_path / "nothing.duckdb", "r")
