"""The OpenAI request surface the gateway checks itself; everything else passes through untouched.

Only what the gateway needs to route and log is validated here (cheaply, on a parsed dict):
the upstream remains the judge of every other field.
"""

from __future__ import annotations

from typing import Any

import orjson

from gateway.errors import InvalidRequest

CHAT = "chat"
COMPLETIONS = "completions"
RESPONSES = "responses"
_NON_NEGATIVE_INTS = ("max_tokens", "max_completion_tokens", "n", "top_logprobs")
# orjson reads 1024 levels of nesting but writes only 254: a deeper body could be parsed,
# then fail when the gateway re-encodes it (a 500 after the upstream answered).
MAX_DEPTH = 254


def parse_body(raw: bytes) -> dict[str, Any]:
    """The request body as a JSON object, or a 400 that says what is wrong with it."""
    if not raw:
        raise InvalidRequest(
            "The request body is empty; send a JSON object with 'model' and 'messages'."
        )
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(
            f"The request body is not valid JSON ({exc.msg} at position {exc.pos}); "
            "send a JSON object with 'model' and 'messages'."
        ) from None
    if not isinstance(body, dict):
        raise InvalidRequest(f"The request body must be a JSON object, got {type(body).__name__}.")
    # Only a body with that many brackets can be that deep: the common case costs two counts.
    if raw.count(b"[") + raw.count(b"{") > MAX_DEPTH:
        try:
            orjson.dumps(body)
        except orjson.JSONEncodeError:
            raise InvalidRequest(
                f"The request body is nested more than {MAX_DEPTH} levels deep; flatten it."
            ) from None
    return body


def validate(body: dict[str, Any], endpoint: str) -> None:
    """Raise InvalidRequest naming the first field that cannot be forwarded."""
    model = body.get("model")
    if model is None:
        raise InvalidRequest("you must provide a model parameter", param="model")
    if not isinstance(model, str) or not model:
        raise InvalidRequest("'model' must be a non-empty string", param="model")
    if endpoint == CHAT:
        messages = body.get("messages")
        if messages is None:
            raise InvalidRequest("'messages' is a required property", param="messages")
        if not isinstance(messages, list) or not messages:
            raise InvalidRequest("'messages' must be a non-empty array", param="messages")
        for i, message in enumerate(messages):
            if not isinstance(message, dict) or not isinstance(message.get("role"), str):
                raise InvalidRequest(
                    f"messages[{i}] must be an object with a string 'role'",
                    param=f"messages.[{i}]",
                )
    elif endpoint == RESPONSES:
        _validate_responses(body)
    else:
        prompt = body.get("prompt")
        if prompt is None:
            raise InvalidRequest("'prompt' is a required property", param="prompt")
        if not isinstance(prompt, str | list):
            raise InvalidRequest("'prompt' must be a string or an array", param="prompt")
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise InvalidRequest("'stream' must be a boolean", param="stream")
    for name in _NON_NEGATIVE_INTS:
        value = body.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise InvalidRequest(f"'{name}' must be an integer", param=name)
        if isinstance(value, int) and value < 0:
            raise InvalidRequest(f"'{name}' must be >= 0, got {value}", param=name)
    user = body.get("user")
    if user is not None and not isinstance(user, str):
        raise InvalidRequest("'user' must be a string", param="user")
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise InvalidRequest("'stream_options' must be an object", param="stream_options")


def _validate_responses(body: dict[str, Any]) -> None:
    """`input` is optional (a stored `prompt` or `previous_response_id` may stand in)."""
    items = body.get("input")
    if items is not None and not isinstance(items, str | list):
        raise InvalidRequest("'input' must be a string or an array of input items", param="input")
    for i, item in enumerate(items if isinstance(items, list) else ()):
        if not isinstance(item, dict):
            raise InvalidRequest(f"input[{i}] must be an object", param=f"input.[{i}]")
    metadata = body.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise InvalidRequest("'metadata' must be an object", param="metadata")


def wants_json(body: dict[str, Any]) -> bool:
    fmt = body.get("response_format")
    return isinstance(fmt, dict) and fmt.get("type") in ("json_object", "json_schema")


def wants_usage(body: dict[str, Any]) -> bool:
    options = body.get("stream_options")
    return isinstance(options, dict) and bool(options.get("include_usage"))
