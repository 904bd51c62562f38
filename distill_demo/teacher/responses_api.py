"""The stand-in teacher's `POST /v1/responses`: the response object and its event stream.

Shapes and event names follow openai-python (`openai/types/responses/`): a message item with
`output_text` (or `refusal`) parts, `function_call` items, and when streamed `response.created`,
`response.in_progress`, item/part added, text/refusal/arguments deltas and dones, item/part
done, then `response.completed` (or `response.incomplete`) carrying the whole response. Each
event is sent with its `event:` line and a `sequence_number`; no `[DONE]` follows.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson

from distill_demo.teacher.replies import Reply, chat_entries, split_tokens


def input_messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    """`instructions` and `input` as simple chat turns (tool outputs as `tool` turns)."""
    messages: list[dict[str, Any]] = []
    if isinstance(body.get("instructions"), str):
        messages.append({"role": "system", "content": body["instructions"]})
    items = body.get("input")
    if isinstance(items, str):
        return [*messages, {"role": "user", "content": items}]
    for item in items if isinstance(items, list) else ():
        if not isinstance(item, dict):
            continue
        kind = item.get("type", "message")
        if kind == "function_call_output":
            messages.append({"role": "tool", "content": str(item.get("output"))})
        elif kind == "message":
            content = item.get("content")
            if isinstance(content, list):
                content = " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
            messages.append({"role": item.get("role"), "content": content})
    return messages


def wants_json(body: dict[str, Any]) -> bool:
    text = body.get("text")
    fmt = text.get("format") if isinstance(text, dict) else None
    return isinstance(fmt, dict) and fmt.get("type") in ("json_object", "json_schema")


def wants_logprobs(body: dict[str, Any]) -> bool:
    include = body.get("include")
    return isinstance(include, list) and "message.output_text.logprobs" in include


def _items(reply: Reply, ident: str) -> list[dict[str, Any]]:
    if reply.calls:
        return [
            {
                "type": "function_call",
                "id": f"fc_{ident}_{i}",
                "call_id": c.id,
                "name": c.name,
                "arguments": c.arguments,
                "status": "completed",
            }
            for i, c in enumerate(reply.calls)
        ]
    if reply.refusal:
        part: dict[str, Any] = {"type": "refusal", "refusal": reply.text}
    else:
        part = {"type": "output_text", "text": reply.text, "annotations": []}
        if reply.logprobs:
            part["logprobs"] = chat_entries(reply.pieces, reply.top)
    message = {
        "type": "message",
        "id": f"msg_{ident}",
        "status": "completed",
        "role": "assistant",
        "content": [part],
    }
    return [message]


def response_object(
    body: dict[str, Any], reply: Reply, ident: str, created: float, prompt_tokens: int
) -> dict[str, Any]:
    """The non-streamed response (also what `response.completed` carries)."""
    output_tokens = reply.completion_tokens
    complete = reply.finish != "length"
    return {
        "id": f"resp_{ident}",
        "object": "response",
        "created_at": created,
        "status": "completed" if complete else "incomplete",
        "error": None,
        "incomplete_details": None if complete else {"reason": "max_output_tokens"},
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "model": body["model"],
        "output": _items(reply, ident),
        "parallel_tool_calls": body.get("parallel_tool_calls", True),
        "previous_response_id": body.get("previous_response_id"),
        "temperature": body.get("temperature", 1.0),
        "text": body.get("text") or {"format": {"type": "text"}},
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": body.get("tools") or [],
        "top_p": body.get("top_p", 1.0),
        "metadata": body.get("metadata") or {},
        "usage": {
            "input_tokens": prompt_tokens,
            "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
            "output_tokens": output_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": prompt_tokens + output_tokens,
        },
    }


def _item_events(index: int, item: dict[str, Any], reply: Reply) -> list[dict[str, Any]]:
    """The events that stream one finished output item, from `added` to `done`."""
    events: list[dict[str, Any]] = []
    where = {"item_id": item["id"], "output_index": index}
    if item["type"] == "function_call":
        opened = {**item, "arguments": "", "status": "in_progress"}
        events.append({"type": "response.output_item.added", "output_index": index, "item": opened})
        for piece in split_tokens(item["arguments"]):
            events.append(
                {"type": "response.function_call_arguments.delta", **where, "delta": piece}
            )
        done = {"type": "response.function_call_arguments.done", **where}
        events.append({**done, "name": item["name"], "arguments": item["arguments"]})
    else:
        part = item["content"][0]
        opened = {**item, "content": [], "status": "in_progress"}
        events.append({"type": "response.output_item.added", "output_index": index, "item": opened})
        at = {**where, "content_index": 0}
        empty = (
            {"type": "refusal", "refusal": ""}
            if reply.refusal
            else {"type": "output_text", "text": "", "annotations": []}
        )
        events.append({"type": "response.content_part.added", **at, "part": empty})
        kind = "refusal" if reply.refusal else "output_text"
        for piece in reply.pieces:
            delta: dict[str, Any] = {"type": f"response.{kind}.delta", **at, "delta": piece}
            if not reply.refusal:
                delta["logprobs"] = chat_entries([piece], reply.top) if reply.logprobs else []
            events.append(delta)
        if reply.refusal:
            events.append({"type": "response.refusal.done", **at, "refusal": reply.text})
        else:
            text_done = {"type": "response.output_text.done", **at, "text": reply.text}
            events.append({**text_done, "logprobs": part.get("logprobs") or []})
        events.append({"type": "response.content_part.done", **at, "part": part})
    events.append({"type": "response.output_item.done", "output_index": index, "item": item})
    return events


def events(response: dict[str, Any], reply: Reply) -> list[dict[str, Any]]:
    """The whole event stream of a response, numbered."""
    running = {**response, "status": "in_progress", "output": [], "usage": None}
    running["incomplete_details"] = None
    out: list[dict[str, Any]] = [
        {"type": "response.created", "response": running},
        {"type": "response.in_progress", "response": running},
    ]
    for index, item in enumerate(response["output"]):
        out.extend(_item_events(index, item, reply))
    terminal = "response.completed" if response["status"] == "completed" else "response.incomplete"
    out.append({"type": terminal, "response": response})
    return [{**event, "sequence_number": n} for n, event in enumerate(out)]


async def stream(
    items: list[dict[str, Any]], *, drip_s: float = 0.0, cut: bool = False
) -> AsyncIterator[bytes]:
    """Send the events as SSE (`event:` and `data:` lines); `cut` drops the connection midway."""
    for event in items:
        if drip_s:
            await asyncio.sleep(drip_s)
        yield b"event: " + event["type"].encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n"
        if cut and event["type"].endswith(".delta"):
            raise ConnectionResetError("simulated: stream cut mid-way")
