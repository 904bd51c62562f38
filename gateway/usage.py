"""Token counts from an upstream, treated as untrusted: checked, and counted when missing (pure).

A count is kept when it is an integer in [0, 2^31) (the store's INTEGER); anything else
(negative, a string, a list, a float, a bool, too large) is logged as NULL with a note saying
what the teacher sent, and the answer still reaches the client. A stream whose teacher sent no
usage (`stream_usage: false`, or a teacher that ignores `stream_options`) gets its
completion tokens counted as the deltas that carried content (`StreamAssembler.pieces`):
providers send about one token a delta; the prompt count stays NULL (no tokenizer here), and
the row says so.
"""

from __future__ import annotations

from typing import Any

MAX_COUNT = 2**31 - 1
COUNTED = ("prompt_tokens", "completion_tokens", "total_tokens")
STREAM_COUNT_NOTE = (
    "usage counted by the gateway: completion_tokens = content chunks in the stream "
    "(the teacher sent no usage); prompt_tokens unknown"
)


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_COUNT


def checked_usage(usage: Any) -> tuple[dict[str, int], list[str]]:
    """(the token counts that can be trusted, a note for each one that cannot)."""
    if usage is None:
        return {}, []
    if not isinstance(usage, dict):
        return {}, [f"usage: {_shown(usage)} is not an object; token counts stored NULL"]
    counts: dict[str, int] = {}
    notes: list[str] = []
    for key in COUNTED:
        value = usage.get(key)
        if value is None:
            continue
        if _count(value):
            counts[key] = value
        else:
            notes.append(f"usage.{key}: {_shown(value)} is not a token count; stored NULL")
    return counts, notes


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
