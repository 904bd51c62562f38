"""The demo's settings and the gateway config it writes: pure, validated, with defaults that fit
a 2-core laptop."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROUTE = "support-triage"
TEACHER_MODEL = "gpt-4o"
# What the demo pays per 1k tokens: a paid teacher API against a self-hosted small student.
TEACHER_PRICE = {"prompt_per_1k": 0.0025, "completion_per_1k": 0.01}
STUDENT_PRICE = {"prompt_per_1k": 0.00002, "completion_per_1k": 0.00008}
# Gates sized for a tiny CPU model beside an instant teacher: latency is not the question
# (the student is slower by construction), agreement and errors are.
DEMO_GATES: dict[str, float] = {
    "min_requests": 25,
    "min_seconds": 2,
    "min_agreement_pairs": 25,
    "min_agreement": 0.9,
    "latency_slack_ms": 30_000,
    "ttft_slack_ms": 30_000,
}
DEMO_STEPS: tuple[float, ...] = (5, 25, 50, 100)
# The students the demo can build by itself: the real pretrained one (default) and the
# random-init stand-in that tests use for speed.
STUDENTS: tuple[str, ...] = ("smollm2", "tiny")
# Training steps (good adapter, weak adapter on shuffled labels) by the student's preset.
# None: the preset's own length (SmolLM2: one epoch of batch 8, at least 60 steps). The weak
# adapter only has to learn the answer format with a wrong mapping, so a few steps suffice.
# The tiny stand-in learns from scratch: 150 steps of 16 was not enough for every order the
# concurrent traffic leaves the rows in (87 % once).
# Pause between a background worker's requests during the rollouts, by preset. Shadow mirrors
# every request to the student: against the instant teacher 4 workers send ~145 req/s, which
# the tiny model keeps up with but SmolLM2 on CPU does not (measured: its shadow p95 reached
# 40 s and the latency gate rolled back a good adapter with agreement 1.00). vLLM served it at
# 4.2 req/s on the base and 2.05 through two adapters (load 10, bench/student_serving.py), so
# ~2 req/s in all (4 workers, 2 s apart) stays below what it can answer.
LIVE_PAUSE_S: dict[str, float] = {"pretrained": 2.0, "random-init": 0.0}


def live_pause_s(preset: str, rollouts: str) -> float:
    """How long each background worker waits between requests (pure). A person running the
    rollouts from the console takes minutes: paced as for the pretrained student whatever
    the student, since the tiny one's unpaced workers logged ~145 req/s (122k rows in a
    13-minute console run)."""
    if rollouts == "console":
        return LIVE_PAUSE_S["pretrained"]
    return LIVE_PAUSE_S.get(preset, LIVE_PAUSE_S["pretrained"])


DEMO_TRAIN_STEPS: dict[str, tuple[int | None, int]] = {
    "pretrained": (None, 12),
    "random-init": (300, 40),
}


@dataclass(frozen=True)
class DemoSettings:
    """What one `distill demo` run does; every field has a default that works offline."""

    workdir: Path = Path("distill-demo")
    requests: int = 600  # stage-2 traffic, before the dataset is built
    seed: int = 0
    keep_running: bool = False
    vllm_url: str | None = None  # reuse a running vLLM (…/v1) serving `base_model`
    base_model: Path | None = None  # that server's base model dir (default: `student`)
    student: str = "smollm2"  # which student to build when no base_model is given
    users: int = 40
    concurrency: int = 8
    stream_share: float = 0.25
    feedback_share: float = 0.08
    bad_requests: int = 6
    good_steps: int | None = None  # training steps of the good adapter (None: by student)
    weak_steps: int | None = None  # and of the weak one, on shuffled labels
    eval_limit: int = 100  # eval examples per adapter
    rollout_timeout_s: float = 300.0
    rollouts: str = "demo"  # demo: the demo runs them; console: a person does, from /ui/
    console_wait_s: float = 1800.0  # how long --rollouts console waits for both to end
    tick_s: float = 0.2
    steps: tuple[float, ...] = DEMO_STEPS
    gates: dict[str, float] = field(default_factory=lambda: dict(DEMO_GATES))

    def __post_init__(self) -> None:
        if self.requests < 100:
            raise ValueError(f"--requests {self.requests} is too few to train on: use at least 100")
        if self.vllm_url is not None and self.base_model is None:
            raise ValueError(
                "--vllm-url needs --base-model: the directory of the model that server serves"
            )
        if self.vllm_url is not None and not self.vllm_url.startswith(("http://", "https://")):
            raise ValueError(f"--vllm-url {self.vllm_url!r} is not an http(s) URL ending in /v1")
        if self.student not in STUDENTS:
            raise ValueError(f"--student {self.student!r}: choose one of {', '.join(STUDENTS)}")
        if self.rollouts not in ("demo", "console"):
            raise ValueError(f"--rollouts {self.rollouts!r}: choose demo or console")
        for name in ("users", "concurrency", "good_steps", "weak_steps", "eval_limit"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be at least 1")
        for name in ("stream_share", "feedback_share"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name}={getattr(self, name)} must be a share in [0, 1]")
        if self.bad_requests < 0:
            raise ValueError(f"bad_requests={self.bad_requests} must not be negative")
        if not self.steps or self.steps[-1] != 100:
            raise ValueError(f"steps={list(self.steps)} must end at 100")


def train_steps(settings: DemoSettings, preset: str) -> tuple[int | None, int]:
    """(good, weak) training steps: the flags when given, else the student preset's."""
    good, weak = DEMO_TRAIN_STEPS.get(preset, DEMO_TRAIN_STEPS["pretrained"])
    return (
        settings.good_steps if settings.good_steps is not None else good,
        settings.weak_steps if settings.weak_steps is not None else weak,
    )


def gateway_config(
    *,
    port: int,
    teacher_url: str,
    vllm_url: str,
    store_path: Path,
    adapters: list[str],
    tick_s: float,
) -> dict[str, Any]:
    """The distill.yaml the demo's gateway runs: one route whose students come from vLLM."""
    pricing: dict[str, dict[str, float]] = {TEACHER_MODEL: dict(TEACHER_PRICE)}
    pricing.update({name: dict(STUDENT_PRICE) for name in adapters})
    return {
        "server": {"host": "127.0.0.1", "port": port, "admin_token_env": "DISTILL_ADMIN_TOKEN"},
        "store": {"path": str(store_path), "flush_interval_s": 0.2},
        "upstreams": {
            "teacher": {"base_url": teacher_url, "timeout_s": 30},
            "vllm": {"base_url": vllm_url, "timeout_s": 60},
        },
        "routes": [
            {
                "name": ROUTE,
                "match": [TEACHER_MODEL],
                "teacher": {"upstream": "teacher", "model": TEACHER_MODEL},
                "student_upstream": "vllm",
                "shadow": {"agreement": "label"},
            }
        ],
        # The demo's gates are the gateway's defaults too: a rollout started from the review
        # console (distill demo --rollouts console) is held to the same gates.
        "rollout": {"tick_s": tick_s, "shadow_rate": 1.0, "gates": dict(DEMO_GATES)},
        "pricing": pricing,
    }
