"""The rollout controller: applies rollouts to routing, mirrors shadow traffic, ticks the gates."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from dataclasses import replace
from typing import Any

from gateway.answers import agreement
from gateway.config import DistillConfig, RouteConfig
from gateway.errors import Conflict, InvalidRequest, NotFound
from gateway.metrics import Metrics
from gateway.proxy import Exchange, Proxy
from gateway.rollout import store as records
from gateway.rollout.coordinator import Coordinator, NotLeading
from gateway.rollout.fleet import step_key
from gateway.rollout.gates import Gates, Verdict, Window, evaluate
from gateway.rollout.state import (
    CANARY,
    DEFAULT_STEPS,
    PAUSED,
    PROMOTED,
    REPLACED,
    ROLLED_BACK,
    SHADOW,
    Rollout,
    RolloutError,
    check_steps,
)
from gateway.rollout.window import WindowStats, export
from gateway.routing import TEACHER, Variant, unit_point
from gateway.store.adapters import AdapterNotFoundError, set_state
from gateway.store.backend import Store

log = logging.getLogger("distill.rollout")

FLEET_POLL_S = 0.5  # how often a fleet replica checks the rollout version (applies within 2 s)
MAX_SHADOW_IN_FLIGHT = 32  # mirrored requests beyond this are skipped, never queued
STATES = (SHADOW, CANARY, PAUSED, PROMOTED, ROLLED_BACK, REPLACED)
DECISIONS = ("start", "advance", "promote", "rollback", "pause", "resume", "restore")


class RolloutController:
    def __init__(
        self,
        config: DistillConfig,
        proxy: Proxy,
        metrics: Metrics,
        *,
        store: Store,
        tick_s: float = 1.0,
        fleet: Coordinator | None = None,
    ) -> None:
        self.config = config
        self.proxy = proxy
        self.metrics = metrics
        self.store = store  # rollouts, decisions and the registry live here
        self.tick_s = tick_s
        self.fleet = fleet  # set in fleet mode: one leader decides, every replica follows
        self.version = -1  # the fleet's rollout version this replica last loaded
        self._lost = 0  # leadership losses already counted in the metric
        self._steps: dict[str, str] = {}  # route -> the step its local window counts for
        self.window = WindowStats()
        self.rollouts: dict[str, Rollout] = {}  # route -> its current (or last final) rollout
        # route -> the promoted rollout whose adapter serves it: the next rollout's baseline
        self.incumbents: dict[str, Rollout] = {}
        self.step_started: dict[str, float] = {}  # route -> wall clock
        self._gauged: dict[str, set[str]] = {}  # route -> adapters with rollout series now
        self._shadow_in_flight = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._lock = asyncio.Lock()
        proxy.hooks.append(self.on_exchange)
        # Series exist from the start at 0, so the first rollback is an increase alerts see.
        for route in config.routes:
            for decision in DECISIONS:
                metrics.rollout_decisions.labels(route.name, decision)

    # -- lifecycle -----------------------------------------------------------------------------

    def load(self) -> None:
        if self.fleet is not None:
            try:
                self.fleet.setup()
                self.reload(self.fleet.version())
            except Exception as exc:  # Postgres down at start: serve, and load when it is back
                log.error("fleet rollout state not loaded yet (%s); serving the config", exc)
            return
        for route, rollout in records.load_promoted(self.store).items():
            if self.config.route(route) is not None:
                self.incumbents[route] = rollout
                self.rollouts[route] = rollout
                self._apply(rollout)
        for rollout, started in records.load_active(self.store):
            if self.config.route(rollout.route) is None:
                log.warning(
                    "rollout %s names route %s, gone from the config", rollout.id, rollout.route
                )
                continue
            self.rollouts[rollout.route] = rollout
            self.step_started[rollout.route] = started
            self._apply(rollout)

    def reload(self, version: int) -> None:
        """Take the fleet's rollout state as stored (another replica changed it)."""
        promoted, current = records.load_current(self.store)  # one read-only connection
        incumbents = {
            route: rollout
            for route, rollout in promoted.items()
            if self.config.route(route) is not None
        }
        latest = [(r, started) for r, started in current if self.config.route(r.route) is not None]
        self.incumbents = incumbents
        for rollout, started in latest:
            self.rollouts[rollout.route] = rollout
            self.step_started[rollout.route] = started
            step = step_key(rollout.id, rollout.step_index)
            if self._steps.get(rollout.route) != step:
                self.window.reset(rollout.route)  # a new step: its window starts empty
                self._steps[rollout.route] = step
            self._apply(rollout)
        self.version = version

    async def run(self) -> None:
        if self.fleet is not None:
            await self._run_fleet(self.fleet)
            return
        while True:
            await asyncio.sleep(self.tick_s)
            try:
                await self.tick()
            except Exception:  # a bad tick must not stop the controller
                log.exception("rollout tick failed")

    async def _run_fleet(self, fleet: Coordinator) -> None:
        """Follow the fleet's version (every replica, twice a second); publish this replica's
        windows and, while leading, decide on the fleet's (every tick_s)."""
        poll_s = min(self.tick_s, FLEET_POLL_S)
        next_tick = time.monotonic() + self.tick_s
        try:
            while True:
                await asyncio.sleep(poll_s)
                try:
                    # The lease first: it is touched (or found lost) even when a sync fails.
                    leading = await asyncio.to_thread(fleet.hold_leadership)
                    self._count_leadership(fleet)
                    await self.sync()
                    if time.monotonic() < next_tick:
                        continue
                    next_tick = time.monotonic() + self.tick_s
                    for route, rollout in list(self.rollouts.items()):
                        if rollout.active:
                            numbers = export(self.window, route)
                            step = step_key(rollout.id, rollout.step_index)
                            await asyncio.to_thread(fleet.publish, step, numbers)
                    if leading:
                        await self.tick()
                        self._count_leadership(fleet)
                except Exception as exc:  # Postgres away: keep serving the weights we have
                    self.metrics.fleet_sync_errors.inc()
                    log.warning("fleet rollout sync failed: %s", exc)
                    self._count_leadership(fleet)
        finally:
            await asyncio.to_thread(fleet.release)

    def _count_leadership(self, fleet: Coordinator) -> None:
        self.metrics.rollout_leader.set(float(fleet.leading))
        if fleet.lost > self._lost:
            self.metrics.rollout_leadership_lost.inc(fleet.lost - self._lost)
            self._lost = fleet.lost

    async def sync(self) -> bool:
        """Reload the rollouts when the fleet's version moved; True if it did."""
        if self.fleet is None:
            return False
        version = await asyncio.to_thread(self.fleet.version)
        if version == self.version:
            return False
        async with self._lock:
            await asyncio.to_thread(self.reload, version)
        return True

    # -- commands ------------------------------------------------------------------------------

    async def start(
        self,
        route_name: str,
        adapter: str,
        *,
        steps: tuple[float, ...] | None = None,
        gates: Gates | None = None,
        shadow_rate: float = 0.5,
    ) -> Rollout:
        route = self.config.route(route_name)
        if route is None:
            known = ", ".join(r.name for r in self.config.routes) or "none"
            raise NotFound(f"no route named {route_name!r} (routes: {known})", param="route")
        if not 0 < shadow_rate <= 1:
            raise InvalidRequest(
                f"shadow_rate must be in (0, 1], got {shadow_rate}", param="shadow_rate"
            )
        try:
            steps = check_steps(tuple(steps)) if steps is not None else None
        except RolloutError as exc:
            raise InvalidRequest(str(exc), param="steps") from None
        variant = self._student(route, adapter)
        await self._check_served(variant)
        await self.sync()
        async with self._lock:
            current = self.rollouts.get(route_name)
            if current is not None and current.active:
                raise Conflict(
                    f"route {route_name!r} already has a rollout of {current.adapter!r} "
                    f"({current.state}); promote or roll it back first",
                    code="rollout_active",
                )
            rollout = Rollout(
                id=records.new_id("ro"),
                route=route_name,
                adapter=adapter,
                steps=steps or DEFAULT_STEPS,
                gates=gates or Gates(),
                shadow_rate=shadow_rate,
            )
            self.proxy.overrides.students.setdefault(route_name, {})[adapter] = variant
            await self._transition(rollout, "start", f"shadow {shadow_rate:.0%} of traffic", {})
        return rollout

    async def command(self, route_name: str, action: str) -> Rollout:
        await self.sync()
        async with self._lock:
            current = self.rollouts.get(route_name)
            if current is None:
                raise NotFound(f"route {route_name!r} has no rollout", param="route")
            incumbent = self.incumbents.get(route_name)
            if action == "rollback" and not current.active and incumbent is not None:
                current = incumbent  # the last rollout is over: take the promoted student off
            elif action == "rollback" and not current.active and current.state != PROMOTED:
                raise Conflict(
                    f"route {route_name!r} already serves the teacher (its last rollout, of "
                    f"{current.adapter!r}, is {current.state}); nothing to roll back",
                    code="rollout_state",
                )
            try:
                updated = {
                    "pause": current.pause,
                    "resume": current.resume,
                    "promote": current.promote,
                    "rollback": current.rollback,
                }[action]()
            except RolloutError as exc:
                raise Conflict(str(exc), code="rollout_state") from None
            await self._transition(updated, action, "by an operator", {}, previous=current)
        return updated

    async def status(self) -> list[dict[str, Any]]:
        """Each route's rollout with the numbers of its current step: in a fleet (or one
        host's workers) the merged numbers of every replica, the ones the leader's gates
        judge (`window_scope` says which)."""
        out = []
        for route, rollout in sorted(self.rollouts.items()):
            baseline = self.baseline(rollout)
            windows, scope = await self._shown_windows(route, rollout)
            out.append(
                {
                    "id": rollout.id,
                    "route": route,
                    "adapter": rollout.adapter,
                    "state": rollout.state,
                    "weight": rollout.weight,
                    "step_index": rollout.step_index,
                    "steps": list(rollout.steps),
                    "step_started_at": self.step_started.get(route),
                    "baseline": baseline,
                    "window_scope": scope,
                    "student": windows.get(rollout.adapter, Window()).__dict__,
                    "teacher": windows.get(baseline, Window()).__dict__,
                }
            )
        return out

    async def _shown_windows(self, route: str, rollout: Rollout) -> tuple[dict[str, Window], str]:
        local = {v: self.window.window(route, v) for v in (rollout.adapter, self.baseline(rollout))}
        if self.fleet is None:
            return local, "process"
        if not rollout.active:  # nothing is judged on a finished rollout: no shared numbers
            return local, "replica"
        try:
            return await self._windows(route, rollout), self.fleet.scope
        except Exception as exc:  # the shared numbers unreachable: say whose these are
            log.warning("fleet windows of %s not read (%s): showing this replica's", route, exc)
            return local, "replica"

    # -- the loop ------------------------------------------------------------------------------

    async def tick(self, now: float | None = None) -> list[tuple[str, Verdict]]:
        decided = []
        async with self._lock:
            for route, rollout in list(self.rollouts.items()):
                if rollout.state not in (SHADOW, CANARY):
                    continue
                windows = await self._windows(route, rollout)
                verdict = evaluate(
                    rollout.gates,
                    windows.get(rollout.adapter, Window()),
                    windows.get(self.baseline(rollout), Window()),
                    (now or time.time()) - self.step_started.get(route, time.time()),
                    shadow=rollout.state == SHADOW,
                )
                try:
                    if verdict.action in ("advance", "rollback"):
                        await self._transition(
                            rollout.advance()
                            if verdict.action == "advance"
                            else rollout.rollback(),
                            verdict.action,
                            "; ".join(verdict.reasons),
                            verdict.numbers,
                            previous=rollout,
                            by_leader=True,
                        )
                except NotLeading:  # the lease ran out (a stalled loop): the new leader decides
                    break
                decided.append((route, verdict))
        return decided

    async def _windows(self, route: str, rollout: Rollout) -> dict[str, Window]:
        """The numbers the gates judge: this process's, or in a fleet every replica's."""
        if self.fleet is None:
            variants = (rollout.adapter, self.baseline(rollout))
            return {v: self.window.window(route, v) for v in variants}
        step = step_key(rollout.id, rollout.step_index)
        return await asyncio.to_thread(self.fleet.windows, step)

    async def _transition(
        self,
        rollout: Rollout,
        decision: str,
        reason: str,
        numbers: dict[str, Any],
        previous: Rollout | None = None,
        *,
        by_leader: bool = False,
    ) -> None:
        """Change a rollout's state; in a fleet under the fleet's lock, only if nobody changed
        the state since this replica loaded it, and with a new version the others follow. A
        gate decision (`by_leader`) is taken only if this replica still holds the leader lock,
        confirmed under the change lock; else NotLeading and nothing is written."""
        if self.fleet is None:
            await self._commit(rollout, decision, reason, numbers, previous)
            return
        fleet = self.fleet
        conn = await asyncio.to_thread(fleet.lock)
        try:
            if await asyncio.to_thread(fleet.current, conn) != self.version:
                raise Conflict(
                    "the fleet's rollout state changed on another replica meanwhile; "
                    "nothing was done: retry (the state is reloaded)",
                    code="rollout_state_changed",
                )
            fence = None
            if by_leader:
                if not await asyncio.to_thread(fleet.confirm):
                    raise NotLeading(f"{fleet.instance} no longer leads: {decision} not taken")
                fence = fleet.fence()
            try:
                await self._commit(rollout, decision, reason, numbers, previous, fence=fence)
            except records.FencedError as exc:
                # Frozen between the confirmation and the write: another replica leads now.
                # Nothing was written; take back the state this replica had applied.
                fleet.step_down(str(exc))
                await asyncio.to_thread(self.reload, self.version)
                raise NotLeading(str(exc)) from None
            self._steps[rollout.route] = step_key(rollout.id, rollout.step_index)
            self.version = await asyncio.to_thread(fleet.bump, conn)
        finally:
            await asyncio.to_thread(fleet.unlock, conn)

    async def _commit(
        self,
        rollout: Rollout,
        decision: str,
        reason: str,
        numbers: dict[str, Any],
        previous: Rollout | None = None,
        *,
        fence: tuple[str, list[Any]] | None = None,
    ) -> None:
        started = time.time()
        if decision in ("pause", "resume"):
            started = self.step_started.get(rollout.route, started)
        else:  # a new step: its window starts empty
            self.window.reset(rollout.route)
            self.step_started[rollout.route] = started
        if rollout.state == PROMOTED:
            decision = "promote"
        replaced = self.incumbents.get(rollout.route)
        restored = None
        if rollout.state == PROMOTED:
            self.incumbents[rollout.route] = rollout
        elif rollout.state == ROLLED_BACK and replaced is not None and replaced.id == rollout.id:
            # The operator took the promoted student off: the one it replaced serves again
            # (or the teacher, when it replaced none).
            restored = await asyncio.to_thread(records.load_replaced, self.store, rollout.route)
            if restored is None:
                del self.incumbents[rollout.route]
            else:
                restored = replace(restored, state=PROMOTED)
                self.incumbents[rollout.route] = restored
        self.rollouts[rollout.route] = rollout
        self._apply(rollout)
        from_step = previous.step_index if previous else -1
        also: list[records.Change] = []
        if restored is not None:  # the replaced promotion serves again: in the same write
            reason_back = (
                f"{rollout.adapter} rolled back by an operator: {restored.adapter} serves again"
            )
            back = records.Decision("restore", restored.step_index, reason_back)
            also.append(records.Change(restored, started, back))
        retired = (
            replaced
            if rollout.state == PROMOTED and replaced is not None and replaced.id != rollout.id
            else None
        )
        if retired is not None:  # the promotion this one takes over from
            taken_over = self.step_started.get(rollout.route, started)
            also.append(records.Change(replace(retired, state=REPLACED), taken_over))
        await asyncio.to_thread(
            functools.partial(
                records.save,
                self.store,
                rollout,
                started,
                records.Decision(decision, from_step, reason, numbers),
                fence=fence,
                also=also,
            )
        )
        self.metrics.rollout_decisions.labels(rollout.route, decision).inc()  # once written
        log.info(
            "rollout %s %s: %s -> %s (%s)",
            rollout.route,
            rollout.adapter,
            decision,
            rollout.state,
            reason,
        )
        await asyncio.to_thread(self._follow_registry, rollout.adapter, rollout.registry_state)
        if restored is not None:
            self.metrics.rollout_decisions.labels(restored.route, "restore").inc()
            await asyncio.to_thread(self._follow_registry, restored.adapter, "stable")
            log.info("rollout %s %s: restore -> promoted", restored.route, restored.adapter)
        if retired is not None:
            await asyncio.to_thread(self._follow_registry, retired.adapter, "retired")

    def baseline(self, rollout: Rollout) -> str:
        """What the candidate is compared with and mirrored from: the promoted student, if any."""
        incumbent = self.incumbents.get(rollout.route)
        if incumbent is None or incumbent.adapter == rollout.adapter:
            return TEACHER
        return incumbent.adapter

    def _apply(self, rollout: Rollout) -> None:
        """Routing, shadow and gauges as the rollout says."""
        route = rollout.route
        overrides = self.proxy.overrides
        route_config = self.config.route(route)
        baseline = self.baseline(rollout)
        serving = [rollout.adapter] + ([baseline] if baseline != TEACHER else [])
        for adapter in serving:  # a restored baseline may not have been served since start
            if route_config is not None and adapter not in overrides.students.get(route, {}):
                overrides.students.setdefault(route, {})[adapter] = self._student(
                    route_config, adapter
                )
        # The candidate first: raising its weight only moves users off the baseline.
        weights = {rollout.adapter: rollout.weight}
        if baseline != TEACHER:
            weights[baseline] = 100 - rollout.weight
        overrides.weights[route] = weights
        if rollout.state in (SHADOW, CANARY):
            overrides.shadow[route] = (rollout.adapter, rollout.shadow_rate)
        else:
            overrides.shadow.pop(route, None)
        m = self.metrics
        m.route_weight.labels(route, TEACHER).set(
            0 if baseline != TEACHER else 1 - rollout.weight / 100
        )
        for name, weight in weights.items():
            m.route_weight.labels(route, name).set(weight / 100)
        shown = {rollout: rollout.weight}
        incumbent = self.incumbents.get(route)
        if incumbent is not None and baseline == incumbent.adapter:
            shown[incumbent] = 100 - rollout.weight
        for each, step in shown.items():
            m.rollout_step.labels(route, each.adapter).set(step)
            for state in STATES:
                m.rollout_state.labels(route, each.adapter, state).set(float(state == each.state))
        # An adapter no longer on the route (replaced, or an earlier rollout's) loses its
        # series: a gauge left at promoted=1 would claim it still serves.
        now = {r.adapter for r in shown}
        for gone in self._gauged.get(route, set()) - now:
            m.drop(m.route_weight, route, gone)
            m.drop(m.rollout_step, route, gone)
            for state in STATES:
                m.drop(m.rollout_state, route, gone, state)
        self._gauged[route] = now

    def _follow_registry(self, adapter: str, state: str) -> None:
        """The adapter registry's state follows the rollout (when the adapter is registered)."""
        try:
            set_state(self.store, adapter, state)
        except AdapterNotFoundError:
            pass
        except ValueError as exc:
            log.warning("registry state of %s not changed: %s", adapter, exc)

    # -- traffic -------------------------------------------------------------------------------

    def on_exchange(self, exchange: Exchange) -> None:
        route = exchange.route_name
        rollout = self.rollouts.get(route)
        if rollout is None or not rollout.active:
            return
        variant = exchange.variant.name
        baseline = self.baseline(rollout)
        if variant in (baseline, rollout.adapter):
            self.window.observe(
                route,
                variant,
                ok=exchange.status == 200,
                latency_ms=exchange.latency_ms or 0.0,
                ttft_ms=exchange.ttft_ms,
            )
        shadow = self.proxy.overrides.shadow.get(route)
        if (
            shadow is None
            or exchange.kind != "primary"
            or variant != baseline
            or exchange.status != 200
            or not exchange.mirror  # a Responses continuation: a student cannot resolve it
        ):
            return
        student, rate = shadow
        if unit_point("shadow", exchange.pair_id) >= rate:
            return
        if self._shadow_in_flight >= MAX_SHADOW_IN_FLIGHT:
            self.metrics.shadow_requests.labels(route, student, "skipped").inc()
            return
        target = self.proxy.overrides.variant(exchange.route, student)  # type: ignore[arg-type]
        self._shadow_in_flight += 1
        task = asyncio.get_running_loop().create_task(self._shadow(exchange, target))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _shadow(self, primary: Exchange, student: Variant) -> None:
        route = primary.route_name
        try:
            shadow = await self.proxy.send_shadow(primary, student)
        finally:
            self._shadow_in_flight -= 1
        if shadow.status != 200:
            self.metrics.shadow_requests.labels(route, student.name, "error").inc()
            return
        self.metrics.shadow_requests.labels(route, student.name, "ok").inc()
        mode = primary.route.shadow.agreement if primary.route else "normalized"
        score = agreement(primary.answer, shadow.answer, mode)
        self.metrics.agreement.labels(route, student.name).observe(score)
        self.window.observe_agreement(route, student.name, score)

    def observe_feedback(self, route: str, variant: str, *, negative: bool) -> None:
        rollout = self.rollouts.get(route)
        if rollout is not None and rollout.active:
            self.window.observe_feedback(route, variant, negative=negative)

    # -- helpers -------------------------------------------------------------------------------

    def _student(self, route: RouteConfig, adapter: str) -> Variant:
        for student in route.students:
            if adapter in (student.name, student.model):
                return Variant(adapter, student.upstream, student.model)
        if route.student_upstream is None:
            names = ", ".join(s.name for s in route.students) or "none"
            raise NotFound(
                f"route {route.name!r} has no student {adapter!r} (students: {names}); add it "
                "under the route's `students`, or set `student_upstream` to roll out any "
                "adapter served there",
                param="adapter",
            )
        return Variant(adapter, route.student_upstream, adapter)

    async def _check_served(self, variant: Variant) -> None:
        """The adapter must be loaded where it will be served, or every request would fail."""
        upstream = self.proxy.upstreams[variant.upstream]
        url = f"{upstream.config.base_url}/models"
        try:
            async with upstream.session().get(url, headers=upstream.headers(None)) as response:
                listing = await response.json(content_type=None) if response.ok else {}
        except Exception as exc:
            raise Conflict(
                f"student upstream {variant.upstream!r} is unreachable ({exc!r})",
                code="student_unreachable",
            ) from None
        served = [m.get("id") for m in listing.get("data", []) if isinstance(m, dict)]
        if variant.model not in served:
            raise Conflict(
                f"adapter {variant.model!r} is not loaded on upstream {variant.upstream!r} "
                f"(served: {', '.join(map(str, served)) or 'none'}); load it first with "
                f"`distill adapters load {variant.model} --server {upstream.config.base_url}`",
                code="adapter_not_loaded",
            )


def replace_gates(base: Gates, values: dict[str, Any]) -> Gates:
    unknown = sorted(set(values) - set(base.__dataclass_fields__))
    if unknown:
        raise InvalidRequest(
            f"unknown gate(s) {', '.join(unknown)}; known: {', '.join(base.__dataclass_fields__)}",
            param="gates",
        )
    try:
        return replace(base, **values)
    except (TypeError, ValueError) as exc:
        raise InvalidRequest(str(exc), param="gates") from None
