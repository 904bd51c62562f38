"""The console shows tool-call and Responses-API exchanges as a conversation."""

from __future__ import annotations

import json
from typing import Any

import httpx
import openai
import pytest

from gateway.ui.shapes import conversation_view
from tests.fixtures.servers import GatewayFactory
from tests.ui.helpers import TOKEN, auth

CALL = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"q": 1}'}}


@pytest.mark.parametrize(
    ("row", "messages", "answer"),
    [
        (
            {
                "endpoint": "chat",
                "request": {
                    "messages": [
                        {"role": "user", "content": "hi"},
                        {"role": "assistant", "content": None, "tool_calls": [CALL]},
                        {"role": "tool", "tool_call_id": "c1", "content": "42"},
                    ],
                    "tools": [{"type": "function", "function": {"name": "f"}}],
                },
                "response": {
                    "choices": [{"message": {"role": "assistant", "content": "It is 42."}}]
                },
            },
            [
                {"role": "user", "content": "hi"},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [{"id": "c1", "name": "f", "arguments": '{"q": 1}'}],
                },
                {"role": "tool", "content": "42", "tool_call_id": "c1"},
            ],
            {"role": "assistant", "content": "It is 42."},
        ),
        (
            {
                "endpoint": "responses",
                "request": json.dumps({"input": "hi"}),
                "response": json.dumps(
                    {
                        "output": [
                            {
                                "type": "function_call",
                                "call_id": "c9",
                                "name": "g",
                                "arguments": "{}",
                            }
                        ]
                    }
                ),
            },
            [{"role": "user", "content": "hi"}],
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [{"id": "c9", "name": "g", "arguments": "{}"}],
            },
        ),
    ],
)
def test_conversation_view(
    row: dict[str, Any], messages: list[dict[str, Any]], answer: dict[str, Any]
) -> None:
    view = conversation_view(row)
    assert view is not None
    assert (view["messages"], view["answer"]) == (messages, answer)


def test_not_a_conversation_is_none() -> None:
    assert conversation_view({"endpoint": "responses", "request": "{", "response": "{}"}) is None


def test_exchange_api_carries_the_conversation(
    make_gateway: GatewayFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DISTILL_ADMIN_TOKEN", TOKEN)
    server = make_gateway()
    client = openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0)
    tool: Any = {"type": "function", "name": "lookup", "parameters": {"type": "object"}}
    raw = client.responses.with_raw_response.create(model="gpt-4o", input="hi", tools=[tool])
    server.flush()
    request_id = raw.headers["x-distill-request-id"]
    got = httpx.get(f"{server.url}/ui/api/exchanges/{request_id}", headers=auth())
    assert got.status_code == 200, got.text
    view = got.json()["conversation"]
    assert view["tools"] == ["lookup"]
    assert view["messages"] == [{"role": "user", "content": "hi"}]
    assert view["answer"]["tool_calls"][0]["name"] == "lookup"
