"""The console shows tool-call and Responses-API exchanges as a conversation."""

from __future__ import annotations

import json
from pathlib import Path
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


def test_exchange_page_shows_an_agent_turn(
    make_gateway: GatewayFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In a real browser: the tool call, its result and the tools offered are on the page."""
    from tests.ui.test_browser import ARTIFACTS, CHROMIUM, FLAGS, RENDERED

    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip("needs the Debian packages chromium and chromium-driver (scripts/setup.sh)")
    monkeypatch.setenv("DISTILL_ADMIN_TOKEN", TOKEN)
    server = make_gateway()
    client = openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0)
    tools: Any = [{"type": "function", "function": {"name": "lookup", "parameters": {}}}]
    messages: list[Any] = [
        {"role": "user", "content": "Where is invoice 7?"},
        {"role": "assistant", "content": None, "tool_calls": [CALL]},
        {"role": "tool", "tool_call_id": "c1", "content": "INV-7 was paid twice"},
    ]
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o", messages=messages, tools=tools
    )
    server.flush()
    fragment = f"#/exchange/{raw.headers['x-distill-request-id']}"
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(f"{server.url}/ui/")
        page.evaluate("t => sessionStorage.setItem('distill-admin-token', t)", TOKEN)
        page.goto(f"{server.url}/ui/{fragment}")
        page.wait_for_function(RENDERED, arg=fragment)
        request = page.locator("#h-request").locator("xpath=..").inner_text()
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "exchange-agent-turn.png"), full_page=True)
        browser.close()
    assert errors == []
    assert "Tools offered: lookup" in request
    assert 'f({"q": 1})' in request and "INV-7 was paid twice" in request
    assert "result of c1" in request
