"""The Responses API (`POST /v1/responses`): its event stream folded into the response object.

A streamed response ends with one terminal event (`response.completed`, `response.incomplete`
or `response.failed`) that carries the whole response, as the non-streamed call returns it;
that object is what the log keeps. When a stream stops before it (a cut connection), the
output items are rebuilt from the item and delta events seen so far. Event names and shapes
follow openai-python's `openai/types/responses/response_*_event.py`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

TERMINAL = frozenset({"response.completed", "response.incomplete", "response.failed"})
# The chat-completions finish reason a Responses-API answer corresponds to (for the
# `finish_reason` column, which filters and dashboards read the same for every endpoint).
_INCOMPLETE = {"max_output_tokens": "length", "content_filter": "content_filter"}


def finish_reason(response: dict[str, Any]) -> str | None:
    """`stop`, `tool_calls`, `length`, `content_filter` or None (still running, failed)."""
    status = response.get("status")
    if status == "incomplete":
        details = response.get("incomplete_details") or {}
        reason = details.get("reason") if isinstance(details, dict) else None
        return _INCOMPLETE.get(str(reason), str(reason) if reason else "incomplete")
    if status != "completed":
        return None
    output = response.get("output") or []
    calls = any(isinstance(i, dict) and i.get("type") == "function_call" for i in output)
    return "tool_calls" if calls else "stop"


def output_text(response: Any) -> str | None:
    """All `output_text` parts of the response's messages joined, as the SDK's `output_text`."""
    if not isinstance(response, dict) or not isinstance(response.get("output"), list):
        return None
    texts = [
        part.get("text")
        for item in response["output"]
        if isinstance(item, dict) and item.get("type") == "message"
        for part in item.get("content") or ()
        if isinstance(part, dict) and part.get("type") == "output_text"
    ]
    strings = [t for t in texts if isinstance(t, str)]
    return "".join(strings) if strings else None


def token_usage(usage: Any) -> dict[str, Any]:
    """Usage with `prompt_tokens`/`completion_tokens`, whichever API's names it came with."""
    if not isinstance(usage, dict):
        return {}
    if "input_tokens" in usage and "prompt_tokens" not in usage:
        return {
            **usage,
            "prompt_tokens": usage.get("input_tokens"),
            "completion_tokens": usage.get("output_tokens"),
        }
    return usage


@dataclass
class _Item:
    """One output item being streamed: a message's parts, or a function call's arguments."""

    item: dict[str, Any]
    parts: dict[int, dict[str, Any]] = field(default_factory=dict)

    def done(self) -> dict[str, Any]:
        if self.item.get("type") == "message" and self.parts:
            return {**self.item, "content": [self.parts[i] for i in sorted(self.parts)]}
        return self.item


@dataclass
class ResponsesAssembler:
    """Folds a Responses-API event stream into the response object it ends with."""

    final: dict[str, Any] | None = None  # the terminal event's response
    started: dict[str, Any] | None = None  # response.created's snapshot
    error: Any = None
    chunks: int = 0
    _items: dict[int, _Item] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        """A terminal event (or an error event) arrived: the stream ended as it should."""
        return self.final is not None or self.error is not None

    def add(self, payload: dict[str, Any]) -> None:
        self.chunks += 1
        kind = payload.get("type")
        if kind in TERMINAL and isinstance(payload.get("response"), dict):
            self.final = payload["response"]
            if kind == "response.failed":
                self.error = self.final.get("error") or {"message": "response.failed"}
            return
        if kind == "error":
            self.error = {k: v for k, v in payload.items() if k not in ("type", "sequence_number")}
            return
        if kind == "response.created" and isinstance(payload.get("response"), dict):
            self.started = payload["response"]
            return
        index = payload.get("output_index")
        if not isinstance(index, int):
            return
        if kind in ("response.output_item.added", "response.output_item.done"):
            item = payload.get("item")
            if isinstance(item, dict):
                slot = self._items.setdefault(index, _Item(dict(item)))
                slot.item = dict(item)
                if kind.endswith(".done"):
                    slot.parts.clear()  # the item carries its finished content
            return
        current = self._items.get(index)
        if current is not None:
            self._apply_delta(current, str(kind), payload)

    @staticmethod
    def _apply_delta(slot: _Item, kind: str, payload: dict[str, Any]) -> None:
        delta = payload.get("delta")
        if kind == "response.function_call_arguments.delta" and isinstance(delta, str):
            slot.item["arguments"] = str(slot.item.get("arguments") or "") + delta
            return
        part_index = payload.get("content_index")
        if not isinstance(part_index, int):
            return
        if kind == "response.content_part.added" and isinstance(payload.get("part"), dict):
            slot.parts[part_index] = dict(payload["part"])
            return
        part = slot.parts.setdefault(part_index, {"type": "output_text", "text": ""})
        if kind == "response.output_text.delta" and isinstance(delta, str):
            part["text"] = str(part.get("text") or "") + delta
            if payload.get("logprobs"):
                part.setdefault("logprobs", []).extend(payload["logprobs"])
        elif kind == "response.refusal.delta" and isinstance(delta, str):
            part["type"] = "refusal"
            part["refusal"] = str(part.get("refusal") or "") + delta
            part.pop("text", None)

    @property
    def usage(self) -> dict[str, Any] | None:
        usage = (self.final or {}).get("usage")
        return token_usage(usage) if usage else None

    @property
    def finish_reason(self) -> str | None:
        return finish_reason(self.final) if self.final else None

    def response(self) -> dict[str, Any]:
        """The non-streamed response of the same call; rebuilt from its parts if cut short."""
        if self.final is not None:
            return self.final
        partial = dict(self.started or {"object": "response"})
        partial["status"] = "incomplete"
        partial["output"] = [self._items[i].done() for i in sorted(self._items)]
        return partial


def continues_stored_state(body: dict[str, Any]) -> bool:
    """A request that continues a response or conversation stored upstream: only the upstream
    that stored it can answer it, so it is never mirrored to a student or another teacher."""
    return bool(body.get("previous_response_id") or body.get("conversation"))
