"""Realistic demo traffic through the gateway with the official `openai` client: several users,
some streaming, a few bad requests, some feedback."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
import openai

from distill_demo.settings import TEACHER_MODEL
from distill_demo.teacher.task import SYSTEM_PROMPT, generate_ticket

CHAT, STREAM, BAD_MODEL, BAD_BODY = "chat", "stream", "bad_model", "bad_body"


@dataclass(frozen=True)
class RequestSpec:
    index: int
    kind: str  # chat | stream | bad_model | bad_body
    user: str
    ticket: str
    label: str
    feedback: float | None = None  # a score to send for this answer (1 good, 0 bad)


@dataclass(frozen=True)
class Outcome:
    spec: RequestSpec
    status: int
    variant: str | None
    request_id: str | None
    answer: str | None
    seconds: float
    error: str | None = None

    @property
    def expected(self) -> bool:
        """Good requests answered 200, bad ones refused with a 4xx."""
        if self.spec.kind in (BAD_MODEL, BAD_BODY):
            return 400 <= self.status < 500
        return self.status == 200


def plan_requests(
    n: int,
    *,
    seed: int,
    users: int,
    stream_share: float,
    feedback_share: float,
    bad_requests: int,
    start: int = 0,
    user_prefix: str = "user",
) -> list[RequestSpec]:
    """`n` requests, reproducible from `seed`."""
    rng = random.Random(seed)
    # Bad requests spread evenly, alternating an unknown model (404) and an empty body (400).
    bad_at = {round((k + 0.5) * n / bad_requests): k for k in range(bad_requests)}
    specs: list[RequestSpec] = []
    for i in range(n):
        ticket, label = generate_ticket(rng)
        user = f"{user_prefix}-{rng.randrange(users):03d}"
        if i in bad_at:
            kind = BAD_MODEL if bad_at[i] % 2 else BAD_BODY
        else:
            kind = STREAM if rng.random() < stream_share else CHAT
        feedback = None
        if kind in (CHAT, STREAM) and rng.random() < feedback_share:
            # Most users who rate are happy; a few thumbs-down rows leave the dataset.
            feedback = 0.0 if rng.random() < 0.25 else 1.0
        specs.append(RequestSpec(start + i, kind, user, ticket, label, feedback))
    return specs


def client_for(base_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=base_url, api_key="demo", max_retries=0, timeout=120)


def send(client: openai.OpenAI, spec: RequestSpec) -> Outcome:
    """One request as an app would send it; errors become an Outcome, never an exception."""
    messages: list[dict[str, str]] = [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": spec.ticket},
    ]
    model = "gpt-4o-mini-unknown" if spec.kind == BAD_MODEL else TEACHER_MODEL
    started = time.perf_counter()
    try:
        if spec.kind == BAD_BODY:
            # A bad value the gateway refuses itself (an app bug the user would see as 400).
            raw = client.chat.completions.with_raw_response.create(
                model=model,
                messages=[],
                user=spec.user,
            )
            answer = raw.parse().choices[0].message.content
        elif spec.kind == STREAM:
            raw_stream = client.chat.completions.with_raw_response.create(
                model=model,
                messages=messages,  # type: ignore[arg-type]
                user=spec.user,
                max_tokens=8,
                temperature=0,
                stream=True,
            )
            parts = []
            chunks: Iterable[Any] = raw_stream.parse()
            for chunk in chunks:
                if chunk.choices and chunk.choices[0].delta.content:
                    parts.append(chunk.choices[0].delta.content)
            answer, raw = "".join(parts), raw_stream  # type: ignore[assignment]
        else:
            raw = client.chat.completions.with_raw_response.create(
                model=model,
                messages=messages,  # type: ignore[arg-type]
                user=spec.user,
                max_tokens=8,
                temperature=0,
            )
            answer = raw.parse().choices[0].message.content
    except openai.APIStatusError as exc:
        return Outcome(
            spec,
            exc.status_code,
            None,
            exc.response.headers.get("x-distill-request-id"),
            None,
            time.perf_counter() - started,
            exc.message,
        )
    except openai.APIError as exc:
        return Outcome(spec, 0, None, None, None, time.perf_counter() - started, str(exc))
    return Outcome(
        spec,
        raw.http_response.status_code,
        raw.headers.get("x-distill-variant"),
        raw.headers.get("x-distill-request-id"),
        (answer or "").strip(),
        time.perf_counter() - started,
    )


def send_feedback(http: httpx.Client, gateway_url: str, outcome: Outcome) -> bool:
    if outcome.spec.feedback is None or outcome.request_id is None or outcome.status != 200:
        return False
    response = http.post(
        f"{gateway_url}/v1/feedback",
        json={
            "request_id": outcome.request_id,
            "score": outcome.spec.feedback,
            "source": "distill-demo",
        },
    )
    return response.status_code == 201


def run_traffic(
    base_url: str,
    gateway_url: str,
    specs: Iterable[RequestSpec],
    *,
    concurrency: int,
    on_done: Callable[[Outcome], None] = lambda o: None,
) -> tuple[list[Outcome], int]:
    """Send `specs` from `concurrency` threads (one client each); returns outcomes and the
    number of feedback posts the gateway accepted."""
    local = threading.local()
    feedback = 0
    lock = threading.Lock()

    def one(spec: RequestSpec) -> Outcome:
        nonlocal feedback
        if not hasattr(local, "client"):
            local.client = client_for(base_url)
            local.http = httpx.Client(timeout=30)
        outcome = send(local.client, spec)
        if send_feedback(local.http, gateway_url, outcome):
            with lock:
                feedback += 1
        on_done(outcome)
        return outcome

    with ThreadPoolExecutor(concurrency, thread_name_prefix="demo-traffic") as pool:
        outcomes = list(pool.map(one, specs))
    return outcomes, feedback


class BackgroundTraffic:
    """Steady traffic from new users while a rollout runs (no feedback, no bad requests)."""

    def __init__(
        self, base_url: str, *, seed: int, users: int, concurrency: int = 4, pause_s: float = 0.0
    ) -> None:
        self.base_url = base_url
        self.pause_s = pause_s  # each worker waits this long between requests
        self.seed = seed
        self.users = users
        self.concurrency = concurrency
        self.outcomes: list[Outcome] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    def _worker(self, worker: int) -> None:
        client = client_for(self.base_url)
        rng = random.Random(self.seed * 1000 + worker)
        i = 0
        while not self._stop.is_set():
            ticket, label = generate_ticket(rng)
            user = f"live-{rng.randrange(self.users):04d}"
            outcome = send(client, RequestSpec(i, CHAT if i % 4 else STREAM, user, ticket, label))
            with self._lock:
                self.outcomes.append(outcome)
            i += 1
            self._stop.wait(self.pause_s)

    def __enter__(self) -> BackgroundTraffic:
        for w in range(self.concurrency):
            thread = threading.Thread(target=self._worker, args=(w,), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(130)

    def snapshot(self) -> list[Outcome]:
        with self._lock:
            return list(self.outcomes)
