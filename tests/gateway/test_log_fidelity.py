"""A streamed exchange is logged as its non-streamed twin: every field, every endpoint.

Each case sends one request body twice through the gateway (once with `stream: true`) to the
stand-in teacher, and compares the two logged rows: the response body (content, refusal,
tool calls, logprobs, usage) and the columns (tokens, finish reason, status, error). Two
cases come from a teacher that compresses its answers (gzip, brotli), as api.openai.com does.
"""

from __future__ import annotations

from typing import Any

import httpx
import openai
import orjson
import pytest

from tests.fixtures.servers import GatewayFactory, GatewayServer
from tests.gateway.test_proxy import rows

TICKET = "I was charged twice on my invoice this month, please refund. It's urgent."
CHAT = [{"role": "user", "content": TICKET}]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "lookup_invoice",
            "description": "Find an invoice",
            "parameters": {
                "type": "object",
                "properties": {"query": {"type": "string"}, "limit": {"type": "integer"}},
                "required": ["query", "limit"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "open_ticket",
            "parameters": {"type": "object", "properties": {"urgent": {"type": "boolean"}}},
        },
    },
]
FLAT_TOOLS = [{"type": "function", **t["function"]} for t in TOOLS]
SCHEMA = {
    "type": "object",
    "properties": {"category": {"type": "string"}, "priority": {"type": "string"}},
    "required": ["category", "priority"],
    "additionalProperties": False,
}

# (case, path, body): each body is sent as is, then with "stream": true.
CASES: list[tuple[str, str, dict[str, Any]]] = [
    ("chat", "/chat/completions", {"model": "gpt-4o", "messages": CHAT}),
    ("chat-length", "/chat/completions", {"model": "gpt-4o", "messages": CHAT, "max_tokens": 1}),
    ("chat-refusal", "/chat/completions", {"model": "gpt-4o-refuse", "messages": CHAT}),
    (
        "chat-logprobs",
        "/chat/completions",
        {"model": "gpt-4o", "messages": CHAT, "logprobs": True, "top_logprobs": 2},
    ),
    (
        "chat-refusal-logprobs",
        "/chat/completions",
        {"model": "gpt-4o-refuse", "messages": CHAT, "logprobs": True, "top_logprobs": 1},
    ),
    ("chat-tools", "/chat/completions", {"model": "gpt-4o", "messages": CHAT, "tools": TOOLS}),
    (
        "chat-json",
        "/chat/completions",
        {
            "model": "gpt-4o",
            "messages": CHAT,
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "t", "schema": SCHEMA, "strict": True},
            },
        },
    ),
    ("legacy", "/completions", {"model": "gpt-4o", "prompt": TICKET}),
    ("legacy-logprobs", "/completions", {"model": "gpt-4o", "prompt": TICKET, "logprobs": 2}),
    ("chat-gzip", "/chat/completions", {"model": "gpt-4o-gzip", "messages": CHAT, "tools": TOOLS}),
    ("responses-br", "/responses", {"model": "gpt-4o-br", "input": TICKET, "tools": FLAT_TOOLS}),
    ("responses", "/responses", {"model": "gpt-4o", "input": TICKET}),
    (
        "responses-items",
        "/responses",
        {
            "model": "gpt-4o",
            "instructions": "Classify the ticket.",
            "input": [{"role": "user", "content": [{"type": "input_text", "text": TICKET}]}],
        },
    ),
    ("responses-refusal", "/responses", {"model": "gpt-4o-refuse", "input": TICKET}),
    ("responses-tools", "/responses", {"model": "gpt-4o", "input": TICKET, "tools": FLAT_TOOLS}),
    (
        "responses-logprobs",
        "/responses",
        {
            "model": "gpt-4o",
            "input": TICKET,
            "include": ["message.output_text.logprobs"],
            "top_logprobs": 2,
        },
    ),
    (
        "responses-json",
        "/responses",
        {
            "model": "gpt-4o",
            "input": TICKET,
            "text": {"format": {"type": "json_schema", "name": "t", "schema": SCHEMA}},
        },
    ),
    (
        "responses-incomplete",
        "/responses",
        {"model": "gpt-4o", "input": TICKET, "max_output_tokens": 1},
    ),
]
COLUMNS = ("status", "error", "prompt_tokens", "completion_tokens", "finish_reason", "endpoint")


def comparable(response: dict[str, Any]) -> dict[str, Any]:
    """The body without what differs between any two calls (ids, clocks) and null fields.

    Null fields are dropped because an upstream may send `"refusal": null` in a full answer
    while its stream never mentions the field; tool-call ids are kept (they must match).
    """

    def prune(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: prune(v) for k, v in value.items() if v is not None}
        if isinstance(value, list):
            return [prune(v) for v in value]
        return value

    body = {k: v for k, v in response.items() if k not in ("id", "created", "created_at")}
    if isinstance(body.get("output"), list):  # Responses-API item ids embed the response id
        body["output"] = [{k: v for k, v in i.items() if k != "id"} for i in body["output"]]
    pruned: dict[str, Any] = prune(body)
    return pruned


def logged(server: GatewayServer, request_id: str) -> dict[str, Any]:
    (row,) = rows(server, f"id = '{request_id}'")
    return row


