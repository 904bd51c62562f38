"""SIGTERM with requests in flight: they finish with 200, the spool is flushed, nothing lost."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fixtures.servers import TeacherServer
from tests.reliability.procs import GatewayProcess, stored, stored_ids
from tests.reliability.test_faults import TECHNICAL, Outcome, call
from tests.reliability.test_store_faults import hold_lock

pytestmark = pytest.mark.reliability


def slow_routes(cfg: dict[str, Any]) -> None:
    cfg["store"]["flush_interval_s"] = 30  # everything is still only spooled at SIGTERM
    for model, teacher_model in (("s-slow", "gpt-4o-slow-1.5"), ("s-drip", "gpt-4o-drip-0.4")):
        cfg["routes"].append(
            {
                "name": model,
                "match": [model],
                "teacher": {"upstream": "teacher", "model": teacher_model},
            }
        )


def in_flight_load(gateway: GatewayProcess) -> tuple[list[threading.Thread], list[Outcome]]:
    """Three slow answers and three slow streams, started and waited on until in flight."""
    outcomes: list[Outcome] = []

    def send(model: str, stream: bool) -> None:
        outcomes.append(call(gateway.url, model, stream=stream, content=TECHNICAL))

    threads = [threading.Thread(target=send, args=("s-slow", False)) for _ in range(3)]
    threads += [threading.Thread(target=send, args=("s-drip", True)) for _ in range(3)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 10
    # The gauge counts a stream until its last byte: all six are in flight before SIGTERM
    # (a request still on its way when the signal lands is refused, rightly).
    while gateway.metrics()["distill_requests_in_flight"] < 6:
        assert time.monotonic() < deadline, "the slow requests never reached the gateway"
        time.sleep(0.02)
    return threads, outcomes


def test_sigterm_lets_in_flight_requests_finish_and_flushes_the_spool(
    tmp_path: Path, teacher_server: TeacherServer
) -> None:
    gateway = GatewayProcess(tmp_path, teacher_server.base_url, slow_routes)
    try:
        before = [call(gateway.url, "gpt-4o", stream=False).request_id for _ in range(5)]
        threads, outcomes = in_flight_load(gateway)
        assert gateway.proc is not None
        gateway.proc.send_signal(signal.SIGTERM)
        for t in threads:
            t.join(20)
        assert gateway.terminate(), "the gateway did not exit cleanly"
        assert len(outcomes) == 6
        for outcome in outcomes:
            assert (outcome.status, outcome.error, outcome.text) == (200, None, "technical")
        assert sum(o.done for o in outcomes) == 3  # the streams ended with [DONE]
        assert not gateway.spooled_segments(), "the spool was flushed into the store"
        ids = stored_ids(gateway.store)
        expected = before + [o.request_id for o in outcomes]
        assert sorted(ids) == sorted(expected)  # all of them, once each
        assert {status for _, status in stored(gateway.store)} == {200}
    finally:
        gateway.close()


def test_sigterm_with_the_store_locked_keeps_the_spool_for_the_next_start(
    tmp_path: Path, teacher_server: TeacherServer
) -> None:
    gateway = GatewayProcess(tmp_path, teacher_server.base_url, slow_routes)
    holder = None
    try:
        threads, outcomes = in_flight_load(gateway)
        holder = hold_lock(gateway.store)  # the final flush cannot reach the store
        assert gateway.terminate(), "the gateway did not exit cleanly"
        for t in threads:
            t.join(20)
        assert [o.status for o in outcomes] == [200] * 6
        assert gateway.spooled_segments(), "the records wait in the spool"
    finally:
        if holder is not None:
            holder.kill()
            holder.wait()
    try:
        gateway.config["store"]["flush_interval_s"] = 0.2  # replay on the first tick
        gateway.config_path.write_text(yaml.safe_dump(gateway.config))
        gateway.start()  # the next start replays them
        gateway.wait_drained()
        assert gateway.terminate()
        assert sorted(stored_ids(gateway.store)) == sorted(o.request_id for o in outcomes)
    finally:
        gateway.close()
