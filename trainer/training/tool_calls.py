"""The text convention for tools, tool calls and tool results when a chat template has none.

It is the Hermes convention (NousResearch Hermes 2 Pro, Qwen2.5), which vLLM's
`--tool-call-parser hermes` parses back into `tool_calls`:

- the tools: their chat-format schemas (`tool_schema`), one JSON object a line inside
  `<tools></tools>`, after TOOLS_INTRO, at the end of the system message (one is made when the
  conversation has none);
- an assistant call: `<tool_call>\\n{"name": ..., "arguments": {...}}\\n</tool_call>`, one block
  a call, after the turn's text if it has any;
- tool results: one user turn, `<tool_response>\\n...\\n</tool_response>` per result.

An answer that calls tools is compared (eval, the learning check) as `calls_key`: the calls'
names and parsed arguments as one JSON object, whatever format the template wrote them in.
Pure functions.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

# Short on purpose: a template without tools belongs to a model never tuned on any tool
# wording, and this text is in every prompt the student serves.
TOOLS_INTRO = "# Tools\n\nYou may call these functions:\n"
TOOLS_OUTRO = (
    '\n\nTo call one, answer <tool_call>\n{"name": <function-name>, "arguments": '
    "<args-json-object>}\n</tool_call>"
)

_CALL_BLOCK = re.compile(r"<tool_call>\s*(.*?)\s*</tool_call>", re.DOTALL)


def arguments_object(arguments: Any) -> Any:
    """A call's arguments as an object: OpenAI sends a JSON string, templates (and vLLM, before
    rendering) take the parsed object. A string that is not JSON stays as it is."""
    if isinstance(arguments, str):
        try:
            return json.loads(arguments)
        except json.JSONDecodeError:
            return arguments
    return arguments


def _call(call: dict[str, Any]) -> dict[str, Any]:
    nested = call.get("function")
    function: dict[str, Any] = nested if isinstance(nested, dict) else call
    return {
        "name": function.get("name"),
        "arguments": arguments_object(function.get("arguments", {})),
    }


def tool_schema(tool: dict[str, Any]) -> dict[str, Any]:
    """A tool as the student sees it: its name, description and parameters (those not null),
    in that order, whatever order and extra keys the request had. vLLM hands a template the
    request's tools re-serialised (`description: null` added, unknown keys dropped), so the
    tools block is written from these three keys alone, in training and in serving."""
    function = tool.get("function") or {}
    schema: dict[str, Any] = {"name": function.get("name")}
    for key in ("description", "parameters"):
        if function.get(key) is not None:
            schema[key] = function[key]
    return {"type": "function", "function": schema}


def tools_text(tools: Sequence[dict[str, Any]]) -> str:
    """The system-message block that describes `tools`."""
    lines = "\n".join(json.dumps(tool_schema(tool), ensure_ascii=False) for tool in tools)
    return f"{TOOLS_INTRO}<tools>\n{lines}\n</tools>{TOOLS_OUTRO}"


def calls_text(calls: Sequence[dict[str, Any]]) -> str:
    """An assistant turn's tool calls as the student writes them."""
    return "\n".join(
        f"<tool_call>\n{json.dumps(_call(c), ensure_ascii=False)}\n</tool_call>" for c in calls
    )


def results_text(contents: Sequence[str]) -> str:
    """Consecutive tool results as the text of one user turn."""
    return "\n".join(f"<tool_response>\n{c}\n</tool_response>" for c in contents)


def calls_key(calls: Sequence[dict[str, Any]]) -> str:
    """Tool calls as a comparable answer: names and arguments, key order and spacing aside."""
    return json.dumps({"tool_calls": [_call(c) for c in calls]}, sort_keys=True)


def _json_call(text: str) -> dict[str, Any] | None:
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return None
    if not isinstance(value, dict) or not isinstance(value.get("name"), str):
        return None
    # Llama 3.1's JSON tool calls say "parameters" where Hermes says "arguments".
    arguments = value.get("arguments", value.get("parameters", {}))
    return {"name": value["name"], "arguments": arguments_object(arguments)}


def parse_calls(text: str) -> list[dict[str, Any]] | None:
    """The tool calls a generated answer makes (`<tool_call>` blocks, or the whole answer one
    JSON call object), or None when it makes none or they do not parse."""
    blocks = _CALL_BLOCK.findall(text)
    calls = [_json_call(b) for b in blocks] if blocks else [_json_call(text.strip())]
    if not calls or any(c is None for c in calls):
        return None
    return [c for c in calls if c is not None]


def generated_key(text: str) -> str:
    """A generated answer to compare with a teacher's tool calls: `calls_key` of the calls it
    makes, else the text as it is (applied only where the teacher's answer is calls, so a JSON
    answer with a "name" field elsewhere is never read as a call)."""
    calls = parse_calls(text)
    return calls_key(calls) if calls else text
