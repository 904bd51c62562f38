"""SSE splitting and stream assembly, on hand-written chunk sequences."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.streams import SSESplitter, StreamAssembler, event_data


@pytest.mark.parametrize(
    ("chunks", "events"),
    [
        ([b"data: a\n\n"], [b"data: a\n\n"]),
        ([b"data: a\n", b"\ndata: b\n\n"], [b"data: a\n\n", b"data: b\n\n"]),
        ([b"da", b"ta: a\n\nda", b"ta: b\n\n"], [b"data: a\n\n", b"data: b\n\n"]),
        ([b"data: a\r\n\r\n"], [b"data: a\n\n"]),
        ([b": keep-alive\n\ndata: x\n\n"], [b": keep-alive\n\n", b"data: x\n\n"]),
        ([b"data: partial"], []),
    ],
)
def test_splitter(chunks: list[bytes], events: list[bytes]) -> None:
    splitter = SSESplitter()
    out = [e for c in chunks for e in splitter.feed(c)]
    assert out == events


@pytest.mark.parametrize(
    ("event", "data"),
    [
        (b"data: {}\n\n", b"{}"),
        (b"data:{}\n\n", b"{}"),
        (b": comment\n\n", None),
        (b"event: x\ndata: 1\ndata: 2\n\n", b"1\n2"),
        (b"data: [DONE]\n\n", b"[DONE]"),
    ],
)
def test_event_data(event: bytes, data: bytes | None) -> None:
    assert event_data(event) == data


def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "id": "c1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        **extra,
    }


def test_chat_content_finish_and_usage_are_assembled() -> None:
    asm = StreamAssembler("chat")
    for payload in [
        chunk({"role": "assistant", "content": ""}),
        chunk({"content": "bill"}),
        chunk({"content": "ing"}),
        chunk({}, "stop"),
        {
            "id": "c1",
            "object": "chat.completion.chunk",
            "choices": [],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
        },
    ]:
        asm.add(payload)
    response = asm.response()
    assert response["choices"] == [
        {
            "index": 0,
            "finish_reason": "stop",
            "message": {"role": "assistant", "content": "billing"},
        }
    ]
    assert response["usage"]["completion_tokens"] == 2
    assert response["object"] == "chat.completion" and response["id"] == "c1"
    assert asm.finish_reason == "stop"


def test_tool_calls_are_joined_by_index() -> None:
    asm = StreamAssembler("chat")
    asm.add(
        chunk(
            {
                "role": "assistant",
                "tool_calls": [
                    {
                        "index": 0,
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "lookup", "arguments": ""},
                    }
                ],
            }
        )
    )
    asm.add(chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"id":'}}]}))
    asm.add(
        chunk(
            {
                "tool_calls": [
                    {"index": 1, "id": "call_2", "function": {"name": "other", "arguments": "{}"}}
                ]
            }
        )
    )
    asm.add(chunk({"tool_calls": [{"index": 0, "function": {"arguments": " 7}"}}]}))
    asm.add(chunk({}, "tool_calls"))
    message = asm.response()["choices"][0]["message"]
    assert message["content"] is None
    assert message["tool_calls"] == [
        {
            "id": "call_1",
            "type": "function",
            "function": {"name": "lookup", "arguments": '{"id": 7}'},
        },
        {"id": "call_2", "type": "function", "function": {"name": "other", "arguments": "{}"}},
    ]
    assert asm.finish_reason == "tool_calls"


def test_completions_text_and_several_choices() -> None:
    asm = StreamAssembler("completions")
    for index, text in [(0, "a"), (1, "x"), (0, "b"), (1, "y")]:
        asm.add(
            {
                "id": "t",
                "object": "text_completion",
                "choices": [{"index": index, "text": text, "finish_reason": None}],
            }
        )
    asm.add({"id": "t", "choices": [{"index": 0, "text": "", "finish_reason": "length"}]})
    choices = asm.response()["choices"]
    assert [c["text"] for c in choices] == ["ab", "xy"]
    assert choices[0]["finish_reason"] == "length" and choices[1]["finish_reason"] is None


def test_error_event_is_kept() -> None:
    asm = StreamAssembler("chat")
    asm.add({"error": {"message": "boom", "type": "server_error"}})
    assert asm.error == {"message": "boom", "type": "server_error"}
