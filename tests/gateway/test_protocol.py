"""What the gateway refuses itself, and with which message and param."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.errors import InvalidRequest
from gateway.protocol import parse_body, validate


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"", "body is empty"),
        (b"{", "not valid JSON"),
        (b"[1]", "must be a JSON object, got list"),
        (b'"x"', "got str"),
        (b"\xff\xfe", "not valid JSON"),
    ],
)
def test_parse_body_errors(raw: bytes, message: str) -> None:
    with pytest.raises(InvalidRequest, match=message):
        parse_body(raw)


M = [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize(
    ("body", "endpoint", "param"),
    [
        ({"messages": M}, "chat", "model"),
        ({"model": 3, "messages": M}, "chat", "model"),
        ({"model": "m"}, "chat", "messages"),
        ({"model": "m", "messages": []}, "chat", "messages"),
        ({"model": "m", "messages": "hi"}, "chat", "messages"),
        ({"model": "m", "messages": [{"content": "x"}]}, "chat", "messages.[0]"),
        ({"model": "m", "messages": M, "stream": "yes"}, "chat", "stream"),
        ({"model": "m", "messages": M, "max_tokens": -1}, "chat", "max_tokens"),
        ({"model": "m", "messages": M, "max_tokens": 1.5}, "chat", "max_tokens"),
        ({"model": "m", "messages": M, "n": True}, "chat", "n"),
        ({"model": "m", "messages": M, "user": 7}, "chat", "user"),
        ({"model": "m"}, "completions", "prompt"),
        ({"model": "m", "prompt": 5}, "completions", "prompt"),
    ],
)
def test_invalid_bodies_name_the_param(body: dict[str, Any], endpoint: str, param: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        validate(body, endpoint)
    assert info.value.param == param
    assert info.value.status == 400


@pytest.mark.parametrize(
    ("body", "endpoint"),
    [
        ({"model": "m", "messages": M, "some_new_field": {"x": 1}}, "chat"),
        ({"model": "m", "prompt": ["a", "b"], "max_tokens": 0}, "completions"),
    ],
)
def test_valid_bodies_pass(body: dict[str, Any], endpoint: str) -> None:
    validate(body, endpoint)
