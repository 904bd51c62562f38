"""What the stand-in teacher answers, beyond the label: tool calls, refusals and logprobs.

A provider-like reply for chat and legacy completions, streamed or not, in OpenAI's shapes:

- a request with function `tools` (and `tool_choice` not "none") and no tool result yet gets
  tool calls: one per tool, up to two when `parallel_tool_calls` is not false (arguments
  filled from each tool's JSON schema); once a tool result is in the conversation the answer
  is "Tool result: <the last result>";
- a model name ending in `-refuse` gets a refusal (`message.refusal`, `delta.refusal`);
- `logprobs` (chat: true, with `top_logprobs`; completions: an int) gets deterministic
  per-token logprobs, sliced per chunk when streamed.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import orjson

REFUSAL = "I'm sorry, I can't help with that request."
TOOL_RESULT = "Tool result: "
MAX_PARALLEL_CALLS = 2


def split_tokens(text: str) -> list[str]:
    """A deterministic stand-in for a tokenizer: about four characters a token."""
    return [text[i : i + 4] for i in range(0, len(text), 4)] or [""]


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # JSON text


@dataclass
class Reply:
    """One answer as tokens, before it is shaped for an endpoint."""

    pieces: list[str]  # text tokens (the refusal's, when refusing)
    finish: str
    refusal: bool = False
    calls: list[ToolCall] = field(default_factory=list)
    logprobs: bool = False
    top: int = 0

    @property
    def text(self) -> str:
        return "".join(self.pieces)

    @property
    def completion_tokens(self) -> int:
        args = sum(len(split_tokens(c.arguments)) for c in self.calls)
        return args if self.calls else len(self.pieces)


def _argument(schema: Any, prompt: str) -> Any:
    kind = schema.get("type") if isinstance(schema, dict) else None
    if isinstance(schema, dict) and isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    if kind in ("integer", "number"):
        return len(prompt.split())
    if kind == "boolean":
        return True
    if kind == "array":
        return []
    if kind == "object":
        return {}
    return prompt[:64]


def arguments_for(parameters: Any, prompt: str) -> str:
    """Arguments that satisfy a function's JSON schema, filled from the prompt."""
    properties = parameters.get("properties") if isinstance(parameters, dict) else None
    if not isinstance(properties, dict):
        return "{}"
    values = {name: _argument(schema, prompt) for name, schema in properties.items()}
    return orjson.dumps(values).decode()


def _function(tool: Any) -> dict[str, Any] | None:
    """A function tool's {name, parameters}, from chat's nested or the Responses flat shape."""
    if not isinstance(tool, dict) or tool.get("type") != "function":
        return None
    nested = tool.get("function")
    spec: dict[str, Any] = nested if isinstance(nested, dict) else tool
    return spec if isinstance(spec.get("name"), str) else None


def tool_calls(body: dict[str, Any], prompt: str, has_result: bool) -> list[ToolCall]:
    """The calls to make now: none once a tool answered or when tools are off."""
    choice = body.get("tool_choice")
    if has_result or choice == "none" or not isinstance(body.get("tools"), list):
        return []
    functions = [f for f in map(_function, body["tools"]) if f is not None]
    forced = None
    if isinstance(choice, dict):
        forced = (choice.get("function") or {}).get("name") or choice.get("name")
    if forced:
        functions = [f for f in functions if f["name"] == forced]
    limit = MAX_PARALLEL_CALLS if body.get("parallel_tool_calls") is not False else 1
    return [
        ToolCall(
            id="call_" + _digest(prompt, f["name"], str(i))[:24],
            name=f["name"],
            arguments=arguments_for(f.get("parameters"), prompt),
        )
        for i, f in enumerate(functions[:limit])
    ]


def plan(
    body: dict[str, Any],
    answer: str,
    prompt: str,
    *,
    refuse: bool,
    tool_result: str | None,
    logprobs: bool,
    top: int,
) -> Reply:
    """Decide the reply: tool calls, a refusal, or the answer (cut at the token limit)."""
    calls = [] if refuse else tool_calls(body, prompt, tool_result is not None)
    if tool_result is not None:
        answer = TOOL_RESULT + tool_result
    pieces = split_tokens(REFUSAL if refuse else answer)
    finish = "tool_calls" if calls else "stop"
    limit = body.get("max_tokens", body.get("max_completion_tokens", body.get("max_output_tokens")))
    if not calls and isinstance(limit, int) and limit < len(pieces):
        pieces, finish = pieces[:limit], "length"
    return Reply(pieces, finish, refuse, calls, logprobs, top)


# -- logprobs -----------------------------------------------------------------------------------


def token_logprob(token: str, rank: int = 0) -> float:
    """A deterministic log probability for a token (lower for each alternative rank)."""
    return -round(int(_digest(token)[:4], 16) / 65535 * 0.5 + rank, 4)


