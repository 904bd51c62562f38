"""The demo teacher: an OpenAI-compatible server that answers the triage task deterministically.

It stands in for a paid API in tests and the offline demo. The requested model name selects
behaviour, so one server covers every fault a test needs (as TensorZero's dummy provider does):

    <anything>            answer normally
    ...-slow-<seconds>    wait before answering (e.g. teacher-slow-2.5)
    ...-error             500 with an OpenAI error body
    ...-overloaded        429 rate limit error
    ...-cut               streams: close the connection after the first content chunk
    ...-drip-<seconds>    streams: one chunk every <seconds>
    ...-echo              answer with the request body it received, as JSON text
    ...-refuse            refuse (`message.refusal`, `delta.refusal`, a Responses refusal part)

Tool calls, logprobs (replies.py) and `POST /v1/responses` (responses_api.py) behave as
OpenAI's API does. Compression, provider headers, odd usage and garbage: see provider.py.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from distill_demo.teacher import provider, replies, responses_api, task
from distill_demo.teacher.data_tools import data_tool_answer


@dataclass(frozen=True)
class TeacherSettings:
    error_rate: float = 0.0  # share of prompts answered with a wrong label (deterministic)
    seed: str = "teacher"
    latency_s: float = 0.0  # added to every answer
    name: str = "distill-teacher"
    models: tuple[str, ...] = ("gpt-4o",)  # what GET /v1/models lists


def _error(status: int, message: str, type_: str, param: str | None = None) -> Response:
    body = {"error": {"message": message, "type": type_, "param": param, "code": None}}
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def count_tokens(text: str) -> int:
    """A deterministic stand-in for a tokenizer: about four characters a token."""
    return max(1, (len(text) + 3) // 4) if text else 0


def _behaviour(model: str) -> tuple[str, float]:
    match = re.search(r"-(slow|drip)-([0-9.]+)$", model)
    if match:
        return match[1], float(match[2])
    for name in ("error", "overloaded", "cut", "echo", "refuse"):
        if model.endswith(f"-{name}"):
            return name, 0.0
    return "normal", 0.0


def _prompt_text(body: dict[str, Any], chat: bool) -> tuple[str, bool]:
    """(the ticket to classify, whether JSON was asked for)."""
    json_mode = isinstance(body.get("response_format"), dict) and body["response_format"].get(
        "type"
    ) in ("json_object", "json_schema")
    json_mode = json_mode or responses_api.wants_json(body)
    if not chat:
        prompt = body.get("prompt")
        return (prompt if isinstance(prompt, str) else " ".join(map(str, prompt or []))), json_mode
    text, system = "", ""
    for message in body["messages"]:
        content = message.get("content")
        if isinstance(content, list):  # content parts
            content = " ".join(p.get("text", "") for p in content if isinstance(p, dict))
        if message.get("role") == "user" and isinstance(content, str):
            text = content
        elif message.get("role") == "system" and isinstance(content, str):
            system = content
    return text, json_mode or "json" in system.lower()


def _data_tool_reply(body: dict[str, Any], chat: bool, settings: TeacherSettings) -> str | None:
    """The trainer's explain / write-like-these / judge prompts (see data_tools); else None."""
    if not chat:
        return None
    system = next(
        (
            m.get("content")
            for m in body["messages"]
            if isinstance(m, dict) and m.get("role") == "system"
        ),
        None,
    )
    user = next(
        (
            m.get("content")
            for m in reversed(body["messages"])
            if isinstance(m, dict) and m.get("role") == "user"
        ),
        None,
    )
    if not isinstance(system, str) or not isinstance(user, str):
        return None
    seed = body.get("seed")
    return data_tool_answer(
        system,
        user,
        request_seed=seed if isinstance(seed, int) else None,
        error_rate=settings.error_rate,
        seed=settings.seed,
    )


def _validate(body: Any, chat: bool) -> Response | None:
    if not isinstance(body, dict):
        return _error(400, "Request body must be a JSON object", "invalid_request_error")
    if not isinstance(body.get("model"), str):
        return _error(400, "you must provide a model parameter", "invalid_request_error", "model")
    if chat:
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return _error(400, "'messages' is required", "invalid_request_error", "messages")
    elif body.get("prompt") is None:
        return _error(400, "'prompt' is required", "invalid_request_error", "prompt")
    max_tokens = body.get("max_tokens", body.get("max_completion_tokens"))
    if max_tokens is not None and (not isinstance(max_tokens, int) or max_tokens < 1):
        return _error(
            400, "max_tokens must be a positive integer", "invalid_request_error", "max_tokens"
        )
    return None


def _tool_result(messages: Any) -> str | None:
    """The trailing `tool` turns' contents (the results the model asked for), or None."""
    results: list[str] = []
    for message in reversed(messages if isinstance(messages, list) else []):
        if not isinstance(message, dict) or message.get("role") != "tool":
            break
        content = message.get("content")
        results.insert(0, content if isinstance(content, str) else orjson.dumps(content).decode())
    return "; ".join(results) if results else None


