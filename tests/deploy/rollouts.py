"""Rollout traffic for the query tests: a good student promoted, a bad one rolled back, feedback."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import openai

from distill_demo.teacher.task import SYSTEM_PROMPT, generate_ticket

TOKEN = "deploy-admin-token"  # set as DISTILL_ADMIN_TOKEN by the test
CANARY_ROUTE, ROLLBACK_ROUTE = "triage-canary", "triage-rollback"
GOOD, BAD = "good-student", "bad-student"
ROLLBACKS = 2  # the first creates the rollback series at 1; only a second shows as an increase
REQUESTS_PER_ROUND = 24  # per rollout route
GATES = {
    "min_requests": 15,
    "min_seconds": 0,
    "min_agreement_pairs": 10,
    # These rollouts are about agreement; a stall on 2 busy CI cores must not roll back the good.
    "latency_slack_ms": 10_000,
    "ttft_slack_ms": 10_000,
}


def rollout_routes(good_url: str, bad_url: str) -> Callable[[dict[str, Any]], None]:
    """Two routes whose rollouts may bring any model served by the good or the bad student."""

    def edit(cfg: dict[str, Any]) -> None:
        for upstream, url in (("good", good_url), ("bad", bad_url)):
            cfg["upstreams"][upstream] = {"base_url": url, "timeout_s": 5, "connect_timeout_s": 1}
        for route, upstream in ((CANARY_ROUTE, "good"), (ROLLBACK_ROUTE, "bad")):
            cfg["routes"].append(
                {
                    "name": route,
                    "match": [f"{route}-model"],
                    "teacher": {"upstream": "teacher", "model": "gpt-4o"},
                    "student_upstream": upstream,
                }
            )
        cfg["rollout"] = {"tick_s": 0.1, "shadow_rate": 1.0}

    return edit


@dataclass
class RolloutDriver:
    """Starts the rollouts, then each `round()` sends tickets on both routes, restarts the bad
    rollout once it was rolled back (after Prometheus saw it), and posts feedback once the good
    student answers clients."""

    url: str  # the gateway's root URL
    scraped: Callable[[str], object]  # waits until Prometheus returns data for a query
    rollbacks: int = 0
    feedback: list[tuple[str, float]] = field(default_factory=list)  # (variant, score) posted
    answers: dict[str, list[str]] = field(default_factory=dict)  # canary variant -> request ids
    rounds_done_since: int | None = None  # the round in which everything had happened
    _round: int = 0
    _rng: random.Random = field(default_factory=lambda: random.Random(0))

    def __post_init__(self) -> None:
        self.admin = httpx.Client(
            base_url=f"{self.url}/admin", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10
        )
        self.app = openai.OpenAI(base_url=f"{self.url}/v1", api_key="k", max_retries=0, timeout=10)

    def start(self, route: str, adapter: str) -> None:
        body = {"route": route, "adapter": adapter, "steps": [50, 100], "gates": GATES}
        reply = self.admin.post("/rollouts", json=body)
        assert reply.status_code == 201, reply.text

    def states(self) -> dict[str, dict[str, Any]]:
        return {r["route"]: r for r in self.admin.get("/rollouts").json()["active"]}

    def send(self, route: str, count: int) -> None:
        for _ in range(count):
            ticket, _label = generate_ticket(self._rng)
            raw = self.app.chat.completions.with_raw_response.create(
                model=f"{route}-model",
                user=f"rollout-user-{self._rng.randrange(10**6)}",
                messages=[
                    {"role": "system", "content": SYSTEM_PROMPT},
                    {"role": "user", "content": ticket},
                ],
            )
            assert raw.http_response.status_code == 200
            if route == CANARY_ROUTE:
                variant = raw.headers["x-distill-variant"]
                self.answers.setdefault(variant, []).append(raw.headers["x-distill-request-id"])

    def post_feedback(self) -> None:
        """A thumbs up and a thumbs down for a teacher answer and a student answer (fewer than
        the feedback gate's minimum: the good student's rollout must not depend on them)."""
        for variant in ("teacher", GOOD):
            for request_id, score in zip(self.answers[variant][-2:], (1.0, 0.0), strict=True):
                reply = httpx.post(
                    f"{self.url}/v1/feedback",
                    json={"request_id": request_id, "score": score, "source": "deploy-test"},
                )
                assert reply.status_code == 201, reply.text
                self.feedback.append((variant, score))

    def round(self) -> None:
        self._round += 1
        self.send(CANARY_ROUTE, REQUESTS_PER_ROUND)
        self.send(ROLLBACK_ROUTE, REQUESTS_PER_ROUND)
        states = self.states()
        if states[ROLLBACK_ROUTE]["state"] == "rolled_back" and self.rollbacks < ROLLBACKS:
            self.rollbacks += 1
            self.scraped(
                f'distill_rollout_decisions_total{{route="{ROLLBACK_ROUTE}", '
                f'decision="rollback"}} == {self.rollbacks}'
            )
            if self.rollbacks < ROLLBACKS:
                self.start(ROLLBACK_ROUTE, BAD)
        if not self.feedback and len(self.answers.get(GOOD, [])) >= 2:
            self.post_feedback()
        done = (
            states[CANARY_ROUTE]["state"] == "promoted"
            and self.rollbacks == ROLLBACKS
            and self.feedback
        )
        if done and self.rounds_done_since is None:
            self.rounds_done_since = self._round

    @property
    def settled(self) -> bool:
        """Everything happened at least a round ago: its series were scraped more than once."""
        return self.rounds_done_since is not None and self.rounds_done_since < self._round

    def describe(self) -> str:
        return f"rollbacks {self.rollbacks}, feedback {self.feedback}, rollouts {self.states()}"

    def close(self) -> None:
        self.admin.close()
        self.app.close()
