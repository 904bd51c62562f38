"""How much a student's answer agrees with the teacher's, in [0, 1], per route policy (pure)."""

from __future__ import annotations

import re
import string
from typing import Any

import orjson

_PUNCT = str.maketrans("", "", string.punctuation)
_SPACE = re.compile(r"\s+")


def normalize(text: str) -> str:
    return _SPACE.sub(" ", text.casefold().translate(_PUNCT)).strip()


def _label(text: str) -> str:
    words = normalize(text).split(" ")
    return words[0] if words else ""


def _json_fields(teacher: str, student: str) -> float:
    try:
        t, s = orjson.loads(teacher), orjson.loads(student)
    except orjson.JSONDecodeError:
        return 0.0
    if not isinstance(t, dict) or not isinstance(s, dict):
        return float(t == s)
    if not t:
        return float(not s)
    return sum(1 for k, v in t.items() if k in s and s[k] == v) / len(t)


def agreement(teacher: str | None, student: str | None, mode: str) -> float:
    """exact | normalized (case, spaces, punctuation) | label (first word) | json (fields)."""
    if teacher is None or student is None:
        return 0.0
    if mode == "exact":
        return float(teacher == student)
    if mode == "normalized":
        return float(normalize(teacher) == normalize(student))
    if mode == "label":
        return float(_label(teacher) == _label(student))
    if mode == "json":
        return _json_fields(teacher, student)
    raise ValueError(f"unknown agreement mode {mode!r}: use exact, normalized, label or json")


def answer_text(response: Any) -> str | None:
    """The first choice's text of an OpenAI chat or completions response object."""
    if not isinstance(response, dict):
        return None
    choices = response.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return None
    first = choices[0]
    message = first.get("message")
    if isinstance(message, dict):
        content = message.get("content")
        return content if isinstance(content, str) else None
    text = first.get("text")
    return text if isinstance(text, str) else None
