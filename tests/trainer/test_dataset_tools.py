"""Agent traffic becomes training rows: tool calls, tool results and the Responses API.

The table-driven part reads logged bodies into examples (pure); the end-to-end part drives
real agent loops (openai-python, chat completions and the Responses API) through a gateway
against the stand-in teacher, then builds the dataset from the gateway's DuckDB file.
"""

from __future__ import annotations

import dataclasses
import json
import random
from pathlib import Path
from typing import Any

import openai
import pytest

from distill_demo.teacher.task import generate_ticket
from tests.fixtures.servers import GatewayFactory
from trainer.dataset.build import DatasetError, build_dataset
from trainer.dataset.config import BuildConfig
from trainer.dataset.pipeline import _row_problem
from trainer.dataset.records import CorruptRow, parse_row

CALL = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"q": "x"}'}}
FLAT_TOOL = {"type": "function", "name": "f", "parameters": {"type": "object"}}
TOOLS = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
FLAT_CALL = {"type": "function_call", "call_id": "c1", "name": "f", "arguments": '{"q": "x"}'}
USER = {"role": "user", "content": "Where is my invoice?"}


def chat(messages: list[Any], answer: dict[str, Any], **extra: Any) -> tuple[str, str]:
    response = {"choices": [{"message": {"role": "assistant", **answer}}]}
    return json.dumps({"messages": messages, **extra}), json.dumps(response)


@pytest.mark.parametrize(
    ("endpoint", "bodies", "turns", "tools"),
    [
        (  # the first agent turn: the answer is the call
            "chat",
            chat([USER], {"content": None, "tool_calls": [CALL]}, tools=TOOLS),
            [USER, {"role": "assistant", "content": None, "tool_calls": [CALL]}],
            TOOLS,
        ),
        (  # the second: the call and its result are input turns, the answer is text
            "chat",
            chat(
                [
                    USER,
                    {"role": "assistant", "content": None, "tool_calls": [CALL]},
                    {"role": "tool", "tool_call_id": "c1", "content": "INV-7"},
                ],
                {"content": "It is INV-7."},
                tools=TOOLS,
            ),
            [
                USER,
                {"role": "assistant", "content": None, "tool_calls": [CALL]},
                {"role": "tool", "tool_call_id": "c1", "content": "INV-7"},
                {"role": "assistant", "content": "It is INV-7."},
            ],
            TOOLS,
        ),
        (
            "responses",
            (
                json.dumps(
                    {
                        "input": [
                            {"role": "user", "content": USER["content"]},
                            FLAT_CALL,
                            {"type": "function_call_output", "call_id": "c1", "output": "INV-7"},
                        ],
                        "tools": [FLAT_TOOL],
                    }
                ),
                json.dumps(
                    {
                        "status": "completed",
                        "output": [
                            {
                                "type": "message",
                                "role": "assistant",
                                "content": [{"type": "output_text", "text": "It is INV-7."}],
                            }
                        ],
                    }
                ),
            ),
            [
                USER,
                {"role": "assistant", "content": None, "tool_calls": [CALL]},
                {"role": "tool", "tool_call_id": "c1", "content": "INV-7"},
                {"role": "assistant", "content": "It is INV-7."},
            ],
            TOOLS,
        ),
    ],
)  # fmt: skip
def test_tool_rows_parse_into_examples(
    endpoint: str, bodies: tuple[str, str], turns: list[dict[str, Any]], tools: Any
) -> None:
    example = parse_row("id", endpoint, bodies[0], bodies[1], None, None, None)
    assert example.turns() == turns
    assert list(example.tools) == tools


@pytest.mark.parametrize(
    ("bodies", "why"),
    [
        (chat([USER, {"role": "tool", "content": "x"}], {"content": "a"}), "no tool_call_id"),
        (chat([USER], {"content": None, "tool_calls": "f"}), "no assistant text"),
    ],
)
def test_tool_rows_that_cannot_be_examples(bodies: tuple[str, str], why: str) -> None:
    with pytest.raises(CorruptRow, match=why):
        parse_row("id", "chat", bodies[0], bodies[1], None, None, None)


