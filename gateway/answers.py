"""The one way answers are compared: eval, the rollout gates, consensus and dedup all use it (pure).

Four modes, chosen per route (shadow) or per task kind (eval):

- ``exact``: byte-for-byte after trimming surrounding whitespace;
- ``normalized``: equal after :func:`normalize_text` (case, punctuation, spacing ignored);
- ``label``: equal after :func:`normalize_label` (the first non-empty line, normalised), so
  ``"Billing."`` and ``"billing\\nBecause..."`` are the same label;
- ``json``: objects compared field by field (dotted paths for nested objects, string values
  normalised, ``1`` equal to ``1.0``); the score is the pair's field-level F1, so a missing
  field and an extra field both cost, and a student answer that is not an object scores 0.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

Mode = Literal["exact", "normalized", "label", "json"]
MODES: tuple[Mode, ...] = ("exact", "normalized", "label", "json")

# \w keeps letters and digits of every script; everything else but spaces is punctuation.
_PUNCT = re.compile(r"[^\w\s]|_")


def normalize_text(text: str) -> str:
    """Unicode NFKC, casefold, punctuation and symbols to spaces, whitespace collapsed."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return " ".join(_PUNCT.sub(" ", folded).split())


def normalize_label(text: str) -> str:
    """A label as the teacher meant it: the first non-empty line, normalised."""
    for line in text.splitlines():
        label = normalize_text(line)
        if label:
            return label
    return ""


def parse_json_object(text: str) -> dict[str, Any] | None:
    """The answer as a JSON object, or None when it is not one (arrays and scalars are not)."""
    try:
        value = json.loads(text.strip())
    except (json.JSONDecodeError, ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def value_key(value: Any) -> str:
    """A field value's comparison key: strings normalised, whole floats as ints, else JSON."""
    if isinstance(value, str):
        return "s:" + " ".join(unicodedata.normalize("NFKC", value).casefold().split())
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    if isinstance(value, list):
        return "l:[" + ",".join(value_key(item) for item in value) + "]"
    if isinstance(value, dict):
        return "d:" + json.dumps(sorted(fields(value).items()))
    return "j:" + json.dumps(value)


def fields(obj: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """{dotted path: comparison key} for every leaf; an empty nested object is one leaf."""
    out: dict[str, str] = {}
    for key, value in obj.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict) and value:
            out.update(fields(value, path))
        else:
            out[path] = value_key(value)
    return out


@dataclass(frozen=True)
class FieldCounts:
    """Fields in common, in the student's answer and in the teacher's (for micro averages)."""

    matched: int
    student: int
    teacher: int

    @property
    def f1(self) -> float:
        if self.student == 0 and self.teacher == 0:
            return 1.0
        return 2 * self.matched / (self.student + self.teacher)


def field_counts(teacher: str, student: str) -> FieldCounts:
    """Field-by-field comparison; an answer that is not a JSON object has no fields."""
    t_obj, s_obj = parse_json_object(teacher), parse_json_object(student)
    t = fields(t_obj) if t_obj is not None else {}
    s = fields(s_obj) if s_obj is not None else {}
    matched = sum(1 for path, key in t.items() if s.get(path) == key)
    if s_obj is None:  # not an object: nothing matches, even when the teacher's is empty
        return FieldCounts(0, 0, max(len(t), 1))
    return FieldCounts(matched, len(s), len(t))


def answer_key(text: str) -> str:
    """Equal keys mean the same answer: JSON objects by their fields, anything else normalised."""
    obj = parse_json_object(text)
    if obj is not None:
        return "json:" + json.dumps(sorted(fields(obj).items()))
    return "text:" + normalize_text(text)


def same_answer(a: str, b: str) -> bool:
    """Whether two answers say the same thing (consensus votes and the dataset card use this)."""
    return a == b or answer_key(a) == answer_key(b)


def agreement(teacher: str | None, student: str | None, mode: str) -> float:
    """How much the student agrees with the teacher under `mode`, in [0, 1]; None scores 0."""
    if teacher is None or student is None:
        return 0.0
    if mode == "exact":
        return float(teacher.strip() == student.strip())
    if mode == "normalized":
        return float(normalize_text(teacher) == normalize_text(student))
    if mode == "label":
        return float(normalize_label(teacher) == normalize_label(student))
    if mode == "json":
        return field_counts(teacher, student).f1
    raise ValueError(f"unknown agreement mode {mode!r}: use one of {', '.join(MODES)}")


def mean_agreement(teachers: Sequence[str], students: Sequence[str], mode: str) -> float:
    """Mean agreement over pairs (0 for none)."""
    if len(teachers) != len(students):
        raise ValueError(f"{len(students)} student answers for {len(teachers)} teacher answers")
    if not teachers:
        return 0.0
    return sum(agreement(t, s, mode) for t, s in zip(teachers, students, strict=True)) / len(
        teachers
    )


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
