"""Secondary teachers: second opinions logged under the primary's pair id, sampled and capped."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from distill_demo.teacher.server import TeacherSettings
from distill_demo.teacher.task import classify, generate_ticket
from gateway.config import ConfigError, parse_config
from gateway.store.db import connect
from tests.fixtures.servers import GatewayFactory, TeacherServer, start_teacher


@pytest.fixture
def second_teacher() -> Iterator[TeacherServer]:
    server = start_teacher(TeacherSettings(error_rate=0.5, seed="second"))
    yield server
    server.thread.stop()


def with_second(url: str, **extra: Any) -> Any:
    def edit(cfg: dict[str, Any]) -> None:
        cfg["upstreams"]["second"] = {"base_url": url, "timeout_s": 5}
        cfg["routes"][0]["secondary_teachers"] = [
            {"name": "teacher-b", "upstream": "second", "model": "gpt-4o", **extra}
        ]

    return edit


def logged(server: Any, *, wait_for_all: bool = True) -> list[tuple[Any, ...]]:
    deadline = time.monotonic() + (10 if wait_for_all else 0)
    while True:
        server.flush()
        with connect(server.store_path, read_only=True) as conn:
            rows = conn.execute(
                "SELECT p.id, p.response->'$.choices[0].message.content', "
                "s.variant, s.kind, s.response->'$.choices[0].message.content', "
                "p.request->'$.messages[0].content' "
                "FROM requests p LEFT JOIN requests s ON s.pair_id = p.id AND s.id != p.id "
                "WHERE p.kind = 'primary' ORDER BY p.ts"
            ).fetchall()
        if all(r[2] is not None for r in rows) or time.monotonic() > deadline:
            return rows
        time.sleep(0.1)


def test_every_request_gets_a_second_opinion(
    make_gateway: GatewayFactory, second_teacher: TeacherServer
) -> None:
    import random

    server = make_gateway(with_second(second_teacher.base_url))
    app = openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0)
    rng = random.Random(3)
    for _ in range(30):
        ticket, _ = generate_ticket(rng)
        app.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": ticket}])
    rows = logged(server)
    assert len(rows) == 30
    assert {(r[2], r[3]) for r in rows} == {("teacher-b", "secondary")}
    primary_right = sum(r[1].strip('"') == classify(r[5].strip('"')) for r in rows)
    second_right = sum(r[4].strip('"') == classify(r[5].strip('"')) for r in rows)
    assert primary_right == 30 and 5 <= second_right <= 25  # it really is a second opinion


def test_sampling_and_rate_cap(make_gateway: GatewayFactory, second_teacher: TeacherServer) -> None:
    server = make_gateway(with_second(second_teacher.base_url, sample_rate=0.5, max_rps=2))
    app = openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0)
    for i in range(40):
        app.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": f"refund {i}"}]
        )
    time.sleep(0.5)
    rows = logged(server, wait_for_all=False)
    seconds = [r for r in rows if r[2] is not None]
    assert 1 <= len(seconds) <= 6  # about half sampled, then at most ~2/s get through
    registry = server.gateway.metrics.registry
    limited = registry.get_sample_value(
        "distill_shadow_requests_total",
        {"route": "support-triage", "variant": "teacher-b", "outcome": "rate_limited"},
    )
    assert limited is not None and limited >= 5


def test_names_must_not_clash() -> None:
    with pytest.raises(ConfigError, match="clash with teacher/student names"):
        parse_config(
            {
                "upstreams": {"t": {"base_url": "http://127.0.0.1:1/v1"}},
                "routes": [
                    {
                        "name": "r",
                        "match": ["m"],
                        "teacher": {"upstream": "t", "model": "m"},
                        "secondary_teachers": [{"name": "teacher", "upstream": "t", "model": "x"}],
                    }
                ],
            },
            environ={},
        )
