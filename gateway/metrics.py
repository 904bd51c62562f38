"""Prometheus metrics of the gateway: names and labels are a contract with dashboards and alerts.

One process (`distill serve`): each app has a registry of its own, exposed as it is.
Several (`distill serve --workers N`): the supervisor sets PROMETHEUS_MULTIPROC_DIR before
it starts the workers, so prometheus_client (which picks its value class when it is imported)
keeps every value in a file per worker there, and `/metrics`, whichever worker answers it,
exposes all workers' files merged (`exposition`): counters and histograms summed, also over
dead workers' files (so they never go down), each gauge by its `multiprocess_mode` over the
live workers only (`mark_process_dead` drops a dead worker's). Every gauge here has a mode
(the default, "all", would add a `pid` label); the multiprocess mode has no Info, no Enum,
no custom collector, no set_function and no `remove`, so the build info is a gauge, and a
series that goes away is dropped through `Metrics.drop`.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"  # prometheus_client's own switch

# Latency buckets from sub-millisecond (gateway overhead) to minutes (long generations).
LATENCY_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
)
AGREEMENT_BUCKETS = (0.0, 0.25, 0.5, 0.75, 0.9, 1.0)
MIRROR_KINDS = frozenset({"shadow", "secondary"})  # log `kind`s no client ever receives


def multiprocess_dir() -> str | None:
    """The directory of every worker's values under `distill serve --workers`, else None."""
    return os.environ.get(MULTIPROC_ENV) or None


class LiveValues(MultiProcessCollector):
    """Every worker's values merged, less the series dropped (`Metrics.drop`: NaN)."""

    def __init__(self, registry: CollectorRegistry | None, path: str) -> None:
        super().__init__(registry, path=path)  # type: ignore[no-untyped-call]

    def collect(self) -> Iterable[Metric]:
        for metric in super().collect():  # type: ignore[no-untyped-call]
            if metric.type == "gauge":
                metric.samples = [s for s in metric.samples if not math.isnan(s.value)]
            yield metric


def exposition(registry: CollectorRegistry) -> bytes:
    """The body of `/metrics`: this app's registry, or with workers all workers' values."""
    path = multiprocess_dir()
    if path is None:
        return generate_latest(registry)
    merged = CollectorRegistry()  # per scrape, as prometheus_client's docs do
    LiveValues(merged, path=path)
    return generate_latest(merged)


def traffic_of(kind: str) -> str:
    """The `traffic` label of an exchange of log `kind`: "mirror" or "live"."""
    return "mirror" if kind in MIRROR_KINDS else "live"


