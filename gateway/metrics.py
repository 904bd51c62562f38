"""Prometheus metrics of the gateway: names and labels are a contract with dashboards and alerts."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

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
        self.info = Info("distill_build", "Distill version.", registry=r)
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
            registry=r,
        )
        self.rollout_step = Gauge(
            "distill_rollout_step_percent",
            "Canary percent of the active rollout (0 in shadow).",
            ["route", "adapter"],
            registry=r,
        )
        self.rollout_state = Gauge(
            "distill_rollout_state",
            "1 for the rollout's current state, 0 otherwise.",
            ["route", "adapter", "state"],
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
            registry=r,
        )
        self.fleet_replica = Gauge(
            "distill_fleet_replica",
            "1 on a replica of a fleet (store.format: fleet), where one replica of all leads "
            "the rollouts; 0 on a gateway with a store of its own.",
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
            registry=r,
        )
        self.queue_depth = Gauge(
            "distill_log_queue_depth",
            "Records spooled but not yet in the store.",
            registry=r,
        )
        self.spool_bytes = Gauge(
            "distill_log_spool_bytes",
            "Bytes waiting in the spool.",
            registry=r,
        )
        self.write_errors = Counter(
            "distill_log_write_errors",
            "Failed attempts to write a batch into the store.",
            registry=r,
        )
