"""Per-row quality filters on the parsed example: refusals, JSON validity, length, feedback."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

import jsonschema
import orjson

_JSON_TYPES = ("json_object", "json_schema")


def _fold(text: str) -> str:
    # Curly apostrophes are common in model output; phrase lists are typed with straight ones.
    return text.replace("\u2019", "'").replace("\u2018", "'").casefold()


@lru_cache(maxsize=8)
def _refusal_pattern(phrases: tuple[str, ...]) -> re.Pattern[str]:
    return re.compile("|".join(re.escape(_fold(p)) for p in phrases))


def is_refusal(answer: str, phrases: tuple[str, ...]) -> bool:
    """True when the answer contains one of the refusal phrases (case-insensitive)."""
    if not phrases:
        return False
    return _refusal_pattern(phrases).search(_fold(answer)) is not None


def json_problem(answer: str, response_format: dict[str, Any] | None) -> str | None:
    """Why the answer fails the JSON the request asked for; None when fine or not asked."""
    kind = (response_format or {}).get("type")
    if kind not in _JSON_TYPES:
        return None
    try:
        value = orjson.loads(answer)
    except orjson.JSONDecodeError:
        return "not valid JSON"
    if kind == "json_object":
        return None if isinstance(value, dict) else "not a JSON object"
    spec = (response_format or {}).get("json_schema")
    schema = spec.get("schema") if isinstance(spec, dict) else None
    if not isinstance(schema, dict):
        return None  # no schema to hold it to: valid JSON is all that was asked
    try:
        jsonschema.validate(value, schema)
    except jsonschema.ValidationError as exc:
        return f"does not match the schema: {exc.message}"
    except jsonschema.SchemaError:
        return None  # the client's schema is broken, not the teacher's answer
    return None


def within_bounds(chars: int, low: int, high: int) -> bool:
    return low <= chars <= high


def is_negative(min_score: float | None, threshold: float) -> bool:
    """True when any feedback on the row scored at or below the threshold."""
    return min_score is not None and min_score <= threshold
