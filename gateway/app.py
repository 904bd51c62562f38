"""The gateway's HTTP surface: `create_app(config)` wires upstreams, the log and metrics."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request as StarletteRequest
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from gateway import __version__
from gateway.admin import admin_router, client_guard, feedback_router
from gateway.auth import Authenticator
from gateway.body_limit import BodyLimit
from gateway.config import DistillConfig
from gateway.errors import GatewayError, InvalidRequest, LogUnavailable, RateLimited, error_body
from gateway.headers import HeaderLimits, refused_headers
from gateway.metrics import Metrics, exposition
from gateway.passthrough import Passthrough, model_entry
from gateway.protocol import CHAT, COMPLETIONS, RESPONSES
from gateway.proxy import REQUEST_ID_HEADER, VARIANT_HEADER, Proxy, RouteOverrides
from gateway.rollout.controller import RolloutController
from gateway.rollout.coordinator import Coordinator
from gateway.rollout.fleet import FleetCoordinator
from gateway.secondary import SecondaryTeachers
from gateway.store.backend import open_store
from gateway.store.fleet import FleetStore
from gateway.store.writer import LogWriter
from gateway.ui.router import ui_router
from gateway.upstream import Upstream, build_upstreams

log = logging.getLogger("distill.gateway")

# Documented request shapes for the OpenAPI spec; the handlers read raw bytes (fast path)
# and pass unknown fields through untouched.
_CHAT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["model", "messages"],
    "properties": {
        "model": {"type": "string"},
        "messages": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["role"],
                "properties": {"role": {"type": "string"}, "content": {}},
            },
        },
        "stream": {"type": "boolean"},
        "user": {"type": "string"},
        "max_tokens": {"type": "integer", "minimum": 0},
    },
    "additionalProperties": True,
}
_COMPLETIONS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["model", "prompt"],
    "properties": {
        "model": {"type": "string"},
        "prompt": {"oneOf": [{"type": "string"}, {"type": "array"}]},
        "stream": {"type": "boolean"},
        "user": {"type": "string"},
        "max_tokens": {"type": "integer", "minimum": 0},
    },
    "additionalProperties": True,
}
_RESPONSES_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["model"],
    "properties": {
        "model": {"type": "string"},
        "input": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "object"}}]},
        "instructions": {"type": "string"},
        "stream": {"type": "boolean"},
        "metadata": {"type": "object"},
    },
    "additionalProperties": True,
}


def _body_doc(schema: dict[str, Any]) -> dict[str, Any]:
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


class ProxyEndpoint:
    """A hot POST route as a bare ASGI app.

    FastAPI's per-request machinery (two AsyncExitStacks, dependency solving, a scan of the
    docs and admin routes) and its middleware stack (each wrapping `send`) cost more CPU than
    the proxying itself (bench/README.md): `GatewayApp` hands these paths straight to
    this endpoint, which does what that stack did for them: header limits, a 500 in OpenAI's
    shape for a bug. The documented FastAPI routes stay registered for the OpenAPI schema.
    """

    def __init__(self, proxy: Proxy, endpoint: str) -> None:
        self.proxy = proxy
        self.endpoint = endpoint

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if await refused_headers(scope, send):
            return
        in_flight = self.proxy.metrics.in_flight
        in_flight.inc()  # until the last byte: a stream counts while it streams
        try:
            try:
                response = await self.proxy.handle(StarletteRequest(scope, receive), self.endpoint)
            except Exception:
                log.exception("unhandled error serving %s", scope["path"])
                error = GatewayError("internal error in the gateway", code="internal_error")
                response = JSONResponse(error.body(), status_code=500)
            await response(scope, receive, send)
        finally:
            in_flight.dec()


class GatewayApp(FastAPI):
    """FastAPI, except that the proxy POSTs skip the middleware stack (see ProxyEndpoint).

    With CORS configured they take the full stack, which adds the CORS headers.
    """

    hot_paths: dict[str, ProxyEndpoint]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            path, root = scope["path"], scope.get("root_path", "")
            endpoint = self.hot_paths.get(path[len(root) :] if path.startswith(root) else path)
            if endpoint is not None:
                await endpoint(scope, receive, send)
                return
        await super().__call__(scope, receive, send)


def default_replica() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


@dataclass
class Gateway:
    """The parts of a running gateway, reachable from handlers and tests."""

    config: DistillConfig
    metrics: Metrics
    writer: LogWriter | None
    upstreams: dict[str, Upstream]
    proxy: Proxy
    overrides: RouteOverrides
    rollouts: RolloutController


def create_app(
    config: DistillConfig,
    *,
    metrics: Metrics | None = None,
    writer: LogWriter | None = None,
    upstreams: dict[str, Upstream] | None = None,
    start_writer: bool = True,
    fleet: Coordinator | None = None,
) -> FastAPI:
    metrics = metrics or Metrics()
    metrics.build.labels(__version__).set(1)
    replica = config.server.replica or default_replica()
    store = open_store(config.store)  # the one place tables are read and written
    # A fleet's replicas share one rollout controller: one leads, all follow its versions
    # (`fleet` given: another coordinator, e.g. one host's workers, gateway.workers).
    if isinstance(store, FleetStore):
        metrics.fleet_replica.set(1)  # the fleet alerts count leaders over these
        if fleet is None:
            fleet = FleetCoordinator(store.dsn, replica, lease_s=config.rollout.leader_lease_s)
    if writer is None and start_writer:
        writer = LogWriter(config.store, metrics, replica=replica, store=store)
    upstreams = upstreams if upstreams is not None else build_upstreams(config.upstreams)
    overrides = RouteOverrides()
    auth = Authenticator.from_config(config.server)
    proxy = Proxy(
        config, upstreams, writer, metrics, replica=replica, overrides=overrides, auth=auth
    )
    controller = RolloutController(
        config, proxy, metrics, store=store, tick_s=config.rollout.tick_s, fleet=fleet
    )
    SecondaryTeachers(config, proxy, metrics)  # hooks itself in when a route has any
    gateway = Gateway(config, metrics, writer, upstreams, proxy, overrides, controller)
    for route in config.routes:
        metrics.route_weight.labels(route.name, "teacher").set(
            1 - sum(s.weight for s in route.students) / 100
        )
        for student in route.students:
            metrics.route_weight.labels(route.name, student.name).set(student.weight / 100)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if writer is not None:
            writer.start()
        await asyncio.to_thread(controller.load)  # rollouts survive restarts
        loop = asyncio.get_running_loop()
        ticking = loop.create_task(controller.run())
        watching = loop.create_task(writer.watch()) if writer is not None else None
        try:
            yield
        finally:
            ticking.cancel()
            if watching is not None:
                watching.cancel()
            for upstream in upstreams.values():
                await upstream.close()
            if writer is not None:
                writer.stop()  # graceful: everything spooled is flushed into the store
            store.close()

    app = GatewayApp(title="Distill gateway", version=__version__, lifespan=lifespan)
    app.state.gateway = gateway
    app.add_middleware(BodyLimit, auth=auth, default=config.server.max_request_bytes)
    app.add_middleware(HeaderLimits)  # outermost: headers are checked before the body is read
    if config.server.cors_origins:  # off unless asked for: browsers may not call by default
        app.add_middleware(
            CORSMiddleware,
            allow_origins=config.server.cors_origins,
            allow_methods=["*"],
            allow_headers=["*"],
            expose_headers=[REQUEST_ID_HEADER, VARIANT_HEADER],
        )
    app.include_router(feedback_router(proxy, writer, controller))
    app.include_router(admin_router(controller, config.server.admin_token_env))
    app.include_router(ui_router(controller, config.server.admin_token_env))  # /ui/

    @app.exception_handler(GatewayError)
    async def _gateway_error(request: Request, exc: GatewayError) -> Response:
        headers = None
        if isinstance(exc, RateLimited | LogUnavailable):
            headers = {"Retry-After": str(exc.retry_after)}
        return JSONResponse(exc.body(), status_code=exc.status, headers=headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        kind = "not_found_error" if exc.status_code == 404 else "invalid_request_error"
        message = f"{request.method} {request.url.path}: {exc.detail}"
        return JSONResponse(error_body(message, kind), status_code=exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> Response:
        first = exc.errors()[0] if exc.errors() else {"msg": "invalid request", "loc": ()}
        param = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or None
        return JSONResponse(InvalidRequest(str(first["msg"]), param=param).body(), status_code=400)

    @app.post("/v1/chat/completions", openapi_extra=_body_doc(_CHAT_SCHEMA))
    async def chat_completions(request: Request) -> Response:
        return await proxy.handle(request, CHAT)

    @app.post("/v1/completions", openapi_extra=_body_doc(_COMPLETIONS_SCHEMA))
    async def completions(request: Request) -> Response:
        return await proxy.handle(request, COMPLETIONS)

    @app.post("/v1/responses", openapi_extra=_body_doc(_RESPONSES_SCHEMA))
    async def responses(request: Request) -> Response:
        return await proxy.handle(request, RESPONSES)

    # Matched first when the stack runs (CORS on): see ProxyEndpoint and GatewayApp.
    hot = {"/v1/chat/completions": CHAT, "/v1/completions": COMPLETIONS, "/v1/responses": RESPONSES}
    endpoints = {path: ProxyEndpoint(proxy, endpoint) for path, endpoint in hot.items()}
    app.router.routes[0:0] = [
        Route(path, endpoint, methods=["POST"], include_in_schema=False)
        for path, endpoint in endpoints.items()
    ]
    app.hot_paths = {} if config.server.cors_origins else endpoints

    @app.get("/v1/models", dependencies=[client_guard(proxy)])
    async def models() -> Response:
        data = [model_entry(model, route.name) for route in config.routes for model in route.match]
        return Response(
            orjson.dumps({"object": "list", "data": data}), media_type="application/json"
        )

    # Last: every other /v1 path goes to a teacher as it is (gateway/passthrough.py).
    methods = ["GET", "POST", "PUT", "PATCH", "DELETE"]
    relay = Passthrough(proxy)
    app.router.routes.append(Route("/v1/{path:path}", relay.__call__, methods=methods))

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz() -> Response:
        store = "disabled" if writer is None else ("ok" if writer.healthy else writer.last_error)
        reason = None if writer is None else writer.not_ready()  # a full spool, a stalled writer
        body = {"status": "not ready" if reason else "ready", "store": store}
        if reason:
            body["reason"] = reason
        return JSONResponse(body, status_code=503 if reason else 200)

    @app.get("/metrics")
    async def metrics_endpoint() -> Response:
        # With --workers: every worker's values, whichever worker the scrape reached.
        return Response(exposition(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app
