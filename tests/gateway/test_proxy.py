"""The gateway as apps see it: the official openai client against real uvicorn servers."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import openai
import orjson
import pytest

from distill_demo.teacher.task import SYSTEM_PROMPT
from gateway.store.db import connect
from tests.fixtures.servers import GatewayFactory, GatewayServer, TeacherServer

TICKET = "Hi, I was charged twice for my invoice. This is urgent."
MESSAGES = [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": TICKET}]


def client(server: GatewayServer | TeacherServer, **kwargs: Any) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=server.base_url, api_key="sk-app-secret-123", max_retries=0, **kwargs
    )


def rows(server: GatewayServer, where: str = "true") -> list[dict[str, Any]]:
    server.flush()
    with connect(server.store_path, read_only=True) as conn:
        cursor = conn.execute(f"SELECT * FROM requests WHERE {where} ORDER BY ts")
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def without_created(obj: Any) -> Any:
    data = obj.model_dump()
    data.pop("created", None)
    return data


def test_non_stream_answer_is_the_teachers_and_is_logged(
    gateway_server: GatewayServer, teacher_server: TeacherServer
) -> None:
    raw = client(gateway_server).chat.completions.with_raw_response.create(
        model="gpt-4o", messages=MESSAGES, user="alice"
    )
    via_gateway = raw.parse()
    direct = client(teacher_server).chat.completions.create(
        model="gpt-4o", messages=MESSAGES, user="alice"
    )
    assert without_created(via_gateway) == without_created(direct)
    assert via_gateway.choices[0].message.content == "billing"
    request_id = raw.headers["x-distill-request-id"]
    assert raw.headers["x-distill-variant"] == "teacher"

    [row] = rows(gateway_server)
    assert row["id"] == request_id and row["pair_id"] == request_id
    assert (row["route"], row["variant"], row["kind"], row["endpoint"]) == (
        "support-triage",
        "teacher",
        "primary",
        "chat",
    )
    assert (row["status"], row["stream"], row["user"], row["finish_reason"]) == (
        200,
        False,
        "alice",
        "stop",
    )
    assert row["prompt_tokens"] == direct.usage.prompt_tokens  # type: ignore[union-attr]
    assert row["completion_tokens"] == direct.usage.completion_tokens  # type: ignore[union-attr]
    assert orjson.loads(row["request"])["messages"] == MESSAGES
    assert orjson.loads(row["response"])["choices"][0]["message"]["content"] == "billing"
    assert row["latency_ms"] > 0 and row["upstream_ms"] > 0 and row["ttft_ms"] is None


def test_stream_is_relayed_unchanged_and_logged_with_usage(
    gateway_server: GatewayServer, teacher_server: TeacherServer
) -> None:
    via_gateway = list(
        client(gateway_server).chat.completions.create(
            model="gpt-4o", messages=MESSAGES, stream=True
        )
    )
    direct = list(
        client(teacher_server).chat.completions.create(
            model="gpt-4o", messages=MESSAGES, stream=True
        )
    )
    assert [without_created(c) for c in via_gateway] == [without_created(c) for c in direct]
    assert all(c.usage is None for c in via_gateway)  # the usage we asked for is not shown
    text = "".join(c.choices[0].delta.content or "" for c in via_gateway if c.choices)
    assert text == "billing"

    [row] = rows(gateway_server)
    assert row["stream"] is True and row["status"] == 200
    assert row["completion_tokens"] == 2 and row["prompt_tokens"] > 0  # counted anyway
    response = orjson.loads(row["response"])
    assert response["object"] == "chat.completion"
    assert response["choices"][0]["message"]["content"] == "billing"
    assert response["choices"][0]["finish_reason"] == row["finish_reason"] == "stop"
    assert 0 < row["ttft_ms"] <= row["latency_ms"]


def test_stream_usage_reaches_clients_that_ask(gateway_server: GatewayServer) -> None:
    chunks = list(
        client(gateway_server).chat.completions.create(
            model="gpt-4o", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
    )
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 2


def test_async_client_stream_and_completions(gateway_server: GatewayServer) -> None:
    async def run() -> tuple[str, str, str]:
        aclient = openai.AsyncOpenAI(base_url=gateway_server.base_url, api_key="k", max_retries=0)
        stream = await aclient.chat.completions.create(
            model="gpt-4o",
            messages=[{"role": "user", "content": "The api returns a timeout"}],
            stream=True,
        )
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
        completion = await aclient.completions.create(model="gpt-4o", prompt="reset my password")
        streamed = await aclient.completions.create(
            model="gpt-4o", prompt="reset my password", stream=True
        )
        streamed_text = "".join([c.choices[0].text async for c in streamed])
        await aclient.close()
        return text, completion.choices[0].text, streamed_text

    assert asyncio.run(run()) == ("technical", "account", "account")
    logged = rows(gateway_server)
    assert [(r["endpoint"], r["stream"]) for r in logged] == [
        ("chat", True),
        ("completions", False),
        ("completions", True),
    ]
    assert orjson.loads(logged[2]["response"])["choices"][0]["text"] == "account"


def test_unknown_request_fields_pass_through(make_gateway: GatewayFactory) -> None:
    def echo(cfg: dict[str, Any]) -> None:
        cfg["routes"][0]["teacher"]["model"] = "gpt-4o-echo"

    server = make_gateway(echo)
    extra = {"my_vendor_field": {"nested": [1, 2]}, "seed": 7}
    answer = client(server).chat.completions.create(
        model="gpt-4o", messages=MESSAGES, extra_body=extra
    )
    received = orjson.loads(answer.choices[0].message.content or "")
    assert received["my_vendor_field"] == {"nested": [1, 2]} and received["seed"] == 7
    assert received["model"] == "gpt-4o-echo"  # the route's teacher model goes upstream


def test_unknown_model_is_openai_404_and_not_logged(gateway_server: GatewayServer) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        client(gateway_server).chat.completions.create(model="gpt-5-nope", messages=MESSAGES)
    error = info.value.body
    assert isinstance(error, dict) and error["code"] == "model_not_found"
    assert error["param"] == "model" and "gpt-5-nope" in error["message"]
    assert info.value.response.headers["x-distill-request-id"].startswith("req_")
    assert rows(gateway_server) == []


def test_default_route_serves_unknown_models(make_gateway: GatewayFactory) -> None:
    def default(cfg: dict[str, Any]) -> None:
        cfg["routes"][0]["default"] = True

    server = make_gateway(default)
    answer = client(server).chat.completions.create(model="anything", messages=MESSAGES)
    assert answer.choices[0].message.content == "billing"
    assert rows(server)[0]["model"] == "anything"


@pytest.mark.parametrize(
    ("content", "status", "param"),
    [
        (b"{not json", 400, None),
        (b"[]", 400, None),
        (b'{"messages": [{"role": "user", "content": "x"}]}', 400, "model"),
        (b'{"model": "gpt-4o"}', 400, "messages"),
        (b'{"model": "gpt-4o", "messages": "hi"}', 400, "messages"),
        (
            b'{"model": "gpt-4o", "messages": [{"role": "user"}], "max_tokens": -5}',
            400,
            "max_tokens",
        ),
        (b'{"model": "gpt-4o", "messages": [{"role": "user"}], "stream": "yes"}', 400, "stream"),
        (
            b'{"model": "gpt-4o", "messages": [{"role": "user", "content": "'
            + b"a" * 9_000_000
            + b'"}]}',
            413,
            None,
        ),
    ],
)
def test_bad_input_is_a_4xx_in_openai_shape_and_not_logged(
    gateway_server: GatewayServer, content: bytes, status: int, param: str | None
) -> None:
    response = httpx.post(
        f"{gateway_server.base_url}/chat/completions",
        content=content,
        headers={"content-type": "application/json"},
        timeout=30,
    )
    assert response.status_code == status
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"]
    assert error["param"] == param
    assert response.headers["x-distill-request-id"]
    assert rows(gateway_server) == []


@pytest.mark.parametrize(
    ("teacher_model", "exception", "status"),
    [
        ("gpt-4o-error", openai.InternalServerError, 500),
        ("gpt-4o-overloaded", openai.RateLimitError, 429),
    ],
)
def test_upstream_errors_pass_through_and_are_logged_failed(
    make_gateway: GatewayFactory, teacher_model: str, exception: type[Exception], status: int
) -> None:
    def broken(cfg: dict[str, Any]) -> None:
        cfg["routes"][0]["teacher"]["model"] = teacher_model

    server = make_gateway(broken)
    with pytest.raises(exception) as info:
        client(server).chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert "(simulated)" in str(info.value)  # the teacher's own body reached the app
    [row] = rows(server)
    assert row["status"] == status and "(simulated)" in row["error"]


def test_upstream_down_is_502(make_gateway: GatewayFactory) -> None:
    from tests.fixtures.servers import free_port

    def down(cfg: dict[str, Any]) -> None:
        cfg["upstreams"]["teacher"]["base_url"] = f"http://127.0.0.1:{free_port()}/v1"

    server = make_gateway(down)
    for stream in (False, True):
        with pytest.raises(openai.APIStatusError) as info:
            result = client(server).chat.completions.create(
                model="gpt-4o", messages=MESSAGES, stream=stream
            )
            list(result)  # type: ignore[call-overload]
        assert info.value.status_code == 502
        assert "unreachable" in info.value.message
    logged = rows(server)
    assert [r["status"] for r in logged] == [502, 502]
    assert all("unreachable" in r["error"] for r in logged)


def test_upstream_slower_than_its_timeout_is_504(make_gateway: GatewayFactory) -> None:
    def slow(cfg: dict[str, Any]) -> None:
        cfg["routes"][0]["teacher"]["model"] = "gpt-4o-slow-3"
        cfg["upstreams"]["teacher"]["timeout_s"] = 0.5

    server = make_gateway(slow)
    with pytest.raises(openai.APIStatusError) as info:
        client(server).chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert info.value.status_code == 504
    [row] = rows(server)
    assert row["status"] == 504 and "did not answer in time" in row["error"]


def test_stream_cut_mid_way_is_an_sse_error_and_a_failed_row(
    make_gateway: GatewayFactory,
) -> None:
    def cut(cfg: dict[str, Any]) -> None:
        cfg["routes"][0]["teacher"]["model"] = "gpt-4o-cut"

    server = make_gateway(cut)
    received = []
    with pytest.raises(openai.APIError) as info:
        for chunk in client(server).chat.completions.create(
            model="gpt-4o", messages=MESSAGES, stream=True
        ):
            received.append(chunk)
    assert received, "the first bytes reached the client before the cut"
    assert "closed the connection" in str(info.value) or "mid-response" in str(info.value)
    [row] = rows(server)
    assert row["status"] == 502 and row["error"]
    assert orjson.loads(row["response"])["choices"][0]["message"]["content"] == "bill"


def test_secrets_are_never_stored(make_gateway: GatewayFactory) -> None:
    server = make_gateway()
    client(server).chat.completions.create(model="gpt-4o", messages=MESSAGES)
    server.flush()
    with connect(server.store_path, read_only=True) as conn:
        dump = str(conn.execute("SELECT * FROM requests").fetchall())
    assert "sk-app-secret-123" not in dump and "Bearer" not in dump
    metrics = httpx.get(f"{server.url}/metrics").text
    assert "sk-app-secret-123" not in metrics


def test_capture_controls(make_gateway: GatewayFactory) -> None:
    def controls(cfg: dict[str, Any]) -> None:
        cfg["capture"] = {
            "redact": [{"pattern": r"[\w.]+@[\w.]+", "replace": "[EMAIL]"}],
            "max_body_bytes": 400,
        }

    server = make_gateway(controls)
    app = client(server)
    app.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "login fails for jo@x.io"}]
    )
    app.chat.completions.create(
        model="gpt-4o", messages=MESSAGES, extra_headers={"x-distill-no-log": "1"}
    )
    app.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "password " + "z" * 600}]
    )
    logged = rows(server)
    assert len(logged) == 2  # the opted-out exchange is not stored
    assert "jo@x.io" not in logged[0]["request"] and "[EMAIL]" in logged[0]["request"]
    big = orjson.loads(logged[1]["request"])
    assert big["truncated"] is True and big["original_bytes"] > 600
    skipped = server.gateway.metrics.registry.get_sample_value(
        "distill_log_rows_skipped_total", {"reason": "opt_out"}
    )
    assert skipped == 1


def test_tags_and_session_headers_are_logged(gateway_server: GatewayServer) -> None:
    client(gateway_server).chat.completions.create(
        model="gpt-4o",
        messages=MESSAGES,
        extra_headers={"x-distill-session": "s-42", "x-distill-tags": "team=ops,env=prod"},
    )
    client(gateway_server).chat.completions.create(
        model="gpt-4o", messages=MESSAGES, extra_headers={"x-distill-tags": '{"synthetic": true}'}
    )
    first, second = rows(gateway_server)
    assert first["session"] == "s-42" and first["synthetic"] is False
    assert orjson.loads(first["tags"]) == {"team": "ops", "env": "prod"}
    assert second["synthetic"] is True


def test_models_health_and_metrics(gateway_server: GatewayServer) -> None:
    models = client(gateway_server).models.list()
    assert [m.id for m in models.data] == ["gpt-4o"]
    assert httpx.get(f"{gateway_server.url}/healthz").json() == {"status": "ok"}
    assert httpx.get(f"{gateway_server.url}/readyz").status_code == 200
    for _ in range(3):
        client(gateway_server).chat.completions.create(model="gpt-4o", messages=MESSAGES)
    rows(gateway_server)
    registry = gateway_server.gateway.metrics.registry
    labels = {"route": "support-triage", "variant": "teacher", "traffic": "live"}
    assert registry.get_sample_value("distill_requests_total", {**labels, "status": "200"}) == 3
    assert registry.get_sample_value("distill_request_duration_seconds_count", labels) == 3
    assert registry.get_sample_value("distill_tokens_total", {**labels, "kind": "completion"}) == 6
    assert registry.get_sample_value("distill_cost_usd_total", labels) > 0
    assert registry.get_sample_value("distill_log_rows_written_total") == 3
    assert registry.get_sample_value("distill_log_queue_depth") == 0
    text = httpx.get(f"{gateway_server.url}/metrics").text
    assert (
        'distill_requests_total{route="support-triage",status="200",traffic="live",variant="teacher"}'
        " 3.0" in text
    )


def test_client_leaving_mid_stream_is_logged_499_and_stops_the_relay(
    make_gateway: GatewayFactory, caplog: pytest.LogCaptureFixture
) -> None:
    def drip(cfg: dict[str, Any]) -> None:
        cfg["routes"][0]["teacher"]["model"] = "gpt-4o-drip-1.5"  # one chunk every 1.5 s

    server = make_gateway(drip)
    in_flight = server.gateway.metrics.registry.get_sample_value
    assert in_flight("distill_requests_in_flight") == 0
    stream = client(server).chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
    first = next(iter(stream))
    assert first.choices[0].delta.role == "assistant"
    assert in_flight("distill_requests_in_flight") == 1  # counted while it streams
    stream.close()  # the app gives up after the first chunk
    deadline = time.monotonic() + 10
    while in_flight("distill_requests_in_flight") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert in_flight("distill_requests_in_flight") == 0
    [row] = rows(server)
    assert (row["status"], row["error"]) == (499, "client disconnected")
    assert row["latency_ms"] < 1500, "the relay stopped waiting on the upstream"
    assert "Exception in ASGI application" not in caplog.text


def test_a_bug_in_the_gateway_is_a_500_in_openai_shape(
    gateway_server: GatewayServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*args: Any) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(gateway_server.gateway.proxy, "handle", broken)
    with pytest.raises(openai.InternalServerError) as info:
        client(gateway_server).chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert info.value.status_code == 500
    assert info.value.body == {
        "message": "internal error in the gateway",
        "type": "server_error",
        "param": None,
        "code": "internal_error",
    }
    metrics = gateway_server.gateway.metrics.registry
    assert metrics.get_sample_value("distill_requests_in_flight") == 0
