"""A hostile OpenAI-compatible upstream for fault tests: huge answers and odd usage on request.

The request says what to do (unknown fields pass through the gateway untouched):
  `x_answer_bytes`: the answer's content is that long, long runs of letters with e-mail
      addresses between them (what made backtracking redaction quadratic);
  `x_usage`: any JSON, sent back as the answer's `usage` (streams: in the last chunk).
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

EMAIL = "bob.smith@example.com"
CHUNK = 64 * 1024


@functools.cache
def hostile_text(size: int) -> str:
    """`size` characters: the first half one run of letters, then letters and addresses."""
    run = "A" * (size // 2)
    unit = "x" * 2000 + f" {EMAIL} "
    rest = (unit * (size // len(unit) + 1))[: size - len(run)]
    return run + rest


def completion(content: str, usage: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-hostile",
        "object": "chat.completion",
        "created": 0,
        "model": "hostile",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
            }
        ],
        "usage": usage,
    }


@functools.lru_cache(maxsize=4)
def answer_bytes(content: str, usage: bytes) -> bytes:
    """A non-streamed answer, encoded once per content and usage (the fault tests repeat them)."""
    return orjson.dumps(completion(content, orjson.loads(usage)))


def chunk(delta: dict[str, Any], finish: str | None = None, usage: Any = None) -> bytes:
    payload: dict[str, Any] = {
        "id": "chatcmpl-hostile",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "hostile",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    if usage is not None:
        payload["usage"] = usage
    return b"data: " + orjson.dumps(payload) + b"\n\n"


async def chat(request: Request) -> Response:
    body = orjson.loads(await request.body())
    content = hostile_text(int(body.get("x_answer_bytes", 0))) or "ok"
    usage = body.get("x_usage", {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4})
    if not body.get("stream"):
        return Response(answer_bytes(content, orjson.dumps(usage)), media_type="application/json")

    async def events() -> AsyncIterator[bytes]:
        yield chunk({"role": "assistant", "content": ""})
        for start in range(0, len(content), CHUNK):
            yield chunk({"content": content[start : start + CHUNK]})
        yield chunk({}, "stop", usage)
        yield b"data: [DONE]\n\n"

    return StreamingResponse(events(), media_type="text/event-stream")


def create_hostile_app() -> Starlette:
    return Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])])
