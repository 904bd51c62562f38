"""A follower's reload of the rollout state (another worker or replica changed it) reads the
store once, read-only: no writable open, no migration, no checkpoint on every version change."""

from __future__ import annotations

import time
from contextlib import AbstractContextManager
from pathlib import Path

import duckdb
import pytest

from gateway.app import create_app
from gateway.config import DistillConfig
from gateway.metrics import Metrics
from gateway.rollout import store as records
from gateway.rollout.controller import RolloutController
from gateway.rollout.state import Rollout
from gateway.store.backend import EmbeddedStore
from tests.fixtures.servers import gateway_config_dict


class CountingStore(EmbeddedStore):
    """The embedded store, remembering how each connection was opened."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.opened: list[bool] = []  # read_only, per connection

    def connect(
        self, *, read_only: bool = False, timeout_s: float = 30.0, migrated: bool = False
    ) -> AbstractContextManager[duckdb.DuckDBPyConnection]:
        self.opened.append(read_only)
        return super().connect(read_only=read_only, timeout_s=timeout_s, migrated=migrated)


@pytest.fixture
def stored(tmp_path: Path) -> CountingStore:
    """Route a: a promoted student and a newer canary of another; route b: one in shadow."""
    store = CountingStore(tmp_path / "gw.duckdb")
    now = time.time()
    old = Rollout(id="ro_1", route="a", adapter="a-v1").advance().advance()
    records.save(store, old.promote(), now)
    records.save(store, Rollout(id="ro_2", route="a", adapter="a-v2").advance(), now)
    records.save(store, Rollout(id="ro_3", route="b", adapter="b-v1"), now)
    store.opened.clear()
    return store


def test_the_current_state_is_read_on_one_read_only_connection(stored: CountingStore) -> None:
    promoted, latest = records.load_current(stored)
    assert stored.opened == [True]
    assert {r: p.adapter for r, p in promoted.items()} == {"a": "a-v1"}
    assert sorted((r.route, r.adapter, r.state) for r, _ in latest) == [
        ("a", "a-v2", "canary"),
        ("b", "b-v1", "shadow"),
    ]


def test_a_follower_reload_opens_the_store_once_read_only(
    stored: CountingStore, tmp_path: Path
) -> None:
    raw = gateway_config_dict("http://127.0.0.1:9/v1", stored.path)
    raw["upstreams"]["students"] = {"base_url": "http://127.0.0.1:9/v1"}
    raw["routes"] = [
        {
            "name": name,
            "match": [f"model-{name}"],
            "teacher": {"upstream": "teacher", "model": "gpt-4o"},
            "student_upstream": "students",
        }
        for name in ("a", "b")
    ]
    app = create_app(DistillConfig.model_validate(raw), metrics=Metrics(), start_writer=False)
    controller: RolloutController = app.state.gateway.rollouts
    controller.store = stored
    controller.reload(7)
    assert stored.opened == [True]
    assert controller.version == 7
    assert controller.proxy.overrides.weights == {
        "a": {"a-v2": 1.0, "a-v1": 99.0},
        "b": {"b-v1": 0},
    }
