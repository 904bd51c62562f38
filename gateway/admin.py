"""Admin HTTP API under /admin/ (admin token): rollouts and routes; plus POST /v1/feedback."""

from __future__ import annotations

import asyncio
import hmac
import os
import time
from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from gateway.errors import (
    AuthenticationFailed,
    InvalidRequest,
    LogUnavailable,
    NotFound,
    PermissionDenied,
)
from gateway.proxy import Proxy
from gateway.rollout import store
from gateway.rollout.controller import RolloutController, replace_gates
from gateway.rollout.gates import Gates
from gateway.store.writer import LogWriter


class StartRollout(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    route: str
    adapter: str
    steps: list[float] | None = None
    gates: dict[str, float] = {}
    shadow_rate: float | None = None


class Feedback(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    request_id: str = Field(min_length=1)
    score: float | None = None  # > 0 positive, <= 0 negative (e.g. 1 / 0 thumbs)
    label: str | None = None  # what the answer should have been
    comment: str | None = Field(None, max_length=10_000)
    source: str | None = None


def admin_guard(token_env: str | None) -> Any:
    """A dependency that lets a request through only with `Authorization: Bearer <token>`."""

    def check(request: Request) -> None:
        expected = os.environ.get(token_env) if token_env else None
        if not expected:
            raise PermissionDenied(
                f"the admin API is disabled: set {token_env or 'server.admin_token_env'} "
                "to an admin token and restart the gateway",
                code="admin_disabled",
            )
        given = request.headers.get("authorization", "")
        scheme, _, token = given.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.encode(), expected.encode()):
            raise AuthenticationFailed(
                "a valid admin token is required (Authorization: Bearer)",
                code="invalid_admin_token",
            )

    return Depends(check)


def client_guard(proxy: Proxy) -> Any:
    """A dependency: the same client API key check as the completion endpoints."""

    def check(request: Request) -> None:
        proxy.auth.check(request.headers.get("authorization"))

    return Depends(check)


def admin_router(controller: RolloutController, token_env: str | None) -> APIRouter:
    router = APIRouter(prefix="/admin", dependencies=[admin_guard(token_env)])

    @router.get("/rollouts")
    async def list_rollouts(route: str | None = None) -> dict[str, Any]:
        live = [r for r in await controller.status() if route is None or r["route"] == route]
        return {"active": live, "history": store.history(controller.store, route)}

    @router.post("/rollouts", status_code=201)
    async def start_rollout(body: StartRollout) -> dict[str, Any]:
        defaults = replace_gates(Gates(), dict(controller.config.rollout.gates))
        rollout = await controller.start(
            body.route,
            body.adapter,
            steps=tuple(body.steps) if body.steps else None,
            gates=replace_gates(defaults, body.gates),
            shadow_rate=body.shadow_rate or controller.config.rollout.shadow_rate,
        )
        return {
            "id": rollout.id,
            "route": rollout.route,
            "adapter": rollout.adapter,
            "state": rollout.state,
        }

    @router.post("/rollouts/{route}/{action}")
    async def act(route: str, action: str) -> dict[str, Any]:
        if action not in ("pause", "resume", "promote", "rollback"):
            raise NotFound(f"unknown action {action!r}: use pause, resume, promote or rollback")
        rollout = await controller.command(route, action)
        return {
            "route": route,
            "adapter": rollout.adapter,
            "state": rollout.state,
            "weight": rollout.weight,
        }

    @router.get("/routes")
    async def routes() -> dict[str, Any]:
        overrides = controller.proxy.overrides
        return {
            "routes": [
                {
                    "name": r.name,
                    "match": r.match,
                    "teacher": r.teacher.model_dump(),
                    "weights": dict(overrides.student_weights(r)),
                    "shadow": overrides.shadow.get(r.name),
                }
                for r in controller.config.routes
            ]
        }

    return router


def feedback_router(
    proxy: Proxy, writer: LogWriter | None, controller: RolloutController
) -> APIRouter:
    router = APIRouter(dependencies=[client_guard(proxy)])

    @router.post("/v1/feedback", status_code=201)
    async def feedback(body: Feedback) -> dict[str, Any]:
        if body.score is None and body.label is None and body.comment is None:
            raise InvalidRequest("give at least one of score, label or comment", param="score")
        known = proxy.recent(body.request_id) or await _lookup(controller, body.request_id)
        if known is None:
            raise NotFound(
                f"no logged request with id {body.request_id!r}; use the "
                "x-distill-request-id header of the response",
                param="request_id",
            )
        route, variant = known
        feedback_id = store.new_id("fb")
        record = {
            "id": feedback_id,
            "ts": time.time(),
            "request_id": body.request_id,
            "score": body.score,
            "label": body.label,
            "comment": body.comment,
            "source": body.source,
        }
        if writer is not None and not writer.submit("feedback", record):
            raise LogUnavailable()  # acknowledged only once on disk; counted only then too
        negative = body.score is not None and body.score <= 0
        if body.score is not None:
            proxy.metrics.feedback.labels(
                route, variant, "negative" if negative else "positive"
            ).inc()
            controller.observe_feedback(route, variant, negative=negative)
        return {"id": feedback_id, "request_id": body.request_id}

    return router


FLEET_LOOKUP_S = 3.0  # how long feedback waits for another replica's row to reach the log


async def _lookup(controller: RolloutController, request_id: str) -> tuple[str, str] | None:
    """Older request ids are looked up in the store. In a fleet the row may have been served by
    another replica whose writer has not flushed it yet (flush_interval_s): wait a little."""

    def query() -> tuple[str, str] | None:
        if not controller.store.exists():
            return None
        with controller.store.connect(read_only=True) as conn:  # a read: no migrate, no lock
            row = conn.execute(
                "SELECT route, variant FROM requests WHERE id = ?", [request_id]
            ).fetchone()
        return (str(row[0] or ""), str(row[1])) if row else None

    found = await asyncio.to_thread(query)
    deadline = time.monotonic() + FLEET_LOOKUP_S
    while found is None and controller.fleet is not None and time.monotonic() < deadline:
        await asyncio.sleep(0.25)
        found = await asyncio.to_thread(query)
    return found
