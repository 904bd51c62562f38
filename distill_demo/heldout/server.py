"""The held-out tasks' stand-in teacher: an OpenAI-compatible chat endpoint (non-streaming).

    python -m distill_demo.heldout.server --port 9100

Answers a request by its system prompt (see `tasks.answer`); anything else is a 400 that says
which prompts it knows. Usage counts words, as the demo teacher does.
"""

from __future__ import annotations

import argparse
import time
import uuid
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from distill_demo.heldout import tasks


def _error(status: int, message: str) -> JSONResponse:
    body = {"error": {"message": message, "type": "invalid_request_error"}}
    return JSONResponse(body, status_code=status)


def _messages(body: Any) -> tuple[str, str] | str:
    """(system prompt, last user message), or why the body is not a chat request."""
    if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
        return "the body must be a JSON object with a `messages` list"
    system = user = None
    for message in body["messages"]:
        if not isinstance(message, dict) or not isinstance(message.get("content"), str):
            return "each message needs a string `content`"
        if message.get("role") == "system":
            system = message["content"]
        elif message.get("role") == "user":
            user = message["content"]
    if system is None or user is None:
        return "send a system message (the task's prompt) and a user message"
    return system, user


async def chat(request: Request) -> Response:
    try:
        body = await request.json()
    except ValueError:
        return _error(400, "the body is not JSON")
    parsed = _messages(body)
    if isinstance(parsed, str):
        return _error(400, parsed)
    system, user = parsed
    answer = tasks.answer(system, user)
    if answer is None:
        known = ", ".join(t.name for t in tasks.TASKS.values())
        return _error(400, f"unknown system prompt: this teacher knows the tasks {known}")
    prompt_tokens = len(system.split()) + len(user.split())
    completion_tokens = len(answer.split())
    return JSONResponse(
        {
            "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "heldout-teacher"),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": answer},
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }
    )


async def models(request: Request) -> Response:
    data = [{"id": name, "object": "model", "owned_by": "distill"} for name in tasks.TASKS]
    return JSONResponse({"object": "list", "data": data})


async def health(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


def create_app() -> Starlette:
    return Starlette(
        routes=[
            Route("/v1/chat/completions", chat, methods=["POST"]),
            Route("/v1/models", models, methods=["GET"]),
            Route("/health", health, methods=["GET"]),
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100)
    args = parser.parse_args()
    uvicorn.run(create_app(), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
