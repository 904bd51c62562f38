"""Every other `/v1/*` path: relayed to a teacher upstream unchanged, counted, logged if worth it.

Embeddings, moderations, `models/{id}` (a model a route serves is answered from the config,
as `GET /v1/models` lists it), files, batches, audio, uploads, ... go to the teacher
upstream of the route their `model` names (the model renamed as for chat), else to the
default route's teacher, else to the one upstream every route's teacher uses; with several and
no default the request is refused with a message saying to mark a route `default: true`.
Bodies pass as bytes (multipart and binary untouched), answers come back as they are read
(streams streamed). Embeddings are logged with the request and a digest of each vector (its
dimensions and SHA-256, not the numbers); moderations are logged whole, both with the
request's user, session and tags as chat rows are, and refused with 503 (as chat is) when the
log has no room for their row; other paths are counted in `distill_passthrough_requests_total`
but not logged.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
from prometheus_client import Counter
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from gateway.answer_check import bad_answer, capped, error_text, json_object
from gateway.capture import stored_body, stored_text
from gateway.config import DistillConfig
from gateway.errors import GatewayError, NotFound
from gateway.proxy import (
    REQUEST_ID_HEADER,
    SESSION_HEADER,
    TAGS_HEADER,
    Exchange,
    Proxy,
    new_request_id,
)
from gateway.routing import TEACHER, Variant, find_route
from gateway.tags import body_session, body_tags, body_user, parse_tags
from gateway.upstream import UpstreamReply
from gateway.usage import checked_usage

LOGGED = frozenset({"embeddings", "moderations"})
V1 = "/v1/"


def endpoint_of(path: str) -> str:
    """The metric and log label for a path under /v1: its first segment (`files`, `audio`)."""
    return path.strip("/").split("/", 1)[0] or "v1"


def upstream_for(config: DistillConfig, model: str | None) -> tuple[str, str | None]:
    """(the upstream to send to, the model name to send or None to leave the body alone)."""
    route = find_route(config, model)
    if route is not None and model in route.match:
        return route.teacher.upstream, route.teacher.model
    if route is not None:  # the default route
        return route.teacher.upstream, None
    teachers = sorted({r.teacher.upstream for r in config.routes})
    if len(teachers) == 1:
        return teachers[0], None
    raise NotFound(
        f"No route serves model {model!r} and no route is the default, so no upstream is "
        f"chosen for this path (teacher upstreams: {', '.join(teachers) or 'none'}); mark "
        "one route `default: true` in distill.yaml",
        param="model" if model else None,
        code="no_upstream",
    )


def own_model(config: DistillConfig, method: str, path: str) -> dict[str, Any] | None:
    """`GET /models/{id}` for a model a route serves: the gateway's entry, else None."""
    if method != "GET" or not path.startswith("/models/"):
        return None
    model = path[len("/models/") :]
    route = next((r for r in config.routes if model in r.match), None)
    return model_entry(model, route.name) if route is not None else None


def model_entry(model: str, route: str) -> dict[str, Any]:
    """A served model as OpenAI's models endpoints describe one."""
    return {"id": model, "object": "model", "created": 0, "owned_by": f"distill:{route}"}


def _digest(vector: Any) -> dict[str, Any]:
    if isinstance(vector, str):  # encoding_format: base64
        return {"base64_chars": len(vector), "sha256": hashlib.sha256(vector.encode()).hexdigest()}
    data = orjson.dumps(vector)
    count = len(vector) if isinstance(vector, list) else None
    return {"dimensions": count, "sha256": hashlib.sha256(data).hexdigest()}


def embeddings_digest(response: dict[str, Any]) -> dict[str, Any]:
    """The embeddings answer with each vector replaced by its dimensions and SHA-256."""
    items = response.get("data")
    if not isinstance(items, list):
        return response
    data = [
        {**item, "embedding": _digest(item["embedding"])}
        if isinstance(item, dict) and "embedding" in item
        else item
        for item in items
    ]
    return {**response, "data": data}


def _json_model(raw: bytes, content_type: str) -> tuple[dict[str, Any] | None, str | None]:
    if not raw or not content_type.startswith("application/json"):
        return None, None
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None, None  # the upstream judges it
    if not isinstance(body, dict):
        return None, None
    model = body.get("model")
    return body, model if isinstance(model, str) else None


