"""What of an exchange is stored: sampling, opt-out, redaction and size caps (pure)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson

from gateway.config import CaptureConfig
from gateway.routing import unit_point


@dataclass(frozen=True)
class Redactor:
    rules: tuple[tuple[re.Pattern[str], str], ...]

    @classmethod
    def from_config(cls, config: CaptureConfig) -> Redactor:
        return cls(tuple((re.compile(r.pattern), r.replace) for r in config.redact))

    def __bool__(self) -> bool:
        return bool(self.rules)

    def text(self, value: str) -> str:
        for pattern, replace in self.rules:
            value = pattern.sub(replace, value)
        return value

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
    hot path). A body over the cap keeps its first max_bytes as text and says it was cut.
    """
    if redactor:
        value = redactor.value(value)
        raw = None
    if raw is None:
        raw = orjson.dumps(value)
    if len(raw) > max_bytes:
        head = raw[:max_bytes].decode("utf-8", errors="ignore")
        return {"truncated": True, "original_bytes": len(raw), "head": head}
    return orjson.Fragment(raw)