def _wants_logprobs(body: dict[str, Any], chat: bool, responses: bool) -> bool:
    if responses:
        return responses_api.wants_logprobs(body)
    value = body.get("logprobs")
    if chat:
        return value is True
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _top_logprobs(body: dict[str, Any], chat: bool) -> int:
    value = body.get("top_logprobs") if chat else body.get("logprobs")
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def create_teacher_app(settings: TeacherSettings | None = None) -> Starlette:
    settings = settings or TeacherSettings()
    stats = {"requests": 0}

    async def completion(request: Request) -> Response:
        started = time.perf_counter()
        response = await answer(request)
        model = getattr(request.state, "model", "")
        return provider.as_provider(response, model, request.headers, started)

    async def answer(request: Request) -> Response:
        responses = request.url.path.endswith("/responses")
        chat = responses or request.url.path.endswith("/chat/completions")
        stats["requests"] += 1
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            return _error(
                400, "We could not parse the JSON body of your request.", "invalid_request_error"
            )
        if responses and isinstance(body, dict):
            if not isinstance(body.get("input"), str | list) or not body["input"]:
                return _error(400, "'input' is required", "invalid_request_error", "input")
            body = dict(body, messages=responses_api.input_messages(body))
        invalid = _validate(body, chat)
        if invalid is not None:
            return invalid
        model: str = body["model"]
        request.state.model = model
        behaviour, amount = _behaviour(model)
        if settings.latency_s:
            await asyncio.sleep(settings.latency_s)
        if behaviour == "slow":
            await asyncio.sleep(amount)
        if behaviour == "error":
            return _error(500, "The teacher had an internal error (simulated).", "server_error")
        if behaviour == "overloaded":
            return _error(429, "Rate limit reached (simulated).", "rate_limit_error")

        prompt, json_mode = _prompt_text(body, chat)
        answer = task.answer(
            prompt, json_mode=json_mode, error_rate=settings.error_rate, seed=settings.seed
        )
        answer = _data_tool_reply(body, chat, settings) or answer
        if behaviour == "echo":  # what arrived, headers that matter included
            seen = dict(body, __authorization=request.headers.get("authorization"))
            if responses:
                seen.pop("messages")
            answer = orjson.dumps(seen, option=orjson.OPT_SORT_KEYS).decode()
        messages = body.get("messages") if chat else None
        tool_result = _tool_result(messages)
        reply = replies.plan(
            body,
            answer,
            prompt,
            refuse=behaviour == "refuse",
            tool_result=tool_result,
            logprobs=_wants_logprobs(body, chat, responses),
            top=_top_logprobs(body, chat),
        )
        sent = body.pop("messages") if responses else body.get("messages")
        prompt_tokens = count_tokens(orjson.dumps(body.get("input") or sent or prompt).decode())
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": reply.completion_tokens,
            "total_tokens": prompt_tokens + reply.completion_tokens,
        }
        # The id depends on the request (not on stream_options), so replays are comparable.
        keyed = {k: v for k, v in body.items() if k != "stream_options"}
        digest = hashlib.sha256(orjson.dumps(keyed, option=orjson.OPT_SORT_KEYS)).hexdigest()
        created = int(time.time())
        if responses:
            payload = responses_api.response_object(
                body, reply, digest[:24], created, prompt_tokens
            )
            if not body.get("stream"):
                return Response(orjson.dumps(payload), media_type="application/json")
            events = responses_api.events(payload, reply)
            drip = amount if behaviour == "drip" else 0.0
            return StreamingResponse(
                responses_api.stream(events, drip_s=drip, cut=behaviour == "cut"),
                media_type="text/event-stream",
            )
        ident = ("chatcmpl-" if chat else "cmpl-") + digest[:24]
        if body.get("stream"):
            options = body.get("stream_options") or {}
            return StreamingResponse(
                _stream(
                    ident,
                    created,
                    model,
                    chat,
                    replies.chunk_choices(reply, chat),
                    usage,
                    bool(options.get("include_usage")),
                    behaviour,
                    amount,
                ),
                media_type="text/event-stream",
            )
        payload = {
            "id": ident,
            "object": "chat.completion" if chat else "text_completion",
            "created": created,
            "model": model,
            "choices": [replies.choice(reply, chat)],
            "usage": usage,
        }
        return Response(orjson.dumps(payload), media_type="application/json")

    async def models(request: Request) -> Response:
        data = [
            {"id": m, "object": "model", "created": 0, "owned_by": settings.name}
            for m in settings.models
        ]
        return Response(
            orjson.dumps({"object": "list", "data": data}), media_type="application/json"
        )

    async def health(request: Request) -> Response:
        return Response(orjson.dumps({"status": "ok", **stats}), media_type="application/json")

    return Starlette(
        routes=[
            Route("/v1/chat/completions", completion, methods=["POST"]),
            Route("/v1/completions", completion, methods=["POST"]),
            Route("/v1/responses", completion, methods=["POST"]),
            Route("/v1/models", models, methods=["GET"]),
            Route("/health", health, methods=["GET"]),
            *provider.api_routes(),  # embeddings, moderations, models/{id}, files
        ]
    )


async def _stream(
    ident: str,
    created: int,
    model: str,
    chat: bool,
    choices: list[dict[str, Any]],
    usage: dict[str, int],
    include_usage: bool,
    behaviour: str,
    amount: float,
) -> AsyncIterator[bytes]:
    obj = "chat.completion.chunk" if chat else "text_completion"

    def event(choice: dict[str, Any] | None, extra: dict[str, Any] | None = None) -> bytes:
        payload = {
            "id": ident,
            "object": obj,
            "created": created,
            "model": model,
            "choices": [choice] if choice else [],
            **(extra or {}),
        }
        return b"data: " + orjson.dumps(payload) + b"\n\n"

    first_content = 1 if chat else 0  # chat opens with a role-only chunk
    for i, choice in enumerate(choices):
        if behaviour == "drip" and first_content <= i < len(choices) - 1:
            await asyncio.sleep(amount)
        yield event(choice)
        if behaviour == "cut" and i == first_content:
            raise ConnectionResetError("simulated: stream cut mid-way")
    if include_usage:
        yield event(None, {"usage": usage})
    yield b"data: [DONE]\n\n"
