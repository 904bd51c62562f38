"""The Responses-API stream assembler (pure): the terminal event's response is the row; a
stream cut before it is rebuilt from its item and delta events."""

from __future__ import annotations

from typing import Any

import pytest

from distill_demo.teacher import replies, responses_api
from gateway.responses import ResponsesAssembler, finish_reason, output_text, token_usage

BODY: dict[str, Any] = {"model": "m", "input": "Where is my invoice?"}
TOOL = {"type": "function", "name": "f", "parameters": {"type": "object", "properties": {}}}


def events(body: dict[str, Any], *, refuse: bool = False, limit: int | None = None) -> list[Any]:
    """The stand-in teacher's event stream for a body (the shapes openai-python types)."""
    reply = replies.plan(
        {**body, "max_output_tokens": limit} if limit else body,
        "billing and refunds",
        "Where is my invoice?",
        refuse=refuse,
        tool_result=None,
        logprobs=True,
        top=1,
    )
    response = responses_api.response_object(body, reply, "x", 0.0, 5)
    return responses_api.events(response, reply)


CASES = {
    "text": events(BODY),
    "refusal": events(BODY, refuse=True),
    "tools": events({**BODY, "tools": [TOOL, {**TOOL, "name": "g"}]}),
    "incomplete": events(BODY, limit=2),
}


@pytest.mark.parametrize("case", CASES)
def test_terminal_event_is_the_row(case: str) -> None:
    assembler = ResponsesAssembler()
    for event in CASES[case]:
        assembler.add(event)
    assert assembler.complete and assembler.error is None
    assert assembler.response() == CASES[case][-1]["response"]


@pytest.mark.parametrize("case", CASES)
def test_cut_stream_is_rebuilt_from_deltas(case: str) -> None:
    stream = CASES[case]
    final = stream[-1]["response"]
    assembler = ResponsesAssembler()
    for event in stream:  # everything but the events that carry finished items
        if not event["type"].endswith((".done", "completed", "incomplete")):
            assembler.add(event)
    assert not assembler.complete
    rebuilt = assembler.response()
    assert rebuilt["status"] == "incomplete" and assembler.usage is None

    def essence(item: dict[str, Any]) -> Any:
        parts = [
            {k: v for k, v in p.items() if k != "annotations"} for p in item.get("content", [])
        ]
        return item["type"], item.get("arguments"), parts

    assert [essence(i) for i in rebuilt["output"]] == [essence(i) for i in final["output"]]


def test_error_event_ends_the_stream() -> None:
    assembler = ResponsesAssembler()
    assembler.add(
        {"type": "error", "code": "server_error", "message": "boom", "sequence_number": 3}
    )
    assert assembler.complete and assembler.error == {"code": "server_error", "message": "boom"}


@pytest.mark.parametrize(
    ("response", "reason", "text"),
    [
        (CASES["text"][-1]["response"], "stop", "billing and refunds"),
        (CASES["tools"][-1]["response"], "tool_calls", None),
        (CASES["incomplete"][-1]["response"], "length", "billing "),
        (
            {"status": "incomplete", "incomplete_details": {"reason": "content_filter"}},
            "content_filter",
            None,
        ),
        ({"status": "in_progress"}, None, None),
        ({"status": "failed", "output": []}, None, None),
    ],
)
def test_finish_reason_and_text(
    response: dict[str, Any], reason: str | None, text: str | None
) -> None:
    assert finish_reason(response) == reason
    assert output_text(response) == text


def test_token_usage_speaks_both_apis() -> None:
    assert token_usage({"input_tokens": 3, "output_tokens": 4})["prompt_tokens"] == 3
    assert token_usage({"prompt_tokens": 1}) == {"prompt_tokens": 1}
    assert token_usage(None) == {}