def chat_entries(tokens: list[str], top: int) -> list[dict[str, Any]]:
    """Chat/Responses `logprobs` entries: token, logprob, bytes and the top alternatives."""
    out = []
    for token in tokens:
        alternatives = [token] + [f"{token}~{k}" for k in range(1, top)]
        out.append(
            {
                "token": token,
                "logprob": token_logprob(token),
                "bytes": list(token.encode()),
                "top_logprobs": [
                    {"token": t, "logprob": token_logprob(token, k), "bytes": list(t.encode())}
                    for k, t in enumerate(alternatives[:top])
                ],
            }
        )
    return out


def legacy_logprobs(tokens: list[str], top: int, offset: int = 0) -> dict[str, Any]:
    """Legacy completions' parallel lists; `offset` is where the first token starts."""
    offsets, position = [], offset
    for token in tokens:
        offsets.append(position)
        position += len(token)
    return {
        "tokens": tokens,
        "token_logprobs": [token_logprob(t) for t in tokens],
        "top_logprobs": [
            {t if k == 0 else f"{t}~{k}": token_logprob(t, k) for k in range(max(top, 1))}
            for t in tokens
        ],
        "text_offset": offsets,
    }


def _chat_logprobs(reply: Reply, tokens: list[str]) -> dict[str, Any]:
    entries = chat_entries(tokens, reply.top)
    return {
        "content": None if reply.refusal else entries,
        "refusal": entries if reply.refusal else None,
    }


# -- chat and legacy completions ----------------------------------------------------------------


def _call_json(call: ToolCall) -> dict[str, Any]:
    return {
        "id": call.id,
        "type": "function",
        "function": {"name": call.name, "arguments": call.arguments},
    }


def choice(reply: Reply, chat: bool) -> dict[str, Any]:
    """The non-streamed `choices[0]`."""
    item: dict[str, Any] = {"index": 0, "finish_reason": reply.finish, "logprobs": None}
    tokens = [] if reply.calls else reply.pieces
    if not chat:
        item["text"] = reply.text
        if reply.logprobs:
            item["logprobs"] = legacy_logprobs(tokens, reply.top)
        return item
    message: dict[str, Any] = {"role": "assistant", "content": None, "refusal": None}
    if reply.calls:
        message["tool_calls"] = [_call_json(c) for c in reply.calls]
    elif reply.refusal:
        message["refusal"] = reply.text
    else:
        message["content"] = reply.text
    item["message"] = message
    if reply.logprobs and tokens:
        item["logprobs"] = _chat_logprobs(reply, tokens)
    return item


def _argument_chunks(calls: list[ToolCall]) -> list[dict[str, Any]]:
    """Each call opened (id, name), then argument pieces interleaved across calls by index."""
    deltas: list[dict[str, Any]] = [
        {
            "tool_calls": [
                {
                    "index": i,
                    "id": c.id,
                    "type": "function",
                    "function": {"name": c.name, "arguments": ""},
                }
            ]
        }
        for i, c in enumerate(calls)
    ]
    pieces = [split_tokens(c.arguments) for c in calls]
    for step in range(max(len(p) for p in pieces)):
        for i, parts in enumerate(pieces):
            if step < len(parts):
                call = {"index": i, "function": {"arguments": parts[step]}}
                deltas.append({"tool_calls": [call]})
    return deltas


def chunk_choices(reply: Reply, chat: bool) -> list[dict[str, Any]]:
    """The streamed `choices[0]` of every chunk, the last one carrying the finish reason."""
    if not chat:
        offsets = legacy_logprobs(reply.pieces, reply.top)["text_offset"]
        out = []
        for piece, offset in zip(reply.pieces, offsets, strict=True):
            item: dict[str, Any] = {
                "index": 0,
                "text": piece,
                "finish_reason": None,
                "logprobs": None,
            }
            if reply.logprobs:
                item["logprobs"] = legacy_logprobs([piece], reply.top, offset)
            out.append(item)
        return [*out, {"index": 0, "text": "", "finish_reason": reply.finish, "logprobs": None}]
    first: dict[str, Any] = {"role": "assistant", "content": "", "refusal": None}
    if reply.calls:
        first["content"] = None
        deltas = _argument_chunks(reply.calls)
    else:
        key = "refusal" if reply.refusal else "content"
        deltas = [{key: piece} for piece in reply.pieces]
    out = [{"index": 0, "delta": first, "finish_reason": None, "logprobs": None}]
    for delta in deltas:
        item = {"index": 0, "delta": delta, "finish_reason": None, "logprobs": None}
        if reply.logprobs and not reply.calls:
            item["logprobs"] = _chat_logprobs(reply, list(delta.values()))
        out.append(item)
    return [*out, {"index": 0, "delta": {}, "finish_reason": reply.finish, "logprobs": None}]
