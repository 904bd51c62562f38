"""Every endpoint's exchange read as one chat conversation (gateway/conversation.py, pure)."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.conversation import NotAConversation, chat_tool, conversation

CALL = {"type": "function_call", "call_id": "c1", "name": "f", "arguments": '{"q": 1}'}
CHAT_CALL = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"q": 1}'}}
TOOL = {"type": "function", "name": "f", "parameters": {"type": "object"}, "strict": True}
CHAT_TOOL = {
    "type": "function",
    "function": {"name": "f", "parameters": {"type": "object"}, "strict": True},
}


def message(text: str) -> dict[str, Any]:
    part = {"type": "output_text", "text": text, "annotations": []}
    return {"type": "message", "role": "assistant", "content": [part]}


def reply(*items: dict[str, Any]) -> dict[str, Any]:
    return {"object": "response", "status": "completed", "output": list(items)}


def chat_reply(**message: Any) -> dict[str, Any]:
    return {"choices": [{"message": {"role": "assistant", **message}}]}


@pytest.mark.parametrize(
    ("endpoint", "request_body", "response", "messages", "answer"),
    [
        (
            "responses",
            {"input": "hi", "instructions": "Be brief."},
            reply(message("a"), message("b")),
            [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}],
            {"role": "assistant", "content": "ab"},
        ),
        (
            "responses",
            {"input": [{"role": "user", "content": [{"type": "input_text", "text": "hi"}]}]},
            reply(CALL, {**CALL, "call_id": "c2"}),
            [{"role": "user", "content": "hi"}],
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [CHAT_CALL, {**CHAT_CALL, "id": "c2"}],
            },
        ),
        (  # an agent's second turn: calls share one assistant turn, outputs are tool turns
            "responses",
            {
                "input": [
                    {"role": "user", "content": "hi"},
                    {"type": "reasoning", "summary": []},
                    CALL,
                    {**CALL, "call_id": "c2"},
                    {"type": "function_call_output", "call_id": "c1", "output": "r1"},
                    {"type": "function_call_output", "call_id": "c2", "output": "r2"},
                ]
            },
            reply(message("done")),
            [
                {"role": "user", "content": "hi"},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [CHAT_CALL, {**CHAT_CALL, "id": "c2"}],
                },
                {"role": "tool", "tool_call_id": "c1", "content": "r1"},
                {"role": "tool", "tool_call_id": "c2", "content": "r2"},
            ],
            {"role": "assistant", "content": "done"},
        ),
        (
            "responses",
            {"input": "hi"},
            reply({"type": "message", "content": [{"type": "refusal", "refusal": "no"}]}),
            [{"role": "user", "content": "hi"}],
            {"role": "assistant", "content": None, "refusal": "no"},
        ),
        (
            "chat",
            {"messages": [{"role": "user", "content": "hi"}]},
            chat_reply(content=None, tool_calls=[CHAT_CALL], annotations=[]),
            [{"role": "user", "content": "hi"}],
            {"role": "assistant", "content": None, "tool_calls": [CHAT_CALL]},
        ),
        (
            "completions",
            {"prompt": ["hi"]},
            {"choices": [{"text": "yo"}]},
            [{"role": "user", "content": "hi"}],
            {"role": "assistant", "content": "yo"},
        ),
    ],
)
def test_conversation(
    endpoint: str,
    request_body: dict[str, Any],
    response: dict[str, Any],
    messages: list[dict[str, Any]],
    answer: dict[str, Any],
) -> None:
    read = conversation(endpoint, request_body, response)
    assert read.messages == messages
    assert read.answer == answer


@pytest.mark.parametrize(
    ("request_body", "tools", "response_format"),
    [
        ({"input": "x", "tools": [TOOL]}, [CHAT_TOOL], None),
        ({"input": "x", "tools": [CHAT_TOOL]}, [CHAT_TOOL], None),
        (
            {"input": "x", "text": {"format": {"type": "json_schema", "name": "t", "schema": {}}}},
            None,
            {"type": "json_schema", "json_schema": {"name": "t", "schema": {}}},
        ),
        ({"input": "x", "text": {"format": {"type": "text"}}}, None, None),
        (
            {"input": "x", "text": {"format": {"type": "json_object"}}},
            None,
            {"type": "json_object"},
        ),
    ],
)
def test_tools_and_format_in_chat_shape(
    request_body: dict[str, Any], tools: Any, response_format: Any
) -> None:
    read = conversation("responses", request_body, reply(message("a")))
    assert (read.tools, read.response_format) == (tools, response_format)


@pytest.mark.parametrize(
    ("request_body", "response", "why"),
    [
        ({"input": "x", "previous_response_id": "r"}, reply(), "previous_response_id"),
        ({"input": "x", "tools": [{"type": "web_search"}]}, reply(), "built-in tools"),
        ({"input": [{"type": "image_generation_call"}]}, reply(), "image_generation_call"),
        ({"input": [{"role": "user", "content": [{"type": "input_image"}]}]}, reply(), "text"),
        ({}, reply(), "no input"),
        ({"input": "x"}, {"status": "completed"}, "no output"),
        ({"input": "x"}, [], "not a JSON object"),
    ],
)
def test_what_is_not_a_conversation(request_body: Any, response: Any, why: str) -> None:
    with pytest.raises(NotAConversation, match=why):
        conversation("responses", request_body, response)


def test_chat_tool_leaves_other_tools_out() -> None:
    assert chat_tool({"type": "web_search"}) is None
    assert chat_tool(TOOL) == CHAT_TOOL