class Passthrough:
    """The handler for every `/v1/*` path the gateway does not serve itself."""

    def __init__(self, proxy: Proxy) -> None:
        self.proxy = proxy
        self.requests = Counter(
            "distill_passthrough_requests",
            "Requests relayed unchanged to a teacher upstream (paths the gateway does not serve)",
            ["endpoint", "upstream", "status"],
            registry=proxy.metrics.registry,
        )

    async def __call__(self, request: Request) -> Response:
        request_id = new_request_id()
        received, ts = time.perf_counter(), time.time()
        proxy = self.proxy
        try:
            client = proxy.auth.check(request.headers.get("authorization"))
            limit = (client and client.max_request_bytes) or proxy.config.server.max_request_bytes
            raw = await proxy._read_body(request, limit)
            name = client.name if client else None
            return await self._relay(request, request_id, raw, name, received, ts)
        except GatewayError as exc:
            proxy.metrics.gateway_errors.labels(exc.code or exc.type).inc()
            return proxy.error_response(exc, request_id)

    async def _relay(
        self,
        request: Request,
        request_id: str,
        raw: bytes,
        client: str | None,
        received: float,
        ts: float,
    ) -> Response:
        proxy = self.proxy
        path = request.url.path
        rest = path[path.index(V1) + len(V1) - 1 :]  # "/embeddings", "/files/file-1/content"
        endpoint = endpoint_of(rest)
        served = own_model(proxy.config, request.method, rest)
        if served is not None:  # a name only the gateway knows: as its GET /v1/models says
            self.requests.labels(endpoint, "", "200").inc()
            headers = {REQUEST_ID_HEADER: request_id, "x-request-id": request_id}
            return Response(orjson.dumps(served), media_type="application/json", headers=headers)
        content_type = request.headers.get("content-type", "")
        body, model = _json_model(raw, content_type)
        name, teacher_model = upstream_for(proxy.config, model)
        if body is not None and teacher_model and teacher_model != model:
            raw = orjson.dumps({**body, "model": teacher_model})
        upstream = proxy.upstreams[name]
        authorization = None if proxy.auth.enabled else request.headers.get("authorization")
        headers = upstream.headers(authorization, request.headers, content_type or None)
        if "accept" in request.headers:
            headers["Accept"] = request.headers["accept"]
        exchange = None
        if endpoint in LOGGED and body is not None and not body.get("stream"):
            exchange = Exchange(
                id=request_id,
                endpoint=endpoint,
                route=None,
                variant=Variant(TEACHER, name, teacher_model or model or ""),
                body=body,
                raw=raw,
                stream=False,
                received=received,
                ts=ts,
                pair_id=request_id,
                opt_out=request.headers.get(proxy.config.capture.opt_out_header),
                user=body_user(body),
                session=request.headers.get(SESSION_HEADER) or body_session(body),
                tags=body_tags(body, parse_tags(request.headers.get(TAGS_HEADER))),
                client=client,
            )
            proxy.check_log_room(exchange)  # disk full: refused before the upstream is paid
        sent = time.perf_counter()
        try:
            reply = await upstream.send(
                request.method,
                rest,
                raw or None,
                headers=headers,
                stream=exchange is None,
                query=request.url.query,
            )
            self.requests.labels(endpoint, name, str(reply.status)).inc()
            out = {**reply.headers, REQUEST_ID_HEADER: request_id}
            out.setdefault("x-request-id", request_id)
            if exchange is None:
                length = reply.response.content_length
                if length is not None and "content-encoding" not in reply.response.headers:
                    out["content-length"] = str(length)  # the same bytes: a cut one shows
                return StreamingResponse(_relayed(reply), status_code=reply.status, headers=out)
            data = await reply.read()
        except GatewayError as exc:
            if exchange is not None:  # an embeddings call that failed is worth a row too
                exchange.error = exc.message
                self._log_row(exchange, exc.status, sent)
            raise
        self._log(exchange, reply, data, sent)
        return Response(data, status_code=reply.status, headers=out)

    def _log_row(self, exchange: Exchange, status: int, sent: float) -> None:
        now = time.perf_counter()
        exchange.status = status
        exchange.latency_ms = (now - exchange.received) * 1000
        exchange.upstream_ms = (now - sent) * 1000
        self.proxy.log_exchange(exchange)

    def _log(self, exchange: Exchange, reply: UpstreamReply, data: bytes, sent: float) -> None:
        parsed = json_object(data)
        cap, redactor = self.proxy.config.capture.max_body_bytes, self.proxy.redactor
        if parsed is None:
            exchange.response = stored_text(data, redactor, cap)
            exchange.error = error_text(reply.status, reply.content_type, data, None)
        else:
            if exchange.endpoint == "embeddings":
                parsed = embeddings_digest(parsed)
            exchange.response = stored_body(parsed, None, redactor, cap)
            exchange.usage, exchange.notes = checked_usage(parsed.get("usage"))
            if reply.status != 200:
                exchange.error = capped(error_text(reply.status, "", data, parsed))
        if reply.status == 200 and parsed is None:
            bad = bad_answer(exchange.variant.upstream, reply.status, reply.content_type, data)
            exchange.error = bad.message
            self._log_row(exchange, bad.status, sent)
            raise bad
        self._log_row(exchange, reply.status, sent)


async def _relayed(reply: UpstreamReply) -> AsyncIterator[bytes]:
    try:
        async for chunk in reply.iter_chunks():
            yield chunk
    except GatewayError:
        # The status line is out: a cut answer is all that can be said (a client that had a
        # Content-Length sees the connection close short of it).
        return
