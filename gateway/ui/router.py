"""HTTP for the review console: the page under /ui/, its JSON under /ui/api/, annotations under
/admin/annotations. Everything with data needs the admin token (Authorization: Bearer)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import orjson
from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import FileResponse, RedirectResponse, Response

from gateway.admin import admin_guard
from gateway.errors import GatewayError, InvalidRequest, NotFound
from gateway.rollout import store as rollout_store
from gateway.rollout.controller import RolloutController, replace_gates
from gateway.rollout.gates import Gates
from gateway.rollout.state import DEFAULT_STEPS
from gateway.store.candidates import candidate_query, params_for
from gateway.store.db import StoreBusyError
from gateway.ui import annotation, evals, queries, shapes
from gateway.ui import overview as overview_shape
from gateway.ui.source import open_store

STATIC = Path(__file__).parent / "static"
ASSETS = {"app.js": "text/javascript", "app.css": "text/css"}
AUTHOR_HEADER = "x-distill-author"
DEFAULT_AUTHOR = "admin"  # the admin token is one shared secret: it names no person
T = TypeVar("T")


class StoreBusy(GatewayError):
    status = 503
    type = "server_error"


class NewAnnotation(BaseModel):
    model_config = ConfigDict(extra="forbid")
    request_id: str = Field(min_length=1, max_length=200)
    kind: str
    answer: str | None = None
    label: str | None = None
    note: str | None = None


def _json(value: Any, status: int = 200) -> Response:
    return Response(
        orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS),
        status_code=status,
        media_type="application/json",
        headers={"Cache-Control": "no-store"},
    )


def _checked(make: Callable[[], T]) -> T:
    try:
        return make()
    except ValueError as exc:
        raise InvalidRequest(str(exc)) from None


def _author(request: Request) -> str:
    return request.headers.get(AUTHOR_HEADER, "").strip() or DEFAULT_AUTHOR


def ui_router(controller: RolloutController, token_env: str | None) -> APIRouter:
    """The console's page, assets and API, reading the store the gateway writes."""
    config = controller.config
    store = controller.store
    guard = [admin_guard(token_env)]
    router = APIRouter()

    async def read(work: Callable[[Any], T]) -> T:
        def run() -> T:
            with open_store(store) as conn:
                return work(conn)

        try:
            return await asyncio.to_thread(run)
        except StoreBusyError as exc:
            raise StoreBusy(str(exc)) from None

    # -- the page: a shell without data; it asks for the token and calls the API -------------

    @router.get("/ui", include_in_schema=False)
    async def ui_root() -> Response:
        return RedirectResponse("/ui/")

    @router.get("/ui/", include_in_schema=False)
    async def page() -> Response:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    @router.get("/ui/static/{name}", include_in_schema=False)
    async def asset(name: str) -> Response:
        if name not in ASSETS:
            raise NotFound(f"no console asset {name!r}")
        return FileResponse(STATIC / name, media_type=ASSETS[name])

    # -- reads --------------------------------------------------------------------------------

    @router.get("/ui/api/overview", dependencies=guard)
    async def overview() -> Response:
        rows = await read(queries.overview)
        routes = [r.name for r in config.routes]
        return _json({"groups": rows, "routes": routes})

    @router.get("/ui/api/summary", dependencies=guard)
    async def summary(window: str = "all") -> Response:
        since = _checked(lambda: overview_shape.window_start(window, datetime.now(UTC)))
        prices = queries.Prices(
            models={m: (p.prompt_per_1k, p.completion_per_1k) for m, p in config.pricing.items()},
            teachers={r.name: r.teacher.model for r in config.routes},
        )

        def work(conn: Any) -> dict[str, Any]:
            first, last = queries.live_span(conn, since)
            bucket = overview_shape.bucket_seconds(first, last)
            rows = queries.overview_series(conn, bucket, since, prices)
            out = overview_shape.summary(rows, bucket, window, priced=bool(config.pricing))
            out["unpriced"] = queries.unpriced_models(conn, since, list(prices.models))
            return out

        return _json(await read(work))

    @router.get("/ui/api/traffic", dependencies=guard)
    async def traffic(
        route: str | None = None,
        variant: str | None = None,
        kind: str | None = None,
        status: str | None = None,
        user: str | None = None,
        text: str | None = None,
        since: str | None = None,
        until: str | None = None,
        feedback: str | None = None,
        annotated: str | None = None,
        paired: bool = False,
        limit: int = 50,
        offset: int = 0,
    ) -> Response:
        f = _checked(
            lambda: queries.TrafficFilter(
                route=route or None,
                variant=variant or None,
                kind=kind or None,
                status=status or None,
                user=user or None,
                text=text or None,
                since=queries.parse_time("since", since),
                until=queries.parse_time("until", until),
                feedback=feedback or None,
                annotated=annotated or None,
                paired=paired,
                limit=limit,
                offset=offset,
            )
        )
        return _json(await read(lambda conn: queries.traffic_page(conn, f)))

    @router.get("/ui/api/exchanges/{request_id}", dependencies=guard)
    async def exchange(request_id: str) -> Response:
        item = await read(lambda conn: queries.exchange(conn, request_id))
        if item is None:
            raise NotFound(f"no logged exchange with id {request_id!r}", param="request_id")
        item["conversation"] = shapes.conversation_view(item)  # tool calls, Responses items
        return _json(item)

    @router.get("/ui/api/pairs", dependencies=guard)
    async def pairs(
        route: str | None = None,
        student: str | None = None,
        order: str = "disagreement",
        limit: int = 50,
        offset: int = 0,
        teacher_label: str | None = None,
        student_label: str | None = None,
    ) -> Response:
        chosen = route or (config.routes[0].name if config.routes else None)
        confusion = None
        if teacher_label is not None or student_label is not None:
            confusion = (teacher_label or "", student_label or "")
        found = config.route(chosen) if chosen else None
        mode = found.shadow.agreement if found is not None else "normalized"
        f = _checked(
            lambda: queries.PairFilter(
                route=chosen,
                student=student or None,
                order=order,
                limit=limit,
                offset=offset,
            )
        )
        page = await read(lambda conn: queries.pairs_page(conn, f, mode, confusion))
        return _json({**page, "route": chosen, "routes": [r.name for r in config.routes]})

    @router.get("/ui/api/data", dependencies=guard)
    async def data(route: str | None = None) -> Response:
        chosen = route or (config.routes[0].name if config.routes else None)

        def work(conn: Any) -> dict[str, Any]:
            runs = shapes.decode(queries.runs(conn), ("config", "metrics"))
            return {
                "route": chosen,
                "routes": [r.name for r in config.routes],
                "filters": _filter_counts(conn, chosen) if chosen else {},
                "annotations": queries.annotation_counts(conn, chosen) if chosen else {},
                "runs": runs,
                "curves": shapes.data_curves(runs),
                "adapters": shapes.decode(queries.adapters(conn), ("lineage", "metrics")),
            }

        return _json(await read(work))

    async def predictions(run_id: str) -> list[dict[str, Any]]:
        found = await read(lambda conn: queries.run(conn, run_id))
        if found is None:
            raise NotFound(f"no run with id {run_id!r}", param="run_id")
        return await asyncio.to_thread(_predictions, run_id, found)

    @router.get("/ui/api/runs/{run_id}/examples", dependencies=guard)
    async def run_examples(run_id: str, offset: int = 0, limit: int = 50) -> Response:
        records = await predictions(run_id)
        page = shapes.eval_examples(records, max(0, offset), max(1, min(limit, 200)))
        return _json({"run": run_id, **page})

    def named_runs(conn: Any) -> list[dict[str, Any]]:
        registry = {str(a["path"]): str(a["name"]) for a in queries.adapters(conn)}
        runs = shapes.decode(queries.runs(conn), ("config", "metrics"))
        for r in runs:
            r["adapter"] = evals.adapter_name(r, registry)
        return runs

    @router.get("/ui/api/evals", dependencies=guard)
    async def eval_runs() -> Response:
        runs = await read(named_runs)
        return _json({"runs": [r for r in runs if r["kind"] == "eval"]})

    @router.get("/ui/api/evals/compare", dependencies=guard)
    async def compare_evals(
        a: str, b: str, changed: bool = False, offset: int = 0, limit: int = 50
    ) -> Response:
        runs = {r["id"]: r for r in await read(named_runs)}
        for name, run_id in (("a", a), ("b", b)):
            if run_id not in runs:
                raise NotFound(f"no run with id {run_id!r}", param=name)
        left, right = await predictions(a), await predictions(b)
        page = evals.compare_examples(
            left, right, changed_only=changed, offset=max(0, offset), limit=max(1, min(limit, 200))
        )
        metrics = [
            runs[x]["metrics"] if isinstance(runs[x]["metrics"], dict) else {} for x in (a, b)
        ]
        return _json(
            {
                "a": runs[a],
                "b": runs[b],
                "deltas": evals.metric_deltas(metrics[0], metrics[1]),
                **page,
            }
        )

    @router.get("/ui/api/datasets", dependencies=guard)
    async def datasets() -> Response:
        def work(conn: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
            adapters = shapes.decode(queries.adapters(conn), ("lineage", "metrics"))
            return named_runs(conn), adapters

        runs, adapters = await read(work)
        dirs = {
            str(r["config"]["dataset"])
            for r in runs
            if isinstance(r.get("config"), dict) and r["config"].get("dataset")
        }
        cards = await asyncio.to_thread(lambda: {d: _card(Path(d)) for d in dirs})
        return _json({"datasets": evals.datasets(runs, adapters, cards)})

    @router.get("/ui/api/rollouts", dependencies=guard)
    async def rollouts() -> Response:
        history = await asyncio.to_thread(rollout_store.history, controller.store)
        live = {(r["route"], r["id"]): r for r in await controller.status()}
        for item in history:
            now = live.get((item["route"], item["id"]))
            windows = None
            if now is not None and item["state"] in ("shadow", "canary"):
                windows = {side: _with_rates(now[side]) for side in ("student", "teacher")}
            item["live"] = now
            item["series"] = shapes.gate_series(item, windows)
        overrides = controller.proxy.overrides
        routes = [
            {
                "name": r.name,
                "weights": dict(overrides.student_weights(r)),
                "shadow": overrides.shadow.get(r.name),
            }
            for r in config.routes
        ]
        registered = await read(queries.adapters)
        defaults = replace_gates(Gates(), dict(config.rollout.gates))
        return _json(
            {
                "routes": routes,
                "history": history,
                "adapters": [
                    {k: a[k] for k in ("name", "state", "route", "base_model", "created_at")}
                    for a in registered
                ],
                "defaults": {"steps": list(DEFAULT_STEPS), "gates": asdict(defaults)},
            }
        )

    # -- annotations (the data tools and the CLI use the same rows) ---------------------------

    @router.post("/admin/annotations", status_code=201, dependencies=guard)
    async def annotate(body: NewAnnotation, request: Request) -> Response:
        item = _checked(
            lambda: annotation.Annotation(
                request_id=body.request_id,
                kind=body.kind,
                author=_author(request),
                answer=body.answer,
                label=body.label,
                note=body.note,
            )
        )
        try:
            row = await asyncio.to_thread(annotation.add, store, item)
        except annotation.UnknownRequestError as exc:
            raise NotFound(str(exc), param="request_id") from None
        except annotation.RefusedAnnotationError as exc:
            raise InvalidRequest(str(exc), param="answer") from None
        except StoreBusyError as exc:
            raise StoreBusy(str(exc)) from None
        return _json(row, status=201)

    @router.get("/admin/annotations", dependencies=guard)
    async def list_annotations(request_id: str) -> Response:
        rows = await read(lambda conn: queries.annotations_of(conn, request_id))
        return _json({"request_id": request_id, "annotations": rows})

    return router


def _with_rates(window: dict[str, Any]) -> dict[str, Any]:
    requests = window.get("requests") or 0
    return {**window, "error_rate": (window.get("errors") or 0) / requests if requests else 0.0}


def _predictions(run_id: str, run: dict[str, Any]) -> list[dict[str, Any]]:
    """The per-example records an eval run wrote beside its report."""
    out_dir = (orjson.loads(run["config"] or "{}") or {}).get("out_dir")
    predictions = Path(out_dir) / "predictions.jsonl" if out_dir else None
    if predictions is None or not predictions.is_file():
        raise NotFound(
            f"run {run_id} has no predictions to show (eval output "
            f"{out_dir or 'not recorded'}; runs recorded before the console read them do "
            "not say where their output is): re-run `distill eval --store ...`",
            param="run_id",
        )
    return [orjson.loads(line) for line in predictions.read_bytes().splitlines() if line]


def _card(directory: Path) -> dict[str, Any] | None:
    """A dataset directory's card (dataset.json), or None when it is gone or unreadable."""
    try:
        card = orjson.loads((directory / "dataset.json").read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None
    return card if isinstance(card, dict) else None


def _filter_counts(conn: Any, route: str) -> dict[str, int]:
    """Rows `distill dataset build --route` would remove per SQL filter (the trainer's SQL)."""
    query = candidate_query(route)
    rows = conn.execute(query.counts, params_for(query.counts, query.params)).fetchall()
    return {str(reason): int(n) for reason, n in rows}
