"""Turn one logged exchange into a training example, or say why it is corrupt."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import orjson

# Roles the OpenAI fine-tuning chat format takes as plain text turns.
_ROLES = frozenset({"system", "developer", "user", "assistant"})


@dataclass(frozen=True)
class Example:
    """A prompt (the input turns), the teacher's answer, and who asked."""

    id: str
    messages: tuple[dict[str, str], ...]  # input turns, each {"role", "content"[, "name"]}
    answer: str
    user: str | None
    session: str | None
    response_format: dict[str, Any] | None
    min_score: float | None  # worst feedback score, None without feedback

    @property
    def prompt_chars(self) -> int:
        return sum(len(m["content"]) for m in self.messages)

    def group(self) -> str:
        """Who the example belongs to for the split: user, else session, else conversation."""
        if self.user:
            return f"user:{self.user}"
        if self.session:
            return f"session:{self.session}"
        first = next((m["content"] for m in self.messages if m["role"] == "user"), "")
        return "conversation:" + hashlib.sha256(first.encode()).hexdigest()[:16]


class CorruptRow(ValueError):
    """The row cannot become an example; the message says which part is wrong."""


def _text(content: Any, where: str) -> str:
    """Message content as text: a string, or a list of text parts joined."""
    if isinstance(content, str):
        return content
    if isinstance(content, list) and content:
        texts = [p.get("text") if isinstance(p, dict) else None for p in content]
        if all(p.get("type") == "text" for p in content if isinstance(p, dict)) and all(
            isinstance(t, str) for t in texts
        ):
            return "".join(t for t in texts if isinstance(t, str))
    raise CorruptRow(f"{where} has no text content")


def _load(raw: str | None, what: str) -> dict[str, Any]:
    if raw is None:
        raise CorruptRow(f"{what} is missing")
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise CorruptRow(f"{what} is not valid JSON") from exc
    if not isinstance(value, dict):
        raise CorruptRow(f"{what} is not a JSON object")
    if value.get("truncated") is True and "head" in value:
        # The gateway stores only the head of a body over its capture cap.
        raise CorruptRow(f"{what} was cut at the gateway's capture limit (capture.max_body_bytes)")
    return value


def _messages(request: dict[str, Any]) -> tuple[dict[str, str], ...]:
    raw = request.get("messages")
    if not isinstance(raw, list) or not raw:
        raise CorruptRow("request has no messages")
    out: list[dict[str, str]] = []
    for i, message in enumerate(raw):
        if not isinstance(message, dict) or message.get("role") not in _ROLES:
            raise CorruptRow(f"message {i} has no supported role (system/user/assistant)")
        turn = {
            "role": str(message["role"]),
            "content": _text(message.get("content"), f"message {i}"),
        }
        if isinstance(message.get("name"), str):
            turn["name"] = message["name"]
        out.append(turn)
    if not any(m["role"] == "user" for m in out):
        raise CorruptRow("request has no user message")
    return tuple(out)


def _prompt(request: dict[str, Any]) -> tuple[dict[str, str], ...]:
    prompt = request.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1:
        prompt = prompt[0]
    if not isinstance(prompt, str):
        raise CorruptRow("completions request has no single text prompt")
    return ({"role": "user", "content": prompt},)


def _answer(response: dict[str, Any], endpoint: str) -> str:
    choices = response.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise CorruptRow("response has no choices")
    choice = choices[0]
    if endpoint == "completions":
        text = choice.get("text")
    else:
        message = choice.get("message")
        text = message.get("content") if isinstance(message, dict) else None
    if not isinstance(text, str):
        raise CorruptRow("response has no assistant text (a tool call or an empty choice)")
    return text


def parse_row(
    row_id: str,
    endpoint: str,
    request: str | None,
    response: str | None,
    user: str | None,
    session: str | None,
    min_score: float | None,
) -> Example:
    """Build the example; raises CorruptRow when the logged bodies do not make one."""
    req = _load(request, "request")
    resp = _load(response, "response")
    messages = _prompt(req) if endpoint == "completions" else _messages(req)
    fmt = req.get("response_format")
    return Example(
        id=row_id,
        messages=messages,
        answer=_answer(resp, endpoint),
        user=user or None,
        session=session or None,
        response_format=fmt if isinstance(fmt, dict) else None,
        min_score=min_score,
    )
