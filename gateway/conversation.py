"""A logged exchange as one chat conversation: the turns, the tools, the assistant's answer.

Chat completions already are one; a Responses-API exchange is translated (its `instructions`
and `input` items to messages, function calls to `tool_calls`, function outputs to `tool`
turns, `text.format` to `response_format`, tools to chat's nested `function` shape), so the
console shows every endpoint the same way and `dataset build` writes OpenAI's fine-tuning
chat format with `tools` (pure; raises `NotAConversation` saying what is missing).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway.responses import output_text

_TEXT_PARTS = frozenset({"text", "input_text", "output_text"})


class NotAConversation(ValueError):
    """The bodies cannot be read as a chat conversation; the message says why."""


@dataclass(frozen=True)
class Conversation:
    messages: list[dict[str, Any]]  # the input turns, chat-format
    answer: dict[str, Any]  # the assistant's message: content and/or tool_calls (or refusal)
    tools: list[dict[str, Any]] | None  # chat-format function tools, when the request had any
    response_format: dict[str, Any] | None


def text_of(content: Any) -> str | None:
    """Message content as text: a string, or text parts joined; None for anything else."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list) or not content:
        return None
    texts = []
    for part in content:
        if not isinstance(part, dict) or part.get("type") not in _TEXT_PARTS:
            return None
        if not isinstance(part.get("text"), str):
            return None
        texts.append(part["text"])
    return "".join(texts)


def chat_tool(tool: Any) -> dict[str, Any] | None:
    """A Responses-API function tool (flat) in chat's `{"type", "function": {...}}` shape."""
    if not isinstance(tool, dict) or tool.get("type") != "function":
        return None
    if isinstance(tool.get("function"), dict):
        return tool  # already chat-shaped
    function = {k: tool[k] for k in ("name", "description", "parameters", "strict") if k in tool}
    return {"type": "function", "function": function}


def _tools(request: dict[str, Any]) -> list[dict[str, Any]] | None:
    raw = request.get("tools")
    if not isinstance(raw, list) or not raw:
        return None
    tools = [chat_tool(t) for t in raw]
    if any(t is None for t in tools):
        kinds = sorted({str(t.get("type")) for t in raw if isinstance(t, dict)} - {"function"})
        raise NotAConversation(
            f"the request uses built-in tools ({', '.join(kinds) or 'unknown'}), "
            "which a fine-tuning row cannot carry"
        )
    return [t for t in tools if t is not None]


def _response_format(request: dict[str, Any]) -> dict[str, Any] | None:
    fmt = request.get("response_format")
    if isinstance(fmt, dict):
        return fmt
    text = request.get("text")
    fmt = text.get("format") if isinstance(text, dict) else None
    if not isinstance(fmt, dict) or fmt.get("type") in (None, "text"):
        return None
    if fmt.get("type") == "json_schema":  # flat in the Responses API, nested in chat
        spec = {k: v for k, v in fmt.items() if k != "type"}
        return {"type": "json_schema", "json_schema": spec}
    return fmt


def _function_call(item: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": item.get("call_id") or item.get("id"),
        "type": "function",
        "function": {"name": item.get("name"), "arguments": item.get("arguments") or ""},
    }


def _input_messages(request: dict[str, Any]) -> list[dict[str, Any]]:
    """`instructions` and `input` as chat turns; consecutive function calls share one turn."""
    if request.get("previous_response_id") or request.get("conversation"):
        raise NotAConversation(
            "the request continues a response stored upstream (previous_response_id or "
            "conversation): its earlier turns are not in the log"
        )
    messages: list[dict[str, Any]] = []
    if isinstance(request.get("instructions"), str):
        messages.append({"role": "system", "content": request["instructions"]})
    items = request.get("input")
    if isinstance(items, str):
        return [*messages, {"role": "user", "content": items}]
    if not isinstance(items, list):
        raise NotAConversation("the request has no input")
    for i, item in enumerate(items):
        kind = item.get("type", "message") if isinstance(item, dict) else None
        if kind == "message" and isinstance(item, dict):
            text = text_of(item.get("content"))
            if text is None:
                raise NotAConversation(f"input item {i} has no text content")
            messages.append({"role": str(item.get("role")), "content": text})
        elif kind == "function_call" and isinstance(item, dict):
            call = _function_call(item)
            last = messages[-1] if messages else None
            if last is not None and last["role"] == "assistant" and "tool_calls" in last:
                last["tool_calls"].append(call)
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output" and isinstance(item, dict):
            output = item.get("output")
            text = output if isinstance(output, str) else text_of(output)
            if text is None:
                raise NotAConversation(f"input item {i} (function_call_output) has no text")
            messages.append({"role": "tool", "tool_call_id": item.get("call_id"), "content": text})
        elif kind == "reasoning":
            continue  # the model's own scratch work: not a turn
        else:
            raise NotAConversation(f"input item {i} has a type a chat row cannot hold ({kind})")
    return messages


def _responses_answer(response: dict[str, Any]) -> dict[str, Any]:
    output = response.get("output")
    if not isinstance(output, list):
        raise NotAConversation("the response has no output")
    answer: dict[str, Any] = {"role": "assistant", "content": output_text(response)}
    calls = [
        _function_call(i)
        for i in output
        if isinstance(i, dict) and i.get("type") == "function_call"
    ]
    if calls:
        answer["tool_calls"] = calls
    refusals = [
        part.get("refusal")
        for item in output
        if isinstance(item, dict) and item.get("type") == "message"
        for part in item.get("content") or ()
        if isinstance(part, dict) and part.get("type") == "refusal"
    ]
    if refusals:
        answer["refusal"] = "".join(r for r in refusals if isinstance(r, str))
    return answer


def _chat_answer(response: dict[str, Any], endpoint: str) -> dict[str, Any]:
    choices = response.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise NotAConversation("the response has no choices")
    if endpoint == "completions":
        return {"role": "assistant", "content": choices[0].get("text")}
    message = choices[0].get("message")
    if not isinstance(message, dict):
        raise NotAConversation("the response's first choice has no message")
    keep = ("role", "content", "tool_calls", "refusal")
    return {k: message[k] for k in keep if k in message}


def _chat_messages(request: dict[str, Any], endpoint: str) -> list[dict[str, Any]]:
    if endpoint == "completions":
        prompt = request.get("prompt")
        if isinstance(prompt, list) and len(prompt) == 1:
            prompt = prompt[0]
        if not isinstance(prompt, str):
            raise NotAConversation("the completions request has no single text prompt")
        return [{"role": "user", "content": prompt}]
    messages = request.get("messages")
    if not isinstance(messages, list) or not messages:
        raise NotAConversation("the request has no messages")
    return [m if isinstance(m, dict) else {"role": None, "content": m} for m in messages]


def answer_message(endpoint: str, response: Any) -> dict[str, Any]:
    """The assistant's message of a response body, chat-shaped; raises NotAConversation."""
    if not isinstance(response, dict):
        raise NotAConversation("the response is not a JSON object")
    if endpoint == "responses":
        return _responses_answer(response)
    return _chat_answer(response, endpoint)


def conversation(endpoint: str, request: Any, response: Any) -> Conversation:
    """The exchange as chat turns + the assistant's answer; raises NotAConversation."""
    if not isinstance(request, dict):
        raise NotAConversation("the request is not a JSON object")
    answer = answer_message(endpoint, response)
    if endpoint == "responses":
        messages = _input_messages(request)
    else:
        messages = _chat_messages(request, endpoint)
    return Conversation(messages, answer, _tools(request), _response_format(request))
