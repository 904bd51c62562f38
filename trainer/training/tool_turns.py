"""Agent rows (tools, assistant tool calls, tool results) for the student's chat template.

`dataset build` writes OpenAI's fine-tuning chat format: a `tools` list, assistant turns with
`tool_calls` (content null) and `tool` turns. A template that takes tools - it renders the
`tools=` schemas, an assistant turn's calls and the tool results, as Qwen2.5's, Llama 3.1's
and Mistral's do - gets the turns as they are, each call's arguments parsed to an object as
vLLM passes them. Any other template gets them as text in the convention of
`trainer.training.tool_calls`, so the student still sees the tools and writes its calls in a
form that parses back. `developer` turns are system turns (OpenAI's newer name for them).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from jinja2 import TemplateError
from transformers import PreTrainedTokenizerBase

from trainer.training import tool_calls as tc

ROLES = ("system", "developer", "user", "assistant", "tool")

# Tells the parsed row's problems to the caller (data.TrainingInputError wraps them).
Problem = str


def _problem_in_call(call: Any) -> Problem | None:
    function = call.get("function") if isinstance(call, dict) else None
    if not isinstance(function, dict) or not isinstance(function.get("name"), str):
        return 'each tool call needs {"function": {"name": ..., "arguments": ...}}'
    if not isinstance(function.get("arguments", "{}"), str | dict):
        return "a tool call's arguments must be a JSON string or an object"
    return None


def message_problem(msg: Any) -> Problem | None:
    """What is wrong with one turn of a row, or None."""
    if not isinstance(msg, dict) or msg.get("role") not in ROLES:
        return f"needs a role among {', '.join(ROLES)}, got {msg!r:.80}"
    calls = msg.get("tool_calls")
    if calls is not None:
        if msg["role"] != "assistant" or not isinstance(calls, list) or not calls:
            return "has tool_calls, which only an assistant turn may have, as a non-empty list"
        problem = next((p for p in map(_problem_in_call, calls) if p), None)
        if problem:
            return problem
        if msg.get("content") is not None and not isinstance(msg["content"], str):
            return "needs a string or null content"
    elif not isinstance(msg.get("content"), str):
        return "needs a string content"
    return None


def turn(msg: dict[str, Any]) -> dict[str, Any]:
    """The keys of a (valid) turn that rendering uses; `developer` becomes `system`."""
    role = "system" if msg["role"] == "developer" else msg["role"]
    out: dict[str, Any] = {"role": role, "content": msg.get("content")}
    for key in ("tool_calls", "tool_call_id", "name"):
        if msg.get(key) is not None:
            out[key] = msg[key]
    return out


def tools_problem(tools: Any) -> Problem | None:
    if tools is None:
        return None
    ok = isinstance(tools, list) and all(
        isinstance(t, dict) and isinstance(t.get("function"), dict) for t in tools
    )
    return None if ok else 'tools must be a list of {"type": "function", "function": {...}}'


def is_agent(messages: Sequence[dict[str, Any]], tools: Sequence[Any] | None) -> bool:
    return bool(tools) or any(m["role"] == "tool" or m.get("tool_calls") for m in messages)


_PROBE_TOOL = "distill_probe_tool_d41c"
_PROBE_ARG = "distill_probe_argument_9e07"
_PROBE_RESULT = "distill_probe_result_5b2a"
_PROBE_SCHEMA = "distill_probe_description_70c3"
_PROBE_MESSAGES: list[Any] = [
    {"role": "user", "content": "x"},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_probe",
                "type": "function",
                "function": {"name": _PROBE_TOOL, "arguments": {"q": _PROBE_ARG}},
            }
        ],
    },
    {"role": "tool", "tool_call_id": "call_probe", "name": _PROBE_TOOL, "content": _PROBE_RESULT},
]
_PROBE_TOOLS: list[Any] = [
    {
        "type": "function",
        "function": {
            "name": _PROBE_TOOL,
            "description": _PROBE_SCHEMA,
            "parameters": {"type": "object", "properties": {"q": {"type": "string"}}},
        },
    }
]
_native: dict[str, bool] = {}


def takes_tools(tokenizer: PreTrainedTokenizerBase) -> bool:
    """Does the chat template render tools, tool calls and tool results (all three)?"""
    template = tokenizer.chat_template
    key = template if isinstance(template, str) else repr(template)
    if key not in _native:
        try:
            with_tools = tokenizer.apply_chat_template(
                _PROBE_MESSAGES, tools=_PROBE_TOOLS, tokenize=False, add_generation_prompt=True
            )
        except (TemplateError, ValueError, TypeError):
            _native[key] = False
        else:
            text = str(with_tools)
            _native[key] = all(p in text for p in (_PROBE_SCHEMA, _PROBE_ARG, _PROBE_RESULT))
    return _native[key]


def as_text(
    messages: Sequence[dict[str, Any]], tools: Sequence[dict[str, Any]] | None
) -> list[dict[str, Any]]:
    """Turns for a template without tool support: tools in the system message, calls and
    results as text (the convention of `trainer.training.tool_calls`)."""
    out: list[dict[str, Any]] = []
    for msg in messages:
        if msg["role"] == "tool":
            if out and out[-1].get("_results") is not None:
                out[-1]["_results"].append(str(msg["content"]))
            else:
                out.append({"role": "user", "_results": [str(msg["content"])]})
            continue
        if msg.get("tool_calls"):
            parts = (msg.get("content") or "", tc.calls_text(msg["tool_calls"]))
            text = "\n".join(p for p in parts if p)
            out.append({"role": "assistant", "content": text})
            continue
        out.append({"role": msg["role"], "content": msg["content"]})
    turns = [
        {"role": "user", "content": tc.results_text(m["_results"])} if "_results" in m else m
        for m in out
    ]
    if tools:
        block = tc.tools_text(tools)
        if turns and turns[0]["role"] == "system":
            turns[0] = {"role": "system", "content": f"{turns[0]['content']}\n\n{block}"}
        else:
            turns.insert(0, {"role": "system", "content": block})
    return turns


def _native_turn(msg: dict[str, Any]) -> dict[str, Any]:
    if not msg.get("tool_calls"):
        return msg
    calls = [
        {
            **call,
            "function": {
                **call["function"],
                "arguments": tc.arguments_object(call["function"].get("arguments", {})),
            },
        }
        for call in msg["tool_calls"]
    ]
    return {**msg, "tool_calls": calls}


def for_template(
    tokenizer: PreTrainedTokenizerBase,
    messages: Sequence[dict[str, Any]],
    tools: Sequence[dict[str, Any]] | None,
) -> tuple[list[dict[str, Any]], list[Any] | None]:
    """The turns and the `tools=` argument to render `messages` with this tokenizer's template,
    as inference renders them. Rows without tools, calls or results pass unchanged."""
    if not is_agent(messages, tools):
        return list(messages), None
    if takes_tools(tokenizer):
        return [_native_turn(m) for m in messages], list(tools) if tools else None
    return as_text(messages, tools), None


def prompt_text(
    tokenizer: PreTrainedTokenizerBase,
    messages: Sequence[dict[str, Any]],
    tools: Sequence[dict[str, Any]] | None = None,
) -> str:
    """The inference prompt for `messages` (and `tools`), as training's prefix renders it."""
    turns, native_tools = for_template(tokenizer, messages, tools)
    text = tokenizer.apply_chat_template(
        turns, tools=native_tools, add_generation_prompt=True, tokenize=False
    )
    return str(text)


