"""What of an exchange is stored: sampling, opt-out, redaction and size caps (pure)."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Any

import orjson

from gateway.config import CaptureConfig
from gateway.redact import RedactPattern, redact_bytes, redact_text
from gateway.routing import unit_point

INLINE_BYTES = 64 * 1024  # bodies larger than this are redacted off the event loop
PSEUDONYM_HEX = 12  # 48 bits: distinct for millions of ids
CUT_MARGIN = 4096  # a cut body's head is redacted this far past the cut, so no match is split


@dataclass(frozen=True)
class Redactor:
    rules: tuple[RedactPattern, ...]
    pseudonym_key: bytes | None = None  # for identifiers the rules match (see `identifier`)

    @classmethod
    def from_config(cls, config: CaptureConfig, pseudonym_key: str | None = None) -> Redactor:
        rules = tuple(RedactPattern(r.pattern, r.replace) for r in config.redact)
        return cls(rules, pseudonym_key.encode() if pseudonym_key else None)

    def __bool__(self) -> bool:
        return bool(self.rules)

    def text(self, value: str) -> str:
        return redact_text(self.rules, value)

    def identifier(self, value: str | None) -> str | None:
        """A user or session id: kept when no rule matches; when one does, the redacted text
        plus a keyed pseudonym of the original (`[EMAIL]~3f9a0c1d2e4b`), so two users stay two
        users (per-user caps, the split by user) and the value cannot be recovered by guessing
        without the key. Without a key every matched id becomes the same redacted text."""
        if value is None or not self.rules:
            return value
        redacted = self.text(value)
        if redacted == value or self.pseudonym_key is None:
            return redacted
        digest = hmac.new(self.pseudonym_key, value.encode(), hashlib.sha256).hexdigest()
        return f"{redacted}~{digest[:PSEUDONYM_HEX]}"

    def value(self, value: Any) -> Any:
        """Redact every string inside a JSON value (keys are left alone)."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, list):
            return [self.value(v) for v in value]
        if isinstance(value, dict):
            return {k: self.value(v) for k, v in value.items()}
        return value


def should_capture(
    sample_rate: float, request_id: str, opt_out_value: str | None
) -> tuple[bool, str | None]:
    """(capture?, reason when not). Sampling is by request id, so it is reproducible."""
    if opt_out_value is not None and opt_out_value.strip().lower() not in ("", "0", "false"):
        return False, "opt_out"
    if sample_rate >= 1.0:
        return True, None
    if sample_rate <= 0.0 or unit_point("capture", request_id) >= sample_rate:
        return False, "sampled_out"
    return True, None


def stored_body(value: Any, raw: bytes | None, redactor: Redactor, max_bytes: int) -> Any:
    """The JSON to store for a body: redacted, and capped at max_bytes.

    With no redaction, the client's own bytes are embedded as they came (no re-encoding on the
    hot path). A body over the cap keeps its first max_bytes as text and says it was cut; only
    that head is redacted, so the work is bounded by the cap whatever the body's size. A large
    body comes back as a `PendingBody`: redacted, encoded and spooled off the event loop
    (LogWriter.submit_soon).
    """
    if min(len(raw) if raw is not None else text_size(value), max_bytes) > INLINE_BYTES:
        return PendingBody(value, raw, redactor, max_bytes)  # also encoded and spooled there
    return prepared_body(value, orjson.dumps(value) if raw is None else raw, redactor, max_bytes)


def text_size(value: Any, limit: int = INLINE_BYTES) -> int:
    """About how many bytes a JSON value's strings hold; stops counting past `limit`."""
    size, stack = 0, [value]
    while stack and size <= limit:
        item = stack.pop()
        if isinstance(item, str):
            size += len(item)
        elif isinstance(item, dict):
            stack.extend(item.values())
            size += len(item)
        elif isinstance(item, list):
            stack.extend(item)
            size += len(item)
    return size


def prepared_body(value: Any, raw: bytes, redactor: Redactor, max_bytes: int) -> Any:
    if len(raw) > max_bytes:
        head = raw[: max_bytes + CUT_MARGIN] if redactor else raw
        if redactor:
            head = redact_bytes(redactor.rules, head)
        text = head[:max_bytes].decode("utf-8", errors="ignore")
        return {"truncated": True, "original_bytes": len(raw), "head": text}
    if not redactor:
        return orjson.Fragment(raw)
    redacted = orjson.dumps(redactor.value(value))
    if len(redacted) > max_bytes:  # replacements longer than what they replaced
        return prepared_body(None, redacted, Redactor(()), max_bytes)
    return orjson.Fragment(redacted)


class PendingBody:
    """A body whose redaction is left to a worker thread: `prepared()` gives the JSON to store.

    Not a dataclass: orjson would encode one field by field instead of asking `default`.
    """

    __slots__ = ("max_bytes", "raw", "redactor", "value")

    def __init__(self, value: Any, raw: bytes | None, redactor: Redactor, max_bytes: int) -> None:
        self.value, self.raw, self.redactor, self.max_bytes = value, raw, redactor, max_bytes

    def prepared(self) -> Any:
        raw = orjson.dumps(self.value) if self.raw is None else self.raw
        return prepared_body(self.value, raw, self.redactor, self.max_bytes)


def stored_text(data: bytes, redactor: Redactor, max_bytes: int) -> Any:
    """A body that is not JSON, stored as a JSON string: redacted and capped like `stored_body`.

    Only the head that is kept is decoded and redacted, so a 10 MB answer costs what its
    first max_bytes do.
    """
    if len(data) <= max_bytes:
        return stored_body(data.decode("utf-8", errors="replace"), None, redactor, max_bytes)
    head = data[:max_bytes].decode("utf-8", errors="ignore")
    head = redactor.text(head) if redactor else head
    return {"truncated": True, "original_bytes": len(data), "head": head}
