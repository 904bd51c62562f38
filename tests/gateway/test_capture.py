"""Capture policy: opt-out, sampling, redaction and caps, table-driven."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import orjson
import pytest

from gateway.capture import Redactor, should_capture, stored_body
from gateway.config import CaptureConfig


@pytest.mark.parametrize(
    ("rate", "opt_out", "expected"),
    [
        (1.0, None, (True, None)),
        (1.0, "1", (False, "opt_out")),
        (1.0, "true", (False, "opt_out")),
        (1.0, "0", (True, None)),
        (1.0, "false", (True, None)),
        (0.0, None, (False, "sampled_out")),
    ],
)
def test_should_capture(
    rate: float, opt_out: str | None, expected: tuple[bool, str | None]
) -> None:
    assert should_capture(rate, "req_1", opt_out) == expected


def test_sampling_keeps_about_the_rate_and_is_reproducible() -> None:
    ids = [f"req_{i}" for i in range(5000)]
    kept = [i for i in ids if should_capture(0.2, i, None)[0]]
    assert 0.17 < len(kept) / len(ids) < 0.23
    assert kept == [i for i in ids if should_capture(0.2, i, None)[0]]


REDACTOR = Redactor.from_config(
    CaptureConfig.model_validate(
        {
            "redact": [
                {"pattern": r"[\w.+-]+@[\w-]+\.[\w.]+", "replace": "[EMAIL]"},
                {"pattern": r"\b\d{4}(?: ?\d{4}){3}\b", "replace": "[CARD]"},
            ]
        }
    )
)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("mail me at a.b@example.com", "mail me at [EMAIL]"),
        (
            {"messages": [{"role": "user", "content": "card 4111 1111 1111 1111"}]},
            {"messages": [{"role": "user", "content": "card [CARD]"}]},
        ),
        ({"a@b.co": 1}, {"a@b.co": 1}),  # keys are left alone
        ([1, None, True], [1, None, True]),
    ],
)
def test_redaction_reaches_every_string(value: Any, expected: Any) -> None:
    assert REDACTOR.value(value) == expected


def test_stored_body_embeds_raw_bytes_without_rules() -> None:
    raw = b'{"model":"m",  "x": 1}'
    stored = stored_body(orjson.loads(raw), raw, Redactor(()), 1000)
    assert orjson.dumps({"b": stored}) == b'{"b":' + raw + b"}"


def test_stored_body_redacts_then_caps() -> None:
    value = {"content": "x@y.io " + "a" * 100}
    assert orjson.loads(orjson.dumps(stored_body(value, None, REDACTOR, 1000))) == {
        "content": "[EMAIL] " + "a" * 100
    }
    capped = stored_body(value, None, REDACTOR, 20)
    assert capped["truncated"] is True and capped["original_bytes"] > 20
    assert len(capped["head"]) == 20


KEY = b"pseudonym-secret"
KEYED = Redactor(REDACTOR.rules, KEY)


def hmac12(value: str, key: bytes = KEY) -> str:
    return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()[:12]


@pytest.mark.parametrize(
    ("redactor", "value", "expected"),
    [
        (REDACTOR, None, None),
        (REDACTOR, "user-42", "user-42"),  # no rule matches: kept
        (REDACTOR, "ann@example.com", "[EMAIL]"),  # no key: every matched id collapses
        (KEYED, "user-42", "user-42"),
        (KEYED, "ann@example.com", f"[EMAIL]~{hmac12('ann@example.com')}"),
        (KEYED, "bob@example.com", f"[EMAIL]~{hmac12('bob@example.com')}"),
        (KEYED, "s ann@example.com", f"s [EMAIL]~{hmac12('s ann@example.com')}"),
        (Redactor((), KEY), "ann@example.com", "ann@example.com"),  # no rules at all
    ],
)
def test_identifier(redactor: Redactor, value: str | None, expected: str | None) -> None:
    assert redactor.identifier(value) == expected


def test_keyed_pseudonyms_keep_users_apart_and_depend_on_the_key() -> None:
    ann, bob = (KEYED.identifier(v) for v in ("ann@example.com", "bob@example.com"))
    assert ann != bob and ann == KEYED.identifier("ann@example.com")
    assert Redactor(REDACTOR.rules, b"another-secret").identifier("ann@example.com") != ann