def test_a_refusal_is_a_refusal_not_a_corrupt_row() -> None:
    """`message.refusal` (and a Responses refusal part) is counted by the refusal filter."""
    bodies = chat([USER], {"content": None, "refusal": "I can't help with that."})
    example = parse_row("id", "chat", bodies[0], bodies[1], None, None, None)
    assert (example.refused, example.answer) == (True, "I can't help with that.")
    assert _row_problem(example, BuildConfig(route="r")) == "refusal"
    kept = _row_problem(example, BuildConfig(route="r", disabled=frozenset({"refusal"})))
    assert kept is None


TOOL_SPEC = {
    "name": "lookup_invoice",
    "description": "Look an invoice up",
    "parameters": {
        "type": "object",
        "properties": {"query": {"type": "string"}},
        "required": ["query"],
    },
}


def agent_chat(client: openai.OpenAI, ticket: str, user: str) -> None:
    tools: Any = [{"type": "function", "function": TOOL_SPEC}]
    messages: list[Any] = [{"role": "user", "content": ticket}]
    first = client.chat.completions.create(
        model="gpt-4o", messages=messages, tools=tools, user=user
    )
    message = first.choices[0].message
    assert message.tool_calls
    messages.append(message.model_dump(exclude_none=True))
    for call in message.tool_calls:
        messages.append({"role": "tool", "tool_call_id": call.id, "content": f"result for {user}"})
    client.chat.completions.create(model="gpt-4o", messages=messages, tools=tools, user=user)


def agent_responses(client: openai.OpenAI, ticket: str, user: str) -> None:
    tools: Any = [{"type": "function", **TOOL_SPEC}]
    items: list[Any] = [{"role": "user", "content": ticket}]
    first = client.responses.create(
        model="gpt-4o", input=items, tools=tools, safety_identifier=user
    )
    (call,) = first.output
    assert call.type == "function_call"
    items += [call.model_dump(exclude_none=True)]
    items += [{"type": "function_call_output", "call_id": call.call_id, "output": f"for {user}"}]
    client.responses.create(model="gpt-4o", input=items, tools=tools, safety_identifier=user)


def log_agent_runs(client: openai.OpenAI, runs: int, seed: int) -> None:
    """Two-turn agent runs on support tickets, chat completions and Responses by turns."""
    rng = random.Random(seed)
    for i in range(runs):
        ticket, _ = generate_ticket(rng)
        (agent_chat if i % 2 else agent_responses)(client, f"{ticket} (order {i})", f"u{i}")


def test_agent_traffic_builds_a_dataset_with_tools(
    make_gateway: GatewayFactory, tmp_path: Path
) -> None:
    server = make_gateway()
    client = openai.OpenAI(base_url=server.base_url, api_key="sk-test", max_retries=0)
    log_agent_runs(client, 8, seed=7)
    # a continuation of a response stored upstream cannot be a row: counted as corrupt
    client.responses.create(model="gpt-4o", input="and then?", previous_response_id="resp_x")
    server.stop()  # the build reads the store file once the gateway has let it go

    config = BuildConfig(
        route="support-triage",
        min_rows=4,
        eval_fraction=0.25,
        disabled=frozenset({"near_duplicate"}),
    )
    warnings: list[str] = []
    out, card = build_dataset(server.store_path, config, tmp_path / "ds", warn=warnings.append)
    assert card["tool_rows"] == 16
    lines = [
        json.loads(line)
        for name in ("train.jsonl", "eval.jsonl")
        for line in (out / name).read_text().splitlines()
    ]
    assert len(lines) == 16  # both turns of all 8 agent runs
    assert all(line["tools"][0]["function"]["name"] == "lookup_invoice" for line in lines)
    calls = [line for line in lines if line["messages"][-1].get("tool_calls")]
    results = [line for line in lines if line["messages"][-2]["role"] == "tool"]
    assert len(calls) == len(results) == 8
    for line in results:
        *_, asked, result, answer = line["messages"]
        assert asked["tool_calls"][0]["id"] == result["tool_call_id"]
        assert answer["content"].startswith("Tool result: ")
    (corrupt,) = [w for w in warnings if "corrupt" in w]
    assert "previous_response_id" in corrupt
    assert any(w.startswith("16 rows are agent traffic") for w in warnings)

    # --text-only leaves the agent rows out; here nothing is left, and the error says why
    text_only = dataclasses.replace(config, text_only=True)
    with pytest.raises(DatasetError) as failed:
        build_dataset(server.store_path, text_only, tmp_path / "text", warn=warnings.append)
    assert failed.value.removed["tool_use"] == 16
