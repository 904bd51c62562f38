"""A teacher that answers badly (issue 15 items 3, 7, 8): odd usage, garbage, a slow drip.

The client still gets the teacher's answer when there is one, a 502 in OpenAI's shape when
there is not, and every exchange is logged once, marked failed when it failed.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
import openai
import orjson
import pytest

from tests.fixtures.servers import GatewayFactory, GatewayServer
from tests.gateway.test_proxy import MESSAGES, client, rows
from tests.gateway.test_transport import teacher_models

pytestmark = pytest.mark.reliability

ODD = {"negative": -5, "string": "12", "list": [], "huge": 2**31}


def post(server: GatewayServer, model: str, *, stream: bool = False) -> httpx.Response:
    body = {"model": model, "messages": MESSAGES, "stream": stream}
    return httpx.post(f"{server.base_url}/chat/completions", json=body, timeout=30)


def streamed(server: GatewayServer, model: str) -> tuple[int, bytes]:
    body = {"model": model, "messages": MESSAGES, "stream": True}
    url = f"{server.base_url}/chat/completions"
    with httpx.stream("POST", url, json=body, timeout=30) as response:
        return response.status_code, response.read()


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_odd_usage_still_answers_and_is_logged_with_a_note(
    make_gateway: GatewayFactory, stream: bool
) -> None:
    models = [f"gpt-4o-usage-{name}" for name in ODD]
    server = make_gateway(teacher_models(*models))
    ids = []
    for model in models:
        if stream:
            raw = client(server).chat.completions.with_raw_response.create(
                model=model, messages=MESSAGES, stream=True, stream_options={"include_usage": True}
            )
            text = "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)
        else:
            raw = client(server).chat.completions.with_raw_response.create(
                model=model, messages=MESSAGES
            )
            text = raw.parse().choices[0].message.content or ""
        assert raw.status_code == 200 and text == "billing"
        ids.append(raw.headers["x-distill-request-id"])
    logged = {r["id"]: r for r in rows(server)}
    assert sorted(logged) == sorted(ids)  # every exchange has its row
    for request_id, (name, value) in zip(ids, ODD.items(), strict=True):
        row = logged[request_id]
        assert row["status"] == 200 and row["error"] is None, name
        assert row["prompt_tokens"] is None and row["completion_tokens"] > 0, name
        notes = orjson.loads(row["notes"])
        assert any(n.startswith(f"usage.prompt_tokens: {value!r}") for n in notes), notes


@pytest.mark.parametrize("kind", ["html", "truncated", "huge"])
def test_a_200_that_is_not_json_is_a_502_and_a_failed_row(
    make_gateway: GatewayFactory, kind: str
) -> None:
    model = f"gpt-4o-garbage-{kind}"
    server = make_gateway(teacher_models(model))
    with pytest.raises(openai.APIStatusError) as caught:
        client(server).chat.completions.create(model=model, messages=MESSAGES)
    assert caught.value.status_code == 502
    error = caught.value.body
    assert isinstance(error, dict) and error["type"] == "upstream_error"
    assert error["code"] == "upstream_bad_response"
    [row] = rows(server)
    assert row["id"] == caught.value.response.headers["x-distill-request-id"]
    assert row["status"] == 502 and "not a JSON object" in row["error"]
    assert len(row["error"]) < 5000 and len(row["response"]) < 300 * 1024  # capped
    if kind == "huge":
        stored = orjson.loads(row["response"])
        assert stored["truncated"] and stored["original_bytes"] == 10 * 1024 * 1024


def test_a_500_with_megabytes_of_html_is_stored_once_capped(make_gateway: GatewayFactory) -> None:
    model = "gpt-4o-garbage-html500"
    server = make_gateway(teacher_models(model))
    response = post(server, model)
    assert response.status_code == 500 and response.headers["x-request-id"]
    [row] = rows(server)
    stored = orjson.loads(row["response"])
    assert stored["truncated"] and stored["original_bytes"] > 2_000_000
    assert len(row["response"]) < 300 * 1024
    assert row["status"] == 500 and row["error"].startswith("upstream answered 500 with")
    assert len(row["error"]) < 200  # what it was, not the page a second time


def test_malformed_sse_mid_stream_is_an_error_event_and_a_failed_row(
    make_gateway: GatewayFactory,
) -> None:
    model = "gpt-4o-garbage-sse"
    server = make_gateway(teacher_models(model))
    status, body = streamed(server, model)
    assert status == 200  # the first chunks were good and went out
    events = [e for e in body.split(b"\n\n") if e.startswith(b"data: ")]
    last = orjson.loads(events[-1][6:])
    assert last["error"]["code"] == "upstream_bad_stream"
    assert b"[DONE]" not in body
    [row] = rows(server)
    assert row["status"] == 502 and "malformed event stream" in row["error"]


def test_a_stream_that_is_not_sse_is_a_502_before_the_first_byte(
    make_gateway: GatewayFactory,
) -> None:
    model = "gpt-4o-garbage-html"
    server = make_gateway(teacher_models(model))
    with pytest.raises(openai.APIStatusError) as caught:
        list(client(server).chat.completions.create(model=model, messages=MESSAGES, stream=True))
    assert caught.value.status_code == 502
    [row] = rows(server)
    assert row["status"] == 502 and row["stream"] and "not an event stream" in row["error"]


def stream_limits(idle_s: float | None, deadline_s: float | None, *models: str) -> Any:
    add_routes = teacher_models(*models)

    def edit(cfg: dict[str, Any]) -> None:
        add_routes(cfg)
        teacher = cfg["upstreams"]["teacher"]
        teacher["timeout_s"] = 5
        if idle_s is not None:
            teacher["stream_idle_timeout_s"] = idle_s
        if deadline_s is not None:
            teacher["stream_deadline_s"] = deadline_s

    return edit


@pytest.mark.parametrize(
    ("model", "idle_s", "deadline_s", "code", "limit_s"),
    [
        # one chunk every 0.8 s, under the idle timeout, but the stream outlives its deadline
        ("gpt-4o-drip-0.8", None, 1.2, "upstream_stream_deadline", 1.2),
        # one chunk every 3 s, more than the idle timeout between chunks
        ("gpt-4o-drip-3", 1.0, None, "upstream_stream_idle", 1.0),
    ],
    ids=["deadline", "idle"],
)
def test_a_slow_drip_ends_within_the_stream_limits(
    make_gateway: GatewayFactory,
    model: str,
    idle_s: float | None,
    deadline_s: float | None,
    code: str,
    limit_s: float,
) -> None:
    server = make_gateway(stream_limits(idle_s, deadline_s, model))
    started = time.monotonic()
    _, body = streamed(server, model)
    elapsed = time.monotonic() - started
    assert limit_s <= elapsed < limit_s + 1.0, elapsed
    last = orjson.loads([e for e in body.split(b"\n\n") if e.startswith(b"data: ")][-1][6:])
    assert last["error"]["type"] == "timeout_error" and last["error"]["code"] == code
    [row] = rows(server)
    assert row["status"] == 504 and row["error"] == last["error"]["message"]


def test_an_answer_over_max_response_bytes_is_a_502_not_a_full_heap(
    make_gateway: GatewayFactory,
) -> None:
    model = "gpt-4o-garbage-huge"  # 10 MB

    def edit(cfg: dict[str, Any]) -> None:
        teacher_models(model)(cfg)
        cfg["upstreams"]["teacher"]["max_response_bytes"] = 1024 * 1024

    server = make_gateway(edit)
    response = post(server, model)
    assert response.status_code == 502
    assert response.json()["error"]["code"] == "upstream_response_too_large"
    [row] = rows(server)
    assert row["status"] == 502 and "max_response_bytes" in row["error"]


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_a_student_answering_garbage_falls_back_to_the_teacher(
    make_gateway: GatewayFactory, stream: bool
) -> None:
    def student(cfg: dict[str, Any]) -> None:
        cfg["routes"][0]["students"] = [
            {"name": "s1", "upstream": "teacher", "model": "gpt-4o-garbage-html", "weight": 100}
        ]

    server = make_gateway(student)
    if stream:
        chunks = client(server).chat.completions.create(
            model="gpt-4o", messages=MESSAGES, stream=True
        )
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    else:
        answer = client(server).chat.completions.create(model="gpt-4o", messages=MESSAGES)
        text = answer.choices[0].message.content or ""
    assert text == "billing"
    logged = {r["kind"]: r for r in rows(server)}
    assert (logged["primary"]["variant"], logged["primary"]["status"]) == ("s1", 502)
    assert (logged["fallback"]["variant"], logged["fallback"]["status"]) == ("teacher", 200)
