"""Labels on a logged exchange: tags and session from headers and from the body's `metadata`.

OpenAI's API takes `metadata` (up to 16 string pairs) on chat completions and responses; an app
that already sends it gets the same pairs as tags here, without adding a header. Header tags win
where both name a key (the header is the gateway's own, explicit channel); the session is the
header's, else `metadata.session_id`, else `metadata.session` (pure).
"""

from __future__ import annotations

from typing import Any

import orjson

MAX_TAGS, TAG_CHARS = 64, 256
SESSION_KEYS = ("session_id", "session")


def _bounded(pairs: dict[Any, Any]) -> dict[str, Any] | None:
    """Scalars only (nested values dropped: tags are filter labels), keys and values cut."""
    tags = {
        str(k)[:TAG_CHARS]: v[:TAG_CHARS] if isinstance(v, str) else v
        for k, v in pairs.items()
        if v is None or isinstance(v, str | int | float | bool)
    }
    return dict(list(tags.items())[:MAX_TAGS]) or None


def parse_tags(value: str | None) -> dict[str, Any] | None:
    """`x-distill-tags`: a flat JSON object, or `k=v,k2=v2`; bounded, scalars only.

    Nested values are dropped (they could also be nested deeper than any JSON encoder will
    write back).
    """
    if not value:
        return None
    try:
        parsed = orjson.loads(value)
    except orjson.JSONDecodeError:
        pairs = (item.partition("=") for item in value.split(","))
        parsed = {k.strip(): v.strip() for k, sep, v in pairs if sep and k.strip()}
    if not isinstance(parsed, dict):
        return None
    return _bounded(parsed)


def body_tags(body: dict[str, Any], header_tags: dict[str, Any] | None) -> dict[str, Any] | None:
    """The request's `metadata` pairs merged under the header's tags."""
    metadata = body.get("metadata")
    if not isinstance(metadata, dict) or not metadata:
        return header_tags
    return _bounded({**metadata, **(header_tags or {})})


def body_session(body: dict[str, Any]) -> str | None:
    metadata = body.get("metadata")
    if not isinstance(metadata, dict):
        return None
    for key in SESSION_KEYS:
        value = metadata.get(key)
        if isinstance(value, str) and value:
            return value[:TAG_CHARS]
    return None


def body_user(body: dict[str, Any]) -> str | None:
    """`user`, else the Responses API's `safety_identifier` (OpenAI's successor to `user`)."""
    for key in ("user", "safety_identifier"):
        value = body.get(key)
        if isinstance(value, str) and value:
            return value
    return None
