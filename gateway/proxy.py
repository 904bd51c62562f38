"""Serving one OpenAI request: route it, forward it, stream it back, and log the exchange."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import OrderedDict
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any

import orjson
from prometheus_client import Counter, Histogram
from starlette.requests import Request
from starlette.responses import Response

from gateway.answer_check import (
    MAX_EVENT_BYTES,
    bad_answer,
    bad_stream,
    capped,
    error_text,
    json_object,
    looks_like_sse,
)
from gateway.answers import answer_text
from gateway.auth import Authenticator
from gateway.capture import Redactor, should_capture, stored_body, stored_text
from gateway.config import DistillConfig, RouteConfig
from gateway.errors import (
    GatewayError,
    LogUnavailable,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    error_json,
)
from gateway.metrics import Metrics, traffic_of
from gateway.protocol import CHAT, RESPONSES, parse_body, validate, wants_usage
from gateway.responses import (
    ResponsesAssembler,
    continues_stored_state,
    finish_reason,
    output_text,
    token_usage,
)
from gateway.routing import (
    TEACHER,
    Variant,
    choose,
    find_route,
    sticky_key,
    student_weights,
    unit_point,
    variant_for,
)
from gateway.store.writer import LogWriter, spooled
from gateway.stream_response import EventStreamResponse
from gateway.streams import DONE, SSESplitter, StreamAssembler, event_data, sse_event
from gateway.tags import body_session, body_tags, body_user, parse_tags
from gateway.upstream import Upstream, UpstreamReply, map_error
from gateway.usage import STREAM_COUNT_NOTE, checked_usage

log = logging.getLogger("distill.gateway")

REQUEST_ID_HEADER = "x-distill-request-id"
VARIANT_HEADER = "x-distill-variant"
SESSION_HEADER = "x-distill-session"
TAGS_HEADER = "x-distill-tags"
PATHS = {CHAT: "/chat/completions", "completions": "/completions", RESPONSES: "/responses"}
_DONE_EVENT = b"data: [DONE]\n\n"
RECENT_IDS = 20_000  # recent ids for feedback before their rows reach the store (~5 MB)


def _same(value: Any) -> Any:
    return value


def new_request_id() -> str:
    return "req_" + os.urandom(12).hex()  # 0.5 µs; a pooled read saved 0.2 (bench/README.md)


async def _prepended(first: bytes, rest: AsyncGenerator[bytes]) -> AsyncGenerator[bytes]:
    try:
        yield first
        async for chunk in rest:
            yield chunk
    finally:
        await rest.aclose()


@dataclass
class Exchange:
    """What the gateway knows about one attempt at answering a request, for log and metrics."""

    id: str
    endpoint: str
    route: RouteConfig | None
    variant: Variant
    body: dict[str, Any]
    raw: bytes
    stream: bool
    received: float  # perf_counter at arrival
    ts: float  # wall clock at arrival
    pair_id: str  # the primary request's id, shared by its shadow and fallback rows
    kind: str = "primary"
    opt_out: str | None = None  # the capture opt-out header's value
    client: str | None = None  # the name of the client API key used, if keys are on
    user: str | None = None
    session: str | None = None
    tags: dict[str, Any] | None = None
    status: int = 0
    error: str | None = None
    response: Any = None
    ttft_ms: float | None = None
    upstream_ms: float | None = None
    latency_ms: float | None = None
    usage: dict[str, Any] = field(default_factory=dict)
    finish_reason: str | None = None
    answer: str | None = None  # the first choice's text, for shadow agreement
    # False when only the upstream that answered can answer it (a Responses-API continuation)
    mirror: bool = True
    notes: list[str] = field(default_factory=list)  # what the log doubted (requests.notes)
    logged: Any = None  # its row spooled? a bool, or a future (LogWriter.submit_soon)

    @property
    def route_name(self) -> str:
        return self.route.name if self.route else ""


@dataclass
class RouteOverrides:
    """Runtime state that changes without a restart: rollout weights and shadow targets."""

    weights: dict[str, dict[str, float]] = field(default_factory=dict)  # route -> student -> %
    shadow: dict[str, tuple[str, float]] = field(default_factory=dict)  # route -> (student, rate)
    students: dict[str, dict[str, Variant]] = field(default_factory=dict)  # added at runtime

    def variant(self, route: RouteConfig, name: str) -> Variant:
        dynamic = self.students.get(route.name, {}).get(name)
        return dynamic if dynamic is not None else variant_for(route, name)

    def student_weights(self, route: RouteConfig) -> list[tuple[str, float]]:
        weights = student_weights(route, self.weights.get(route.name))
        known = {name for name, _ in weights}
        extra = self.weights.get(route.name, {})  # in the rollout's order: candidate first
        return [(n, w) for n, w in extra.items() if n not in known] + weights


ExchangeHook = Callable[[Exchange], None]


class RouteSeries:
    """One (route, variant)'s labelled metric children, looked up once instead of per request.

    `labels()` validates and hashes its arguments under a lock on every call; at a few
    thousand requests a second that was a tenth of the gateway's CPU (bench/README.md).
    Each child is made on first use, as `labels()` would have, so /metrics shows the same
    series as before.
    """

    def __init__(self, metrics: Metrics, route: str, variant: str, traffic: str) -> None:
        self._metrics, self._route, self._variant = metrics, route, variant
        self._traffic = traffic
        self._requests: dict[int, Counter] = {}  # HTTP status -> child

    def requests(self, status: int) -> Counter:
        child = self._requests.get(status)
        if child is None:
            labels = (self._route, self._variant, self._traffic, str(status))
            child = self._requests[status] = self._metrics.requests.labels(*labels)
        return child

    @cached_property
    def latency(self) -> Histogram:
        return self._metrics.latency.labels(self._route, self._variant, self._traffic)

    @cached_property
    def upstream_latency(self) -> Histogram:
        return self._metrics.upstream_latency.labels(self._route, self._variant, self._traffic)

    @cached_property
    def ttft(self) -> Histogram:
        return self._metrics.ttft.labels(self._route, self._variant, self._traffic)

    @cached_property
    def prompt_tokens(self) -> Counter:
        return self._metrics.tokens.labels(self._route, self._variant, self._traffic, "prompt")

    @cached_property
    def completion_tokens(self) -> Counter:
        return self._metrics.tokens.labels(self._route, self._variant, self._traffic, "completion")

    @cached_property
    def cost(self) -> Counter:
        return self._metrics.cost.labels(self._route, self._variant, self._traffic)


class Proxy:
    def __init__(
        self,
        config: DistillConfig,
        upstreams: Mapping[str, Upstream],
        writer: LogWriter | None,
        metrics: Metrics,
        *,
        replica: str,
        overrides: RouteOverrides | None = None,
        auth: Authenticator | None = None,
    ) -> None:
        self.config = config
        self.upstreams = upstreams
        self.writer = writer
        self.metrics = metrics
        self.replica = replica
        self.overrides = overrides or RouteOverrides()
        self.auth = auth or Authenticator()
        key = os.environ.get(config.capture.pseudonym_key_env)
        self.redactor = Redactor.from_config(config.capture, key)
        if config.capture.redact and not key:
            log.warning(
                "user and session ids a redaction rule matches are all stored as its "
                "replacement, so those users count as one (per-user caps, the split by user): "
                "set %s to a secret, the same on every replica, to store a keyed pseudonym",
                config.capture.pseudonym_key_env,
            )
        self.hooks: list[ExchangeHook] = []  # called with every finished attempt
        self._recent: OrderedDict[str, tuple[str, str]] = OrderedDict()  # id -> route, variant
        self._series: dict[tuple[str, str, str], RouteSeries] = {}  # (route, variant, traffic)

    # -- entry point ---------------------------------------------------------------------------

    async def handle(self, request: Request, endpoint: str) -> Response:
        request_id = new_request_id()
        received, ts = time.perf_counter(), time.time()
        try:
            client = self.auth.check(request.headers.get("authorization"))
            limit = (client and client.max_request_bytes) or self.config.server.max_request_bytes
            raw = await self._read_body(request, limit)
            body = parse_body(raw)
            validate(body, endpoint)
            route = find_route(self.config, body["model"])
            if route is None:
                raise NotFound(
                    f"The model '{body['model']}' does not exist or no route serves it "
                    f"(served: {', '.join(self.served_models()) or 'none'}); "
                    "add it to a route's `match` in distill.yaml",
                    param="model",
                    code="model_not_found",
                )
            headers = request.headers
            session = headers.get(SESSION_HEADER) or body_session(body)
            user = body_user(body)
            variant = self.pick_variant(route, user, session, request_id)
            stateful = endpoint == RESPONSES and continues_stored_state(body)
            if stateful and not (user or session):
                # Without a sticky key a continuation could land on a variant that never saw
                # the response it continues: the teacher holds the state of unkeyed traffic.
                variant = variant_for(route, TEACHER)
            exchange = Exchange(
                id=request_id,
                endpoint=endpoint,
                route=route,
                variant=variant,
                body=body,
                raw=raw,
                stream=bool(body.get("stream")),
                received=received,
                ts=ts,
                pair_id=request_id,
                opt_out=headers.get(self.config.capture.opt_out_header),
                user=user,
                session=session,
                tags=body_tags(body, parse_tags(headers.get(TAGS_HEADER))),
                client=client.name if client else None,
                mirror=not stateful,
            )
            return await self._answer(exchange, headers)
        except GatewayError as exc:
            self.metrics.gateway_errors.labels(exc.code or exc.type).inc()
            return self.error_response(exc, request_id)

    def served_models(self) -> list[str]:
        return [m for r in self.config.routes for m in r.match]

    def pick_variant(
        self, route: RouteConfig, user: object, session: str | None, request_id: str
    ) -> Variant:
        weights = self.overrides.student_weights(route)
        if not any(w for _, w in weights):
            return variant_for(route, TEACHER)
        point = unit_point(route.name, sticky_key(user, session, request_id))
        return self.overrides.variant(route, choose(weights, point))

    @staticmethod
    def error_response(exc: GatewayError, request_id: str) -> Response:
        # x-request-id too: what the SDKs show as the request id of a failed call
        headers = {REQUEST_ID_HEADER: request_id, "x-request-id": request_id}
        if isinstance(exc, RateLimited | LogUnavailable):
            headers["Retry-After"] = str(exc.retry_after)
        return Response(
            error_json(exc),
            status_code=exc.status,
            media_type="application/json",
            headers=headers,
        )

    async def _read_body(self, request: Request, limit: int) -> bytes:
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            raise PayloadTooLarge(
                f"The request body is {declared} bytes; the limit is {limit} "
                "(server.max_request_bytes)",
                code="request_too_large",
            )
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(
                    f"The request body exceeds the limit of {limit} bytes "
                    "(server.max_request_bytes)",
                    code="request_too_large",
                )
            chunks.append(chunk)
        return b"".join(chunks)

    # -- forwarding ----------------------------------------------------------------------------

    def _upstream_body(self, exchange: Exchange) -> bytes:
        body = exchange.body
        # Responses-API streams always end with the usage (in `response.completed`).
        needs_usage = (
            exchange.stream
            and exchange.endpoint != RESPONSES
            and not wants_usage(body)
            and self.upstreams[exchange.variant.upstream].config.stream_usage
        )
        if body.get("model") == exchange.variant.model and not needs_usage:
            return exchange.raw  # nothing to change: forward the client's own bytes
        changed = dict(body, model=exchange.variant.model)
        if needs_usage:
            # Ask for usage so streams are logged with token counts; stripped before the client.
            changed["stream_options"] = {
                **(body.get("stream_options") or {}),
                "include_usage": True,
            }
        return orjson.dumps(changed)

    async def _answer(self, exchange: Exchange, headers: Mapping[str, str]) -> Response:
        # With client keys on, the app's Authorization is the gateway's key: never forwarded.
        authorization = None if self.auth.enabled else headers.get("authorization")
        self.check_log_room(exchange)
        try:
            return await self._attempt(exchange, authorization, headers)
        except GatewayError as exc:
            if exchange.variant.is_teacher or exchange.route is None:
                raise
            if isinstance(exc, LogUnavailable):  # the teacher's answer could not be logged either
                raise
            # A student failed before its first byte: log it, then the teacher answers.
            self.metrics.fallbacks.labels(
                exchange.route_name, exchange.variant.name, exc.code or exc.type
            ).inc()
            fallback = replace(
                exchange,
                id=new_request_id(),
                variant=variant_for(exchange.route, TEACHER),
                kind="fallback",
                usage={},
                error=None,
                response=None,
                ttft_ms=None,
                notes=[],
            )
            response = await self._attempt(fallback, authorization, headers)
            response.headers[REQUEST_ID_HEADER] = exchange.id
            return response

    async def _attempt(
        self,
        exchange: Exchange,
        authorization: str | None,
        client_headers: Mapping[str, str] | None = None,
    ) -> Response:
        upstream = self.upstreams[exchange.variant.upstream]
        path = PATHS[exchange.endpoint]
        sent = time.perf_counter()
        try:
            reply = await upstream.post(
                path,
                self._upstream_body(exchange),
                stream=exchange.stream,
                client_authorization=authorization,
                client_headers=client_headers,
            )
        except GatewayError as exc:
            self._fail(exchange, exc, sent)
            raise
        headers = self._reply_headers(exchange, reply)
        if exchange.stream and reply.status == 200:
            chunks = await self._opened_stream(exchange, reply, sent)
            return EventStreamResponse(
                self._relay_stream(exchange, chunks, sent),
                media_type=reply.content_type,
                headers={**headers, "cache-control": "no-cache"},
            )
        try:
            data = await reply.read()
        except GatewayError as exc:
            self._fail(exchange, exc, sent)
            raise
        parsed = json_object(data)
        if reply.status == 200 and parsed is None:
            bad = bad_answer(upstream.name, reply.status, reply.content_type, data)
            self._finish(exchange, bad.status, data, sent, error=bad.message, parsed=parsed)
            raise bad
        if reply.status >= 500 and not exchange.variant.is_teacher:
            error = GatewayError(f"student answered {reply.status}", code=f"http_{reply.status}")
            text = error_text(reply.status, reply.content_type, data, parsed)
            self._finish(exchange, reply.status, data, sent, error=text, parsed=parsed)
            raise error
        self._finish(
            exchange, reply.status, data, sent, parsed=parsed, content_type=reply.content_type
        )
        if not await spooled(exchange.logged):
            raise LogUnavailable()
        return Response(data, status_code=reply.status, headers=headers)

    @staticmethod
    def _reply_headers(exchange: Exchange, reply: UpstreamReply) -> dict[str, str]:
        """The upstream's headers, the gateway's own on top; x-request-id is the upstream's
        when it sent one (what the SDKs show as `request_id`), else the gateway's id."""
        headers = reply.headers
        headers.setdefault("content-type", reply.content_type)
        headers.setdefault("x-request-id", exchange.id)
        headers[REQUEST_ID_HEADER] = exchange.id
        headers[VARIANT_HEADER] = exchange.variant.name
        return headers

    async def _opened_stream(
        self, exchange: Exchange, reply: UpstreamReply, sent: float
    ) -> AsyncGenerator[bytes]:
        """The stream from its first bytes on, once they look like server-sent events: before
        the client gets a 200, a body that is not an event stream is still a plain 502."""
        chunks = reply.iter_chunks()
        first = b""
        try:
            while not first.strip():
                chunk = await anext(chunks, None)
                if chunk is None:
                    break
                first += chunk
        except GatewayError as exc:
            self._fail(exchange, exc, sent)
            raise
        if not looks_like_sse(first):
            await chunks.aclose()
            error = bad_stream(exchange.variant.upstream, first, "it is not an event stream")
            self._finish(exchange, error.status, first, sent, error=error.message, parsed=None)
            raise error
        return _prepended(first, chunks)

    async def _relay_stream(
        self, exchange: Exchange, chunks: AsyncIterator[bytes], sent: float
    ) -> AsyncIterator[bytes]:
        """Forward SSE events as they come; assemble them for the log; [DONE] after spooling."""
        splitter = SSESplitter()
        responses = exchange.endpoint == RESPONSES
        assembler: StreamAssembler | ResponsesAssembler = (
            ResponsesAssembler() if responses else StreamAssembler(exchange.endpoint)
        )
        strip_usage = not responses and not wants_usage(exchange.body)
        saw_done = False
        try:
            async for chunk in chunks:
                out = []
                events = splitter.feed(chunk)
                if len(splitter.leftover) > MAX_EVENT_BYTES:
                    raise bad_stream(
                        exchange.variant.upstream,
                        splitter.leftover,
                        f"an event longer than {MAX_EVENT_BYTES} bytes",
                    )
                for event in events:
                    data = event_data(event)
                    if data is None:
                        out.append(event)
                        continue
                    if data == DONE:
                        saw_done = True
                        continue
                    try:
                        payload = orjson.loads(data)
                    except orjson.JSONDecodeError:
                        payload = None
                    if not isinstance(payload, dict):
                        raise bad_stream(
                            exchange.variant.upstream, data, "data is not a JSON object"
                        )
                    assembler.add(payload)
                    if strip_usage and not payload.get("choices") and payload.get("usage"):
                        continue  # the usage chunk we asked for, not the client
                    # A Responses stream opens with bookkeeping events: its first token is the
                    # first delta (text, refusal or call arguments), not `response.created`.
                    first = not responses or str(payload.get("type")).endswith(".delta")
                    if exchange.ttft_ms is None and first:
                        exchange.ttft_ms = (time.perf_counter() - exchange.received) * 1000
                    if strip_usage:
                        event = event.replace(b',"usage":null', b"")
                    out.append(event)
                if out:
                    yield b"".join(out)
            if responses:
                saw_done = isinstance(assembler, ResponsesAssembler) and assembler.complete
            if not saw_done and assembler.error is None:
                raise map_error(
                    ConnectionResetError("stream ended without [DONE]"), exchange.variant.upstream
                )
        except (asyncio.CancelledError, GeneratorExit):
            exchange.error = "client disconnected"
            self._finish_stream(exchange, assembler, sent, status=499)
            raise
        except Exception as exc:
            error = map_error(exc, exchange.variant.upstream)
            exchange.error = error.message
            self._finish_stream(exchange, assembler, sent, status=error.status)
            yield sse_event(error.body())
            return
        failed = orjson.dumps(assembler.error).decode() if assembler.error else None
        exchange.error = failed
        self._finish_stream(exchange, assembler, sent, status=500 if failed else 200)
        if not await spooled(exchange.logged):
            yield sse_event(LogUnavailable().body())
            return
        if not responses:  # a Responses-API stream ends with its terminal event, no [DONE]
            yield _DONE_EVENT

    # -- logging -------------------------------------------------------------------------------

    def _fail(self, exchange: Exchange, exc: GatewayError, sent: float) -> None:
        exchange.error = exc.message
        self._record(exchange, exc.status, sent)

    def _finish(
        self,
        exchange: Exchange,
        status: int,
        data: bytes,
        sent: float,
        error: str | None = None,
        *,
        parsed: Any = ...,
        content_type: str = "",
    ) -> None:
        if parsed is ...:
            parsed = json_object(data)
        if isinstance(parsed, dict):
            exchange.response = stored_body(
                parsed, data, self.redactor, self.config.capture.max_body_bytes
            )
            self._set_usage(exchange, parsed.get("usage"))
            if exchange.endpoint == RESPONSES:
                exchange.answer = output_text(parsed)
                exchange.finish_reason = finish_reason(parsed)
            else:
                exchange.answer = answer_text(parsed)
                choices = parsed.get("choices") or [{}]
                if isinstance(choices, list) and choices and isinstance(choices[0], dict):
                    exchange.finish_reason = choices[0].get("finish_reason")
        else:
            exchange.response = stored_text(data, self.redactor, self.config.capture.max_body_bytes)
        if status != 200 and error is None:
            error = error_text(status, content_type, data, parsed)
        exchange.error = error
        self._record(exchange, status, sent)

    def _set_usage(self, exchange: Exchange, usage: Any) -> None:
        """Token counts from the upstream, checked: odd values are NULL and noted."""
        exchange.usage, notes = checked_usage(token_usage(usage) if usage is not None else None)
        exchange.notes += notes

    def _finish_stream(
        self,
        exchange: Exchange,
        assembler: StreamAssembler | ResponsesAssembler,
        sent: float,
        *,
        status: int,
    ) -> None:
        response = assembler.response()
        exchange.answer = (
            output_text(response) if exchange.endpoint == RESPONSES else answer_text(response)
        )
        exchange.response = stored_body(
            response, None, self.redactor, self.config.capture.max_body_bytes
        )
        self._set_usage(exchange, assembler.usage)
        pieces = assembler.pieces if isinstance(assembler, StreamAssembler) else 0
        if not exchange.usage and pieces:
            exchange.usage = {"completion_tokens": pieces}
            exchange.notes.append(STREAM_COUNT_NOTE)
        exchange.finish_reason = assembler.finish_reason
        self._record(exchange, status, sent)

    def _record(self, exchange: Exchange, status: int, sent: float) -> None:
        now = time.perf_counter()
        exchange.error = capped(exchange.error)
        exchange.status = status
        exchange.latency_ms = (now - exchange.received) * 1000
        exchange.upstream_ms = (now - sent) * 1000
        self._observe(exchange)
        self._remember(exchange)
        self.log_exchange(exchange)
        for hook in self.hooks:
            hook(exchange)

    def _remember(self, exchange: Exchange) -> None:
        """Recent request ids, so feedback can be checked and labelled without the store."""
        self._recent[exchange.id] = (exchange.route_name, exchange.variant.name)
        if len(self._recent) > RECENT_IDS:
            self._recent.popitem(last=False)

    def recent(self, request_id: str) -> tuple[str, str] | None:
        return self._recent.get(request_id)

    async def send_shadow(
        self, primary: Exchange, student: Variant, *, kind: str = "shadow"
    ) -> Exchange:
        """Mirror a finished primary request to another variant (non-streaming), logged as
        `kind` under the primary's pair id: a shadow student or a secondary teacher."""
        body = {k: v for k, v in primary.body.items() if k not in ("stream", "stream_options")}
        body["model"] = student.model
        raw = orjson.dumps(body)
        shadow = replace(
            primary,
            id=new_request_id(),
            variant=student,
            kind=kind,
            stream=False,
            body=body,
            raw=raw,
            usage={},
            error=None,
            response=None,
            ttft_ms=None,
            answer=None,
            notes=[],
            received=time.perf_counter(),
            ts=time.time(),
        )
        sent = time.perf_counter()
        try:
            reply = await self.upstreams[student.upstream].post(
                PATHS[shadow.endpoint], raw, stream=False
            )
            data = await reply.read()
        except GatewayError as exc:
            self._fail(shadow, exc, sent)
            return shadow
        parsed = json_object(data)
        if reply.status == 200 and parsed is None:
            bad = bad_answer(student.upstream, reply.status, reply.content_type, data)
            self._finish(shadow, bad.status, data, sent, error=bad.message, parsed=parsed)
            return shadow
        self._finish(
            shadow, reply.status, data, sent, parsed=parsed, content_type=reply.content_type
        )
        return shadow

    def _observe(self, exchange: Exchange) -> None:
        key = (exchange.route_name, exchange.variant.name, traffic_of(exchange.kind))
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = RouteSeries(self.metrics, *key)
        series.requests(exchange.status).inc()
        series.latency.observe((exchange.latency_ms or 0) / 1000)
        series.upstream_latency.observe((exchange.upstream_ms or 0) / 1000)
        if exchange.ttft_ms is not None:
            series.ttft.observe(exchange.ttft_ms / 1000)
        prompt = exchange.usage.get("prompt_tokens") or 0
        completion = exchange.usage.get("completion_tokens") or 0
        if prompt:
            series.prompt_tokens.inc(prompt)
        if completion:
            series.completion_tokens.inc(completion)
        price = self.config.pricing.get(exchange.variant.model)
        if price and (prompt or completion):
            cost = prompt / 1000 * price.prompt_per_1k + completion / 1000 * price.completion_per_1k
            series.cost.inc(cost)

    def check_log_room(self, exchange: Exchange) -> None:
        """Refuse before calling the upstream when the exchange's row could not be spooled."""
        if self.writer is None or self.writer.accepting:
            return
        capture, _ = should_capture(
            self.config.capture.sample_rate, exchange.pair_id, exchange.opt_out
        )
        if capture:
            raise LogUnavailable()

    def log_exchange(self, exchange: Exchange) -> None:
        if self.writer is None:
            return
        capture, reason = should_capture(
            self.config.capture.sample_rate, exchange.pair_id, exchange.opt_out
        )
        if not capture:
            self.metrics.rows_skipped.labels(reason or "policy").inc()
            return
        request = stored_body(
            exchange.body, exchange.raw, self.redactor, self.config.capture.max_body_bytes
        )
        # What the client sent or the upstream said outside the bodies is redacted as they are.
        clean = self.redactor.value if self.redactor else _same
        record = {
            "id": exchange.id,
            "ts": exchange.ts,
            "route": exchange.route_name or None,
            "variant": exchange.variant.name,
            "kind": exchange.kind,
            "pair_id": exchange.pair_id,
            "endpoint": exchange.endpoint,
            "model": clean(exchange.body.get("model")),
            "upstream": exchange.variant.upstream,
            "upstream_model": exchange.variant.model,
            "request": request,
            "response": exchange.response,
            "status": exchange.status,
            "error": clean(exchange.error),
            "stream": exchange.stream,
            "latency_ms": exchange.latency_ms,
            "ttft_ms": exchange.ttft_ms,
            "upstream_ms": exchange.upstream_ms,
            "prompt_tokens": exchange.usage.get("prompt_tokens"),
            "completion_tokens": exchange.usage.get("completion_tokens"),
            "finish_reason": clean(exchange.finish_reason),
            "user": self.redactor.identifier(exchange.user),
            "session": self.redactor.identifier(exchange.session),
            "tags": clean(exchange.tags),
            "replica": self.replica,
            "client": exchange.client,
            # `distill dataset synth` tags what it generates; keep that a first-class column
            "synthetic": bool(exchange.tags and exchange.tags.get("synthetic") is True),
            "notes": exchange.notes or None,
        }
        exchange.logged = self.writer.submit_soon("requests", record)
