"""The demo's closing numbers: read from the store, the gateway's metrics and the dataset card."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import orjson
from prometheus_client.parser import text_string_to_metric_families

from gateway.store.backend import StoreRef, as_store


@dataclass(frozen=True)
class VariantCost:
    cost_usd: float
    requests: float

    @property
    def per_1k(self) -> float | None:
        return 1000 * self.cost_usd / self.requests if self.requests else None


def costs_by_variant(metrics_text: str, route: str) -> dict[str, VariantCost]:
    """Spend and requests per variant of `route` from a /metrics scrape (shadow calls included:
    they are spent too)."""
    cost: dict[str, float] = defaultdict(float)
    requests: dict[str, float] = defaultdict(float)
    for family in text_string_to_metric_families(metrics_text):
        for sample in family.samples:
            if sample.labels.get("route") != route:
                continue
            variant = sample.labels.get("variant", "")
            if sample.name == "distill_cost_usd_total":
                cost[variant] += sample.value
            elif sample.name == "distill_requests_total":
                requests[variant] += sample.value
    return {v: VariantCost(cost.get(v, 0.0), requests[v]) for v in requests}


def metric_value(metrics_text: str, name: str, labels: dict[str, str]) -> float | None:
    for family in text_string_to_metric_families(metrics_text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return None


@dataclass
class StoreNumbers:
    rows: dict[str, int] = field(default_factory=dict)  # by kind, plus "total"
    errors: int = 0  # rows with a non-200 status
    feedback: int = 0
    latency: dict[str, tuple[float, float, int]] = field(default_factory=dict)  # p50, p95, n
    rollouts: list[dict[str, Any]] = field(default_factory=list)  # oldest first, with decisions


def read_store(store: StoreRef, route: str) -> StoreNumbers:
    """The demo's figures from its store (a Store, or its path), read through the Store."""
    out = StoreNumbers()
    with as_store(store).connect(read_only=True) as conn:
        for kind, n in conn.execute("SELECT kind, count(*) FROM requests GROUP BY kind").fetchall():
            out.rows[str(kind)] = int(n)
        out.rows["total"] = sum(out.rows.values())
        row = conn.execute("SELECT count(*) FROM requests WHERE status <> 200").fetchone()
        out.errors = int(row[0]) if row else 0
        row = conn.execute("SELECT count(*) FROM feedback").fetchone()
        out.feedback = int(row[0]) if row else 0
        # Answered requests of the route, per variant: the student's include its shadow calls.
        for variant, p50, p95, n in conn.execute(
            "SELECT variant, quantile_cont(latency_ms, 0.5), quantile_cont(latency_ms, 0.95), "
            "count(*) FROM requests WHERE route = ? AND status = 200 GROUP BY variant "
            "ORDER BY variant",
            [route],
        ).fetchall():
            out.latency[str(variant)] = (float(p50), float(p95), int(n))
        rollouts = conn.execute(
            "SELECT id, adapter, state, steps FROM rollouts WHERE route = ? ORDER BY created_at",
            [route],
        ).fetchall()
        for rid, adapter, state, steps in rollouts:
            decisions = conn.execute(
                "SELECT decision, from_step, to_step, reason, numbers FROM rollout_decisions "
                "WHERE rollout_id = ? ORDER BY ts",
                [rid],
            ).fetchall()
            out.rollouts.append(
                {
                    "id": rid,
                    "adapter": adapter,
                    "state": state,
                    "steps": orjson.loads(steps),
                    "decisions": [
                        {
                            "decision": d,
                            "from_step": f,
                            "to_step": t,
                            "reason": r,
                            "numbers": orjson.loads(n) if n else {},
                        }
                        for d, f, t, r, n in decisions
                    ],
                }
            )
    return out


def step_label(steps: list[float], index: int | None) -> str:
    if index is None or index < 0:
        return "shadow"
    return f"{steps[index]:g}%"


def decision_lines(rollout: dict[str, Any]) -> list[str]:
    """One line per decision: what happened, to which step, and the numbers behind it."""
    lines = []
    for d in rollout["decisions"]:
        student = d["numbers"].get("student", {})
        facts = []
        if student.get("requests"):
            facts.append(f"{student['requests']} req")
        if student.get("agreement") is not None:
            facts.append(f"agreement {student['agreement']:.2f}/{student['agreement_pairs']}")
        where = step_label(rollout["steps"], d["to_step"])
        if d["decision"] == "rollback":
            where = "0%"
        elif d["decision"] == "promote":
            where = "100%"
        detail = f" [{', '.join(facts)}]" if facts else ""
        lines.append(f"{d['decision']} → {where}: {d['reason']}{detail}")
    return lines


def filter_counts(card: dict[str, Any]) -> list[tuple[str, int]]:
    """Filters that removed rows, in the order they ran."""
    return [(name, int(f["removed"])) for name, f in card["filters"].items() if f["removed"]]


def outcome_problems(results: dict[str, Any], good: str, weak: str) -> list[str]:
    """What did not end as the demo promises: weak rolled back, good promoted and serving all."""
    states = results.get("rollouts", {})
    problems = []
    if states.get(weak) != "rolled_back":
        problems.append(f"the weak adapter {weak} was not rolled back (state {states.get(weak)})")
    if states.get(good) != "promoted":
        accuracy = results.get("eval_good", {}).get("accuracy")
        problems.append(
            f"the good adapter {good} was not promoted (state {states.get(good)}"
            + (f"; its eval accuracy was {accuracy:.3f}" if accuracy is not None else "")
            + "): train it longer with a larger --good-steps"
        )
    check = results.get("final_check")
    if check and states.get(good) == "promoted" and check["on_student"] < check["requests"]:
        problems.append(
            f"after promotion only {check['on_student']}/{check['requests']} new users "
            f"were answered by {good}"
        )
    return problems