@dataclass
class Metrics:
    """Every series the gateway exports, registered on one registry (a fresh one per test)."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        rv = ["route", "variant"]
        # `traffic`: "live" for answers a client waits on (primary and fallback), "mirror" for
        # copies it never sees (shadow students, secondary teachers). Dashboards, cost and
        # alerts read live traffic only, so a failing shadow student never looks like an outage.
        rvt = [*rv, "traffic"]
        # A gauge, not an Info (the multiprocess mode has none), with an Info's exposition:
        # `distill_build_info{version="..."} 1`. livemax: 1 while any worker runs; a version
        # upgraded under a running supervisor shows both.
        self.build = Gauge(
            "distill_build_info",
            "Distill version.",
            ["version"],
            multiprocess_mode="livemax",
            registry=r,
        )
        # Traffic
        self.requests = Counter(
            "distill_requests",
            "Requests answered, by route, variant, traffic (live or mirror) and HTTP status.",
            [*rvt, "status"],
            registry=r,
        )
        self.latency = Histogram(
            "distill_request_duration_seconds",
            "Gateway receive to last byte.",
            rvt,
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.ttft = Histogram(
            "distill_ttft_seconds",
            "Gateway receive to first content byte (streams).",
            rvt,
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.upstream_latency = Histogram(
            "distill_upstream_duration_seconds",
            "Time spent waiting on the upstream.",
            rvt,
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.tokens = Counter(
            "distill_tokens",
            "Tokens processed, by kind (prompt or completion) and traffic (live or mirror).",
            [*rvt, "kind"],
            registry=r,
        )
        self.cost = Counter(
            "distill_cost_usd",
            "Estimated spend from configured per-token prices, live and mirrored traffic.",
            rvt,
            registry=r,
        )
        self.gateway_errors = Counter(
            "distill_gateway_errors",
            "Requests the gateway refused itself, by error code.",
            ["code"],
            registry=r,
        )
        self.in_flight = Gauge(
            "distill_requests_in_flight",
            "Requests being served now.",
            multiprocess_mode="livesum",  # the host's: each worker counts its own
            registry=r,
        )
        # Students
        self.fallbacks = Counter(
            "distill_fallbacks",
            "Student attempts that failed before the first byte and were answered by the teacher.",
            [*rv, "reason"],
            registry=r,
        )
        self.shadow_requests = Counter(
            "distill_shadow_requests",
            "Shadow requests sent to a candidate, by outcome.",
            [*rv, "outcome"],
            registry=r,
        )
        self.agreement = Histogram(
            "distill_shadow_agreement_score",
            "Agreement of a shadow answer with the teacher's.",
            rv,
            buckets=AGREEMENT_BUCKETS,
            registry=r,
        )
        self.feedback = Counter(
            "distill_feedback",
            "Feedback received, by sentiment (positive or negative).",
            [*rv, "sentiment"],
            registry=r,
        )
        # Rollouts
        self.route_weight = Gauge(
            "distill_route_weight",
            "Share of a route's traffic a variant gets (0..1).",
            rv,
            # Every worker applies the same rollout state; the value set last is the newest
            # state (a worker that has not polled the change yet set its value earlier).
            # max would keep a weight just lowered by a rollback until every worker applied it.
            multiprocess_mode="livemostrecent",
            registry=r,
        )
        self.rollout_step = Gauge(
            "distill_rollout_step_percent",
            "Canary percent of the active rollout (0 in shadow).",
            ["route", "adapter"],
            multiprocess_mode="livemostrecent",  # as distill_route_weight
            registry=r,
        )
        self.rollout_state = Gauge(
            "distill_rollout_state",
            "1 for the rollout's current state, 0 otherwise.",
            ["route", "adapter", "state"],
            multiprocess_mode="livemostrecent",  # as distill_route_weight
            registry=r,
        )
        self.rollout_decisions = Counter(
            "distill_rollout_decisions",
            "Decisions taken by the rollout controller.",
            ["route", "decision"],
            registry=r,
        )
        self.rollout_leader = Gauge(
            "distill_rollout_leader",
            "1 while this replica leads the fleet's rollout controller (fleet store), else 0.",
            # The host leads if one of its workers does (at most one does: one lock per host,
            # or per fleet), so the fleet alerts' sum over hosts counts leaders.
            multiprocess_mode="livesum",
            registry=r,
        )
        self.fleet_replica = Gauge(
            "distill_fleet_replica",
            "1 on a replica of a fleet (store.format: fleet), where one replica of all leads "
            "the rollouts; 0 on a gateway with a store of its own.",
            multiprocess_mode="livemax",  # 1 per host, as the alerts' `== 1` expects
            registry=r,
        )
        self.rollout_leadership_lost = Counter(
            "distill_rollout_leadership_lost",
            "Times this replica lost the fleet's rollout leadership it held (its lock session "
            "ended: a loop stalled past the lease, or the connection broke); it stops deciding.",
            registry=r,
        )
        self.fleet_sync_errors = Counter(
            "distill_fleet_sync_errors",
            "Failed polls of the fleet's rollout state (PostgreSQL unreachable).",
            registry=r,
        )
        # Log pipeline
        self.rows_spooled = Counter(
            "distill_log_rows_spooled",
            "Records appended to the on-disk spool.",
            registry=r,
        )
        self.rows_written = Counter(
            "distill_log_rows_written",
            "Records written into the store.",
            registry=r,
        )
        self.rows_dropped = Counter(
            "distill_log_rows_dropped",
            "Records lost: could be neither spooled nor written.",
            registry=r,
        )
        self.rows_quarantined = Counter(
            "distill_log_rows_quarantined",
            "Records the store would not take, set aside in <spool>/rejected/ with the reason "
            "(invalid: not a row or a required value unusable; refused: the store refused it).",
            ["reason"],
            registry=r,
        )
        for reason in ("invalid", "refused"):  # at 0 from the start, so alerts see a rise
            self.rows_quarantined.labels(reason)
        self.rows_clamped = Counter(
            "distill_log_rows_clamped",
            "Records stored with a value that did not fit its column set to NULL (in notes).",
            registry=r,
        )
        self.rows_skipped = Counter(
            "distill_log_rows_skipped",
            "Exchanges not captured by policy (sampling, opt-out).",
            ["reason"],
            registry=r,
        )
        self.backlog = Gauge(
            "distill_log_backlog_records",
            "Records held in memory because the spool cannot be written (lost if the process "
            "dies).",
            multiprocess_mode="livesum",  # the host's: each worker's own backlog
            registry=r,
        )
        self.queue_depth = Gauge(
            "distill_log_queue_depth",
            "Records spooled but not yet in the store.",
            multiprocess_mode="livesum",  # the host's: each worker's own spool
            registry=r,
        )
        self.spool_bytes = Gauge(
            "distill_log_spool_bytes",
            "Bytes waiting in the spool.",
            multiprocess_mode="livesum",  # the host's: each worker's own spool
            registry=r,
        )
        self.write_errors = Counter(
            "distill_log_write_errors",
            "Failed attempts to write a batch into the store.",
            registry=r,
        )

    @staticmethod
    def drop(gauge: Gauge, *labelvalues: str) -> None:
        """Take a gauge's series off /metrics (nothing if it has none).

        The multiprocess mode cannot remove a value from a worker's file, so there the series
        is set to NaN, which `exposition` leaves out: the newest value wins under
        livemostrecent, so it is gone once a worker dropped it and none set it since.
        """
        if multiprocess_dir() is not None:
            gauge.labels(*labelvalues).set(math.nan)
            return
        with contextlib.suppress(KeyError):
            gauge.remove(*labelvalues)