@pytest.mark.parametrize(("case", "path", "body"), CASES, ids=[c[0] for c in CASES])
def test_streamed_row_equals_its_non_streamed_twin(
    shared_gateway: GatewayServer, case: str, path: str, body: dict[str, Any]
) -> None:
    with httpx.Client(base_url=shared_gateway.base_url, timeout=10) as http:
        plain = http.post(path, json=body)
        streamed = http.post(path, json={**body, "stream": True})
    assert plain.status_code == streamed.status_code == 200, (plain.text, streamed.text)
    assert streamed.headers["content-type"].startswith("text/event-stream")
    if path == "/responses":  # a Responses stream ends with its terminal event, no [DONE]
        assert b"[DONE]" not in streamed.content
        assert b"event: response.completed" in streamed.content or case.endswith("incomplete")
    else:
        assert streamed.content.endswith(b"data: [DONE]\n\n")
    twin = logged(shared_gateway, plain.headers["x-distill-request-id"])
    row = logged(shared_gateway, streamed.headers["x-distill-request-id"])
    assert (row["stream"], twin["stream"]) == (True, False)
    assert {c: row[c] for c in COLUMNS} == {c: twin[c] for c in COLUMNS}
    assert row["prompt_tokens"] > 0 and row["completion_tokens"] > 0
    stored = orjson.loads(row["response"])
    assert comparable(stored) == comparable(orjson.loads(twin["response"]))
    # and the non-streamed row is what the client got
    assert comparable(orjson.loads(twin["response"])) == comparable(plain.json())


EXPECTED_FINISH = {
    "chat-length": "length",
    "chat-tools": "tool_calls",
    "responses-tools": "tool_calls",
    "chat-gzip": "tool_calls",
    "responses-br": "tool_calls",
    "responses-incomplete": "length",
}


@pytest.mark.parametrize(("case", "path", "body"), CASES[:3] + CASES[-4:], ids=lambda c: str(c))
def test_finish_reason_column_speaks_chat_for_every_endpoint(
    shared_gateway: GatewayServer, case: str, path: str, body: dict[str, Any]
) -> None:
    with httpx.Client(base_url=shared_gateway.base_url, timeout=10) as http:
        answer = http.post(path, json=body)
    row = logged(shared_gateway, answer.headers["x-distill-request-id"])
    assert row["finish_reason"] == EXPECTED_FINISH.get(case, "stop")


def test_streamed_parts_are_assembled_not_listed(shared_gateway: GatewayServer) -> None:
    """The shapes the old log got wrong: refusal text, one logprobs list, tool calls by index."""
    cases = {c: (p, b) for c, p, b in CASES}
    found: dict[str, Any] = {}
    with httpx.Client(base_url=shared_gateway.base_url, timeout=10) as http:
        for case in ("chat-refusal", "chat-logprobs", "chat-tools", "legacy-logprobs"):
            path, body = cases[case]
            answer = http.post(path, json={**body, "stream": True})
            row = logged(shared_gateway, answer.headers["x-distill-request-id"])
            found[case] = orjson.loads(row["response"])["choices"][0]
    refusal = found["chat-refusal"]["message"]
    assert refusal["refusal"].startswith("I'm sorry") and refusal["content"] is None
    content = found["chat-logprobs"]["logprobs"]["content"]
    assert "".join(t["token"] for t in content) == found["chat-logprobs"]["message"]["content"]
    assert all(len(t["top_logprobs"]) == 2 for t in content)
    calls = found["chat-tools"]["message"]["tool_calls"]
    assert [c["function"]["name"] for c in calls] == ["lookup_invoice", "open_ticket"]
    assert orjson.loads(calls[0]["function"]["arguments"])["limit"] == len(TICKET.split())
    assert orjson.loads(calls[1]["function"]["arguments"]) == {"urgent": True}
    legacy = found["legacy-logprobs"]
    assert "".join(legacy["logprobs"]["tokens"]) == legacy["text"]
    assert legacy["logprobs"]["text_offset"][0] == 0 and len(legacy["logprobs"]["top_logprobs"]) > 1


def test_cut_responses_stream_is_logged_with_what_arrived(make_gateway: GatewayFactory) -> None:
    """The teacher drops the connection after the first text delta: the client gets an error,
    the row keeps the partial answer rebuilt from the events that did arrive."""

    def cut(cfg: dict[str, Any]) -> None:
        cfg["routes"][0]["teacher"]["model"] = "gpt-4o-cut"

    server = make_gateway(cut)
    client = openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0)
    seen: list[str] = []
    with (
        pytest.raises(openai.APIError),
        client.responses.stream(model="gpt-4o", input=TICKET) as stream,
    ):
        seen.extend(event.type for event in stream)
    assert "response.output_text.delta" in seen and "response.completed" not in seen
    (row,) = rows(server)
    assert row["status"] == 502 and "closed the connection" in row["error"]
    stored = orjson.loads(row["response"])
    assert stored["status"] == "incomplete"
    assert stored["output"][0]["content"][0]["text"] == "bill"  # the one delta sent


def test_responses_time_to_first_token_is_the_first_delta(make_gateway: GatewayFactory) -> None:
    """`response.created` comes before any token: TTFT waits for the first delta."""

    def drip(cfg: dict[str, Any]) -> None:  # the teacher waits 0.1 s before each event
        cfg["routes"][0]["teacher"]["model"] = "gpt-4o-drip-0.1"

    server = make_gateway(drip)
    with httpx.Client(base_url=server.base_url, timeout=10) as http:
        answer = http.post("/responses", json={"model": "gpt-4o", "input": TICKET, "stream": True})
    assert answer.status_code == 200
    row = logged(server, answer.headers["x-distill-request-id"])
    # created, in_progress, item added, part added, then the first delta: 5 waits of 0.1 s
    assert 450 <= row["ttft_ms"] < row["latency_ms"]