def reference(answer: dict[str, Any]) -> str:
    """The teacher's answer turn as compared with generated text (tool calls as `calls_key`)."""
    calls = answer.get("tool_calls")
    return tc.calls_key(calls) if calls else str(answer.get("content") or "")


def compared(generated: str, answer: dict[str, Any]) -> str:
    """A generated answer as compared with the teacher's `answer` turn."""
    return tc.generated_key(generated) if answer.get("tool_calls") else generated


def serving_note(
    tokenizer: PreTrainedTokenizerBase, rows: Sequence[tuple[Sequence[dict[str, Any]], Any]]
) -> str | None:
    """What serving must do for a student trained on `rows` (turns, tools) with agent rows."""
    agent = sum(is_agent(messages, tools) for messages, tools in rows)
    if not agent:
        return None
    if takes_tools(tokenizer):
        return (
            f"{agent} agent rows were rendered with the chat template's own tool format; serve "
            "with vLLM --enable-auto-tool-choice and the --tool-call-parser of the model family"
        )
    return (
        f"{agent} agent rows: the chat template has no tool format, so tools, calls and results "
        "were rendered as text (the Hermes convention, docs/training-recipe.md); serve it with "
        "the chat template `distill model tool-template BASE_MODEL` writes (vLLM "
        "--chat-template FILE --enable-auto-tool-choice --tool-call-parser hermes; "
        "start_vllm does this by itself), so its prompts carry the tools the same way"
    )
