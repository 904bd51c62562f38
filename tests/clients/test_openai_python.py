"""openai-python through the gateway, each call compared with the same call made directly.

Sync and async clients, the stream helpers, `.parse` structured output and the Responses API
(create, stream, parse, a function-call round trip), against the stand-in teacher; each
exchange is then found in the log (by the `metadata` the call carries) as it was answered.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import openai
import orjson
import pytest
from pydantic import BaseModel

from tests.fixtures.servers import GatewayServer, TeacherServer
from tests.gateway.test_proxy import rows

# The plain teacher, and one that compresses its answers (the model suffix picks the encoding);
# every answer carries a provider's headers (x-request-id, x-ratelimit-*).
MODELS = ["gpt-4o", "gpt-4o-gzip"]
TICKET = "Hi, I was charged twice for my invoice. This is urgent."
MESSAGES: list[Any] = [{"role": "user", "content": TICKET}]
TOOL = {
    "type": "function",
    "name": "lookup_invoice",
    "description": "Look an invoice up",
    "parameters": {
        "type": "object",
        "properties": {"query": {"type": "string"}},
        "required": ["query"],
        "additionalProperties": False,
    },
    "strict": True,
}


class Ticket(BaseModel):
    category: str
    priority: str


def clients(gateway: GatewayServer, teacher: TeacherServer) -> tuple[openai.OpenAI, openai.OpenAI]:
    def make(base_url: str) -> openai.OpenAI:
        return openai.OpenAI(base_url=base_url, api_key="sk-test", max_retries=0)

    return make(gateway.base_url), make(teacher.base_url)


def same(value: Any) -> Any:
    """An SDK object without the clock fields two calls a second apart disagree on."""
    data = value.model_dump(warnings=False) if isinstance(value, BaseModel) else value
    if isinstance(data, dict):
        return {k: same(v) for k, v in data.items() if k not in ("created", "created_at")}
    if isinstance(data, list):
        return [same(v) for v in data]
    return data


def tagged() -> dict[str, str]:
    return {"case": uuid.uuid4().hex}


def logged(gateway: GatewayServer, metadata: dict[str, str]) -> dict[str, Any]:
    (row,) = rows(gateway, f"json_extract_string(tags, '$.case') = '{metadata['case']}'")
    assert row["status"] == 200 and row["error"] is None
    return row


@pytest.mark.parametrize("model", MODELS)
def test_chat_sync_create_and_stream_helper(
    shared_gateway: GatewayServer, teacher_server: TeacherServer, model: str
) -> None:
    via, direct = clients(shared_gateway, teacher_server)
    meta = tagged()
    got = via.chat.completions.create(model=model, messages=MESSAGES, metadata=meta)
    assert same(got) == same(
        direct.chat.completions.create(model=model, messages=MESSAGES, metadata=meta)
    )
    assert got.choices[0].message.content == "billing"
    assert orjson.loads(logged(shared_gateway, meta)["response"])["id"] == got.id
    raw = via.chat.completions.with_raw_response.create(model=model, messages=MESSAGES)
    plain = direct.chat.completions.with_raw_response.create(model=model, messages=MESSAGES)
    assert raw.request_id is not None and raw.request_id != raw.headers["x-distill-request-id"]
    limits = [k for k in plain.headers if k.startswith("x-ratelimit-")]
    assert limits and all(raw.headers[k] == plain.headers[k] for k in limits)

    streamed = tagged()
    with via.chat.completions.stream(model=model, messages=MESSAGES, metadata=streamed) as s:
        final = s.get_final_completion()
    with direct.chat.completions.stream(model=model, messages=MESSAGES, metadata=streamed) as s:
        expected = s.get_final_completion()
    assert same(final) == same(expected)
    row = logged(shared_gateway, streamed)
    assert row["stream"] is True
    assert orjson.loads(row["response"])["choices"][0]["message"]["content"] == "billing"


@pytest.mark.parametrize("model", ["gpt-4o-zstd"])
def test_chat_parse_structured_output(
    shared_gateway: GatewayServer, teacher_server: TeacherServer, model: str
) -> None:
    via, direct = clients(shared_gateway, teacher_server)
    got = via.chat.completions.parse(model=model, messages=MESSAGES, response_format=Ticket)
    expected = direct.chat.completions.parse(model=model, messages=MESSAGES, response_format=Ticket)
    assert got.choices[0].message.parsed == Ticket(category="billing", priority="high")
    assert same(got) == same(expected)


@pytest.mark.parametrize("model", ["gpt-4o-br"])
def test_chat_async_create_and_stream(
    shared_gateway: GatewayServer, teacher_server: TeacherServer, model: str
) -> None:
    async def run(base_url: str) -> tuple[Any, str, list[Any]]:
        client = openai.AsyncOpenAI(base_url=base_url, api_key="sk-test", max_retries=0)
        answer = await client.chat.completions.create(model=model, messages=MESSAGES)
        stream = await client.chat.completions.create(
            model=model, messages=MESSAGES, stream=True, logprobs=True, top_logprobs=2
        )
        chunks = [chunk async for chunk in stream]
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        await client.close()
        return answer, text, chunks

    via = asyncio.run(run(shared_gateway.base_url))
    direct = asyncio.run(run(teacher_server.base_url))
    assert same(via[0]) == same(direct[0])
    assert via[1] == direct[1] == "billing"
    assert [same(c) for c in via[2]] == [same(c) for c in direct[2]]  # chunk for chunk


@pytest.mark.parametrize("model", MODELS)
def test_responses_create_stream_and_parse(
    shared_gateway: GatewayServer, teacher_server: TeacherServer, model: str
) -> None:
    via, direct = clients(shared_gateway, teacher_server)
    meta = tagged()
    got = via.responses.create(model=model, input=TICKET, metadata=meta)
    assert same(got) == same(direct.responses.create(model=model, input=TICKET, metadata=meta))
    assert got.output_text == "billing" and got.usage is not None
    row = logged(shared_gateway, meta)
    assert (row["endpoint"], row["finish_reason"]) == ("responses", "stop")
    assert row["prompt_tokens"] == got.usage.input_tokens
    assert row["completion_tokens"] == got.usage.output_tokens

    streamed = tagged()
    with via.responses.stream(model=model, input=TICKET, metadata=streamed) as s:
        kinds = [event.type for event in s]
        final = s.get_final_response()
    with direct.responses.stream(model=model, input=TICKET, metadata=streamed) as s:
        expected = s.get_final_response()
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    assert "response.output_text.delta" in kinds
    assert same(final) == same(expected) and final.output_text == "billing"
    row = logged(shared_gateway, streamed)
    (item,) = orjson.loads(row["response"])["output"]
    assert (item["id"], item["content"][0]["text"]) == (final.output[0].id, "billing")

    parsed = via.responses.parse(model=model, input=TICKET, text_format=Ticket)
    assert parsed.output_parsed == Ticket(category="billing", priority="high")
    assert same(parsed) == same(
        direct.responses.parse(model=model, input=TICKET, text_format=Ticket)
    )


@pytest.mark.parametrize(("stream", "model"), [(False, "gpt-4o"), (True, "gpt-4o-deflate")])
def test_responses_function_call_round_trip(
    shared_gateway: GatewayServer, teacher_server: TeacherServer, stream: bool, model: str
) -> None:
    via, direct = clients(shared_gateway, teacher_server)

    def turn(client: openai.OpenAI, items: list[Any]) -> Any:
        if not stream:
            return client.responses.create(model=model, input=items, tools=[TOOL])
        with client.responses.stream(model=model, input=items, tools=[TOOL]) as s:
            return s.get_final_response()

    items: list[Any] = [{"role": "user", "content": TICKET}]
    first = turn(via, items)
    assert same(first) == same(turn(direct, items))
    (call,) = first.output
    assert call.type == "function_call" and call.name == "lookup_invoice"
    items += [call.model_dump(exclude_none=True)]
    items += [
        {"type": "function_call_output", "call_id": call.call_id, "output": "INV-7 paid twice"}
    ]
    second = turn(via, items)
    assert second.output_text == "Tool result: INV-7 paid twice"
    assert same(second) == same(turn(direct, items))
