"""Server-sent events: split an upstream byte stream into events; fold chunks into one answer."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

DONE = b"[DONE]"


class SSESplitter:
    """Feed raw bytes, get back complete events (each with its trailing blank line)."""

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, chunk: bytes) -> list[bytes]:
        self._buffer += chunk
        if b"\n\n" not in self._buffer and b"\r\n\r\n" not in self._buffer:
            return []
        data = self._buffer.replace(b"\r\n", b"\n")
        *events, self._buffer = data.split(b"\n\n")
        return [e + b"\n\n" for e in events if e.strip()]

    @property
    def leftover(self) -> bytes:
        return self._buffer


def event_data(event: bytes) -> bytes | None:
    """The `data:` payload of an event (multi-line data joined), or None for comments etc."""
    if event.startswith(b"data: ") and event.find(b"\n", 6) == len(event) - 2:
        return event[6:-2]  # the usual shape, one `data: ` line: no split (hot path)
    lines = [line[5:].lstrip(b" ") for line in event.split(b"\n") if line.startswith(b"data:")]
    return b"\n".join(lines) if lines else None


def sse_event(payload: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


# The list-valued fields of a choice's `logprobs`: chat (`content`, `refusal`) and legacy
# completions (`tokens`, ...). A stream sends a slice of each per chunk; the answer has them whole.
_LOGPROB_LISTS = ("content", "refusal", "tokens", "token_logprobs", "top_logprobs", "text_offset")


def merge_logprobs(slices: list[dict[str, Any]]) -> dict[str, Any]:
    """One choice's per-chunk `logprobs` objects as the non-streamed answer's single object."""
    merged: dict[str, Any] = {}
    for piece in slices:
        for key, value in piece.items():
            if key in _LOGPROB_LISTS and isinstance(value, list):
                previous = merged.get(key)
                merged[key] = (previous if isinstance(previous, list) else []) + value
            elif key not in merged or merged[key] is None:
                merged[key] = value
    return merged


@dataclass
class _Choice:
    index: int
    role: str | None = None
    content: list[str] = field(default_factory=list)
    text: list[str] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)
    refusal: list[str] = field(default_factory=list)
    tool_calls: dict[int, dict[str, Any]] = field(default_factory=dict)
    finish_reason: str | None = None
    logprobs: list[Any] = field(default_factory=list)


@dataclass
class StreamAssembler:
    """Folds `chat.completion.chunk` / streamed `text_completion` payloads into one response."""

    endpoint: str  # "chat" | "completions"
    id: str | None = None
    model: str | None = None
    created: int | None = None
    system_fingerprint: str | None = None
    usage: dict[str, Any] | None = None
    error: Any = None
    chunks: int = 0
    tool_deltas: int = 0  # tool-call fragments seen (for `pieces`)
    _choices: dict[int, _Choice] = field(default_factory=dict)

    def add(self, payload: dict[str, Any]) -> None:
        self.chunks += 1
        if "error" in payload and payload.get("object") is None:
            self.error = payload["error"]
            return
        self.id = self.id or payload.get("id")
        self.model = self.model or payload.get("model")
        self.created = self.created or payload.get("created")
        self.system_fingerprint = self.system_fingerprint or payload.get("system_fingerprint")
        if payload.get("usage"):
            self.usage = payload["usage"]
        for raw in payload.get("choices") or ():
            index = int(raw.get("index", 0))
            choice = self._choices.setdefault(index, _Choice(index))
            if raw.get("finish_reason"):
                choice.finish_reason = raw["finish_reason"]
            if isinstance(raw.get("logprobs"), dict):
                choice.logprobs.append(raw["logprobs"])
            if self.endpoint == "completions":
                choice.text.append(raw.get("text") or "")
                continue
            delta = raw.get("delta") or {}
            if delta.get("role"):
                choice.role = delta["role"]
            if delta.get("content"):
                choice.content.append(delta["content"])
            if delta.get("refusal"):
                choice.refusal.append(delta["refusal"])
            reasoning = delta.get("reasoning_content") or delta.get("reasoning")
            if reasoning:
                choice.reasoning.append(reasoning)
            for call in delta.get("tool_calls") or ():
                self.tool_deltas += 1
                slot = choice.tool_calls.setdefault(
                    int(call.get("index", 0)),
                    {"id": None, "type": "function", "function": {"name": "", "arguments": ""}},
                )
                if call.get("id"):
                    slot["id"] = call["id"]
                if call.get("type"):
                    slot["type"] = call["type"]
                function = call.get("function") or {}
                slot["function"]["name"] += function.get("name") or ""
                slot["function"]["arguments"] += function.get("arguments") or ""

    @property
    def pieces(self) -> int:
        """Deltas that carried generated text or tool-call fragments: about a token each, the
        gateway's count of completion tokens when a stream brings no usage (gateway/usage.py)."""
        return self.tool_deltas + sum(
            len(c.content) + len(c.reasoning) + len(c.refusal) + sum(1 for t in c.text if t)
            for c in self._choices.values()
        )

    @property
    def finish_reason(self) -> str | None:
        first = self._choices.get(0)
        return first.finish_reason if first else None

    def response(self) -> dict[str, Any]:
        """The non-streaming response the same exchange would have produced."""
        choices: list[dict[str, Any]] = []
        for index in sorted(self._choices):
            c = self._choices[index]
            item: dict[str, Any] = {"index": index, "finish_reason": c.finish_reason}
            if self.endpoint == "completions":
                item["text"] = "".join(c.text)
            else:
                bare = c.tool_calls or c.refusal  # no text: content is null, as OpenAI sends it
                message: dict[str, Any] = {
                    "role": c.role or "assistant",
                    "content": "".join(c.content) if c.content or not bare else None,
                }
                if c.refusal:
                    message["refusal"] = "".join(c.refusal)
                if c.reasoning:
                    message["reasoning_content"] = "".join(c.reasoning)
                if c.tool_calls:
                    message["tool_calls"] = [c.tool_calls[i] for i in sorted(c.tool_calls)]
                item["message"] = message
            if c.logprobs:
                item["logprobs"] = merge_logprobs(c.logprobs)
            choices.append(item)
        out: dict[str, Any] = {
            "id": self.id,
            "object": "chat.completion" if self.endpoint == "chat" else "text_completion",
            "created": self.created,
            "model": self.model,
            "choices": choices,
        }
        if self.system_fingerprint:
            out["system_fingerprint"] = self.system_fingerprint
        if self.usage:
            out["usage"] = self.usage
        return out
