"""`distill serve --workers N` without sockets: worker slots and names, the host coordinator."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner

from gateway.config import parse_config
from gateway.rollout.host import HostCoordinator, coordination_dir
from gateway.rollout.window import Shared
from gateway.serve_cli import serve
from gateway.store.spool import Spool
from gateway.workers import for_slot, free_slots, loop_runs, slot_spool, worker_replica
from tests.fixtures.servers import gateway_config_dict


@pytest.mark.parametrize(
    ("spool", "slot", "expected"),
    [
        ("distill.duckdb.spool", 0, "distill.duckdb.spool.w0"),
        ("/var/lib/distill/spool", 3, "/var/lib/distill/spool.w3"),
        ("distill-fleet.spool", 12, "distill-fleet.spool.w12"),
    ],
)
def test_slot_spool_is_a_sibling(spool: str, slot: int, expected: str) -> None:
    assert slot_spool(Path(spool), slot) == Path(expected)
    assert slot_spool(Path(spool), slot).parent == Path(spool).parent  # adoptable by siblings


@pytest.mark.parametrize(
    ("replica", "slot", "expected"),
    [("gw-a", 0, "gw-a-w0"), ("pod-7", 5, "pod-7-w5")],
)
def test_worker_replica(replica: str, slot: int, expected: str) -> None:
    assert worker_replica(replica, slot) == expected


def test_worker_replica_defaults_to_the_host_name() -> None:
    assert worker_replica(None, 1).endswith("-w1")


def test_for_slot_gives_each_worker_its_name_and_spool(tmp_path: Path) -> None:
    data = gateway_config_dict("http://127.0.0.1:9/v1", tmp_path / "s.duckdb")
    data["server"] = {"replica": "host"}
    config = parse_config(data, environ={})
    mine = for_slot(config, 2)
    assert mine.server.replica == "host-w2"
    assert mine.store.spool_path == tmp_path / "s.duckdb.spool.w2"
    assert mine.store.path == config.store.path  # one store for all workers
    assert config.server.replica == "host"  # the original is unchanged


def test_free_slots_skip_a_live_workers_spool(tmp_path: Path) -> None:
    spool = tmp_path / "s.spool"
    held = Spool(slot_spool(spool, 0))  # a live worker holds slot 0
    try:
        slots = free_slots(spool)
        assert next(slots) == 1
    finally:
        held.close()
    assert next(free_slots(spool)) == 0  # its worker died: the next one takes its spool


def test_one_leader_among_workers_until_it_lets_go(tmp_path: Path) -> None:
    a = HostCoordinator(coordination_dir(str(tmp_path / "s.duckdb")), "a")
    b = HostCoordinator(coordination_dir(str(tmp_path / "s.duckdb")), "b")
    assert a.hold_leadership()
    assert not b.hold_leadership()
    assert a.hold_leadership()  # still ours
    a.release()  # as when its process dies: the kernel drops the flock
    assert b.hold_leadership()
    assert not a.hold_leadership()
    b.release()


def test_versions_move_under_the_change_lock(tmp_path: Path) -> None:
    a = HostCoordinator(tmp_path / "c", "a")
    b = HostCoordinator(tmp_path / "c", "b")
    a.setup()
    b.setup()  # idempotent
    assert a.version() == b.version() == 0
    conn = a.lock()
    assert a.current(conn) == 0
    assert a.bump(conn) == 1
    assert b.version() == 0  # not visible before the change is committed
    a.unlock(conn)
    assert b.version() == 1


def _shared(requests: int, errors: int, latencies: list[float]) -> Shared:
    return Shared(
        requests=requests,
        errors=errors,
        latencies=latencies,
        ttfts=[],
        agreement_sum=0.0,
        agreement_pairs=0,
        feedback=0,
        negative=0,
    )


def test_windows_merge_every_workers_numbers(tmp_path: Path) -> None:
    a = HostCoordinator(tmp_path / "c", "a")
    b = HostCoordinator(tmp_path / "c", "b")
    a.setup()
    a.publish("r1:0", {"student": _shared(3, 1, [10.0, 20.0, 30.0])})
    b.publish("r1:0", {"student": _shared(2, 0, [40.0, 50.0]), "teacher": _shared(4, 0, [5.0])})
    a.publish("r1:0", {"student": _shared(5, 1, [10.0] * 5)})  # a's newer numbers replace its old
    b.publish("r1:1", {"student": _shared(100, 100, [1.0])})  # another step: not counted
    merged = a.windows("r1:0")
    assert (merged["student"].requests, merged["student"].errors) == (7, 1)
    assert merged["teacher"].requests == 4
    assert a.windows("r2:0") == {}


def test_workers_refuse_the_demo_teacher() -> None:
    result = CliRunner().invoke(serve, ["--workers", "2", "--demo-teacher"])
    assert result.exit_code != 0
    assert "--demo-teacher runs in one process" in result.output


def test_workers_must_be_positive() -> None:
    result = CliRunner().invoke(serve, ["--workers", "0"])
    assert result.exit_code != 0
    assert "--workers" in result.output


def test_a_hung_event_loop_leaves_the_health_ping_unanswered() -> None:
    """LoopCheckedProcess answers the supervisor's ping only once its loop runs a callback."""
    loop = asyncio.new_event_loop()
    release = threading.Event()

    def hang() -> None:
        release.wait()  # a callback that never yields: the loop is stuck in it

    loop.call_soon(hang)
    runner = threading.Thread(target=loop.run_forever, daemon=True)
    runner.start()
    answered: list[bool] = []
    check = threading.Thread(target=lambda: answered.append(loop_runs(loop)), daemon=True)
    check.start()
    check.join(0.5)
    assert check.is_alive() and answered == []  # no answer while the loop hangs
    release.set()  # the loop runs again: the check answers
    check.join(5)
    assert answered == [True]
    loop.call_soon_threadsafe(loop.stop)
    runner.join(5)
    loop.close()
    assert loop_runs(loop) is False  # closed: no answer either, the worker is exiting
