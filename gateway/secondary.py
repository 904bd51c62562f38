"""Second opinions: a sampled, rate-capped share of a route's requests also goes to other
teachers in the background, logged under the primary's pair id for consensus targets."""

from __future__ import annotations

import asyncio
import time

from gateway.auth import TokenBucket
from gateway.config import DistillConfig
from gateway.metrics import Metrics
from gateway.proxy import Exchange, Proxy
from gateway.routing import Variant, unit_point

MAX_IN_FLIGHT = 64  # beyond this, second opinions are skipped, never queued


class SecondaryTeachers:
    def __init__(self, config: DistillConfig, proxy: Proxy, metrics: Metrics) -> None:
        self.proxy = proxy
        self.metrics = metrics
        self.routes = {r.name: r.secondary_teachers for r in config.routes if r.secondary_teachers}
        self.buckets = {
            (r, t.name): TokenBucket(t.max_rps, max(1.0, t.max_rps))
            for r, teachers in self.routes.items()
            for t in teachers
            if t.max_rps
        }
        self._in_flight = 0
        self._tasks: set[asyncio.Task[Exchange]] = set()
        if self.routes:
            proxy.hooks.append(self.on_exchange)

    def on_exchange(self, exchange: Exchange) -> None:
        teachers = self.routes.get(exchange.route_name)
        if not teachers or exchange.kind != "primary" or not exchange.variant.is_teacher:
            return
        if exchange.status != 200 or not exchange.mirror:
            return
        now = time.monotonic()
        for teacher in teachers:
            outcome = self._admit(exchange, teacher.name, teacher.sample_rate, now)
            if outcome != "sent":
                if outcome != "sampled_out":
                    self.metrics.shadow_requests.labels(
                        exchange.route_name, teacher.name, outcome
                    ).inc()
                continue
            variant = Variant(teacher.name, teacher.upstream, teacher.model)
            self._in_flight += 1
            task = asyncio.get_running_loop().create_task(self._send(exchange, variant))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _admit(self, exchange: Exchange, name: str, rate: float, now: float) -> str:
        if unit_point(f"secondary:{name}", exchange.pair_id) >= rate:
            return "sampled_out"
        bucket = self.buckets.get((exchange.route_name, name))
        if bucket is not None and bucket.take(now) > 0:
            return "rate_limited"
        if self._in_flight >= MAX_IN_FLIGHT:
            return "skipped"
        return "sent"

    async def _send(self, primary: Exchange, variant: Variant) -> Exchange:
        try:
            done = await self.proxy.send_shadow(primary, variant, kind="secondary")
        finally:
            self._in_flight -= 1
        outcome = "ok" if done.status == 200 else "error"
        self.metrics.shadow_requests.labels(primary.route_name, variant.name, outcome).inc()
        return done
