"""Upstream answers checked before they pass as success: a 200 must be what its API promises (pure).

A non-streamed chat/completions/responses answer must be a JSON object; a stream must open
like server-sent events and carry JSON in every `data:` line. Anything else is the upstream's
fault, not the client's: it becomes a 502 in OpenAI's error shape and the row is marked failed.
"""

from __future__ import annotations

from typing import Any

import orjson

from gateway.errors import UpstreamUnavailable

_SSE_FIELDS = (b"data:", b"event:", b"id:", b"retry:", b":")
MAX_EVENT_BYTES = 8 * 1024 * 1024  # one server-sent event; a stream without breaks is cut here
ERROR_CHARS = 4096  # the `error` column keeps this much of a message


def json_object(data: bytes) -> dict[str, Any] | None:
    """The body as a JSON object, or None when it is not one (not JSON, truncated, a list)."""
    try:
        parsed = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    return parsed if isinstance(parsed, dict) else None


def looks_like_sse(first: bytes) -> bool:
    """Whether the first bytes of a stream open a server-sent event."""
    return first.lstrip().startswith(_SSE_FIELDS)


def _head(data: bytes) -> str:
    text = data[:120].decode("utf-8", errors="replace")
    return repr(text) + ("..." if len(data) > 120 else "")


def bad_answer(name: str, status: int, content_type: str, data: bytes) -> UpstreamUnavailable:
    """The 502 for a body that is not the JSON object its status promised."""
    what = "an empty body" if not data else f"{len(data)} bytes of {content_type or 'no type'}"
    return UpstreamUnavailable(
        f"upstream {name!r} answered {status} with {what} that is not a JSON object "
        f"(starts {_head(data)})",
        code="upstream_bad_response",
    )


def bad_stream(name: str, data: bytes, why: str) -> UpstreamUnavailable:
    return UpstreamUnavailable(
        f"upstream {name!r} sent a malformed event stream: {why} (starts {_head(data)})",
        code="upstream_bad_stream",
    )


def error_text(status: int, content_type: str, data: bytes, parsed: Any) -> str:
    """The `error` column for a non-200 answer: its `error` member, else what came back.

    A body that is not JSON is already stored (capped) as the response; the error says what it
    was instead of storing it a second time.
    """
    if isinstance(parsed, dict):
        return orjson.dumps(parsed.get("error", parsed)).decode()
    return f"upstream answered {status} with {len(data)} bytes of {content_type or 'no type'}"


def capped(text: str | None, limit: int = ERROR_CHARS) -> str | None:
    if text is None or len(text) <= limit:
        return text
    return f"{text[:limit]}... [{len(text) - limit} more characters cut]"
