"""`dataset synth`: new inputs in the style of a route's logged ones, answered and marked synthetic.

Both steps go through the gateway: the "write a new input like these" calls are tagged as a data
tool (never training data); the answers to the new inputs are logged on the route like real
traffic, tagged `synthetic`, so every later count can separate them from real rows.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainer.dataset import dedup
from trainer.dataset.config import BuildConfig
from trainer.dataset.query import build_query
from trainer.dataset.records import CorruptRow, Example, parse_row
from trainer.dataset.store import read_snapshot
from trainer.dataset.teacher_client import Ask, TeacherClient

WRITE_SYSTEM_PROMPT = (
    "Write a new input like these examples: same kind, tone and length, different content. "
    "Reply with the new input only."
)
WRITE_TAGS = {"distill_tool": "synth-write"}
SYNTHETIC_TAGS = {"synthetic": True, "source": "distill-synth"}


class SynthError(RuntimeError):
    """Synthesis cannot run as asked; the message says what to do."""


@dataclass(frozen=True)
class SynthConfig:
    """How many inputs to make and how; same seed and store, same requests."""

    route: str
    n: int
    seed: int = 0
    shots: int = 3  # logged examples shown per request
    max_attempts: int = 5  # ask at most n * this many times before giving up on uniqueness
    near_dup_threshold: float = 0.9

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ValueError(f"n={self.n} must be at least 1")
        if self.shots < 1:
            raise ValueError(f"shots={self.shots} must be at least 1")
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts={self.max_attempts} must be at least 1")
        if not 0.0 < self.near_dup_threshold <= 1.0:
            raise ValueError(f"near_dup_threshold must be in (0, 1], got {self.near_dup_threshold}")


@dataclass
class SynthResult:
    inputs: list[str] = field(default_factory=list)  # the new, unique inputs, in order
    answers: list[str] = field(default_factory=list)
    asked: int = 0
    duplicates: int = 0  # dropped: the same as (or near) a real input or an earlier new one
    real_examples: int = 0


def _user_text(example: Example) -> str:
    return str(next(m["content"] for m in reversed(example.messages) if m["role"] == "user"))


def write_request(examples: Sequence[Example], seed: int) -> Ask:
    shots = "\n\n".join(f"Example {i + 1}:\n{_user_text(e)}" for i, e in enumerate(examples))
    return Ask(
        messages=[
            {"role": "system", "content": WRITE_SYSTEM_PROMPT},
            {"role": "user", "content": shots},
        ],
        seed=seed,
        tags=WRITE_TAGS,
    )


def answer_request(style: Example, text: str) -> Ask:
    """The new input asked the way the route's apps ask: the style example's system turns."""
    system = [m for m in style.messages if m["role"] in ("system", "developer")]
    return Ask(messages=[*system, {"role": "user", "content": text}], tags=SYNTHETIC_TAGS)


def logged_examples(store: Path, route: str) -> tuple[list[Example], list[str]]:
    """The route's real primary-teacher exchanges, and the inputs of its synthetic ones."""
    snapshot = read_snapshot(store, build_query(BuildConfig(route=route)))
    if not snapshot.rows:
        listing = ", ".join(f"{r!s} ({n})" for r, n in snapshot.routes) or "none"
        raise SynthError(
            f"no usable rows for route {route!r} in {store}; routes with rows: {listing}"
        )
    examples, synthetic = [], []
    for row in snapshot.rows:
        try:
            example = parse_row(*row)
        except CorruptRow:
            continue
        # Write like the real traffic, not like earlier synthetic rows (but never repeat them).
        if snapshot.meta.get(row[0], (row[0], False))[1]:
            synthetic.append(_user_text(example))
        else:
            examples.append(example)
    if not examples:
        raise SynthError(f"route {route!r} has only synthetic or corrupt rows to imitate")
    return examples, synthetic


def fresh(
    candidates: Sequence[str], seen: Sequence[str], threshold: float
) -> tuple[list[str], int]:
    """Candidates that are neither the same as nor near anything seen or earlier; dup count."""
    items = [("", text) for text in [*seen, *candidates]]
    exact = dedup.exact_duplicates([dedup.exact_key([("user", t)]) for _, t in items])
    near = dedup.near_duplicates(items, threshold=threshold, shingle_words=3, num_perm=128)
    keep = [items[i][1] for i in range(len(seen), len(items)) if not (exact[i] or near[i])]
    return keep, len(candidates) - len(keep)


def synthesize(store: Path, config: SynthConfig, client: TeacherClient) -> SynthResult:
    """Ask for new inputs in rounds until `n` unique ones, then have the teacher answer them."""
    examples, earlier = logged_examples(store, config.route)
    result = SynthResult(real_examples=len(examples))
    rng = random.Random(config.seed)
    seen = [_user_text(e) for e in examples] + earlier
    styles: list[Example] = []
    attempt = 0
    while len(result.inputs) < config.n and attempt < config.n * config.max_attempts:
        batch = min(config.n - len(result.inputs), config.n * config.max_attempts - attempt)
        shots = [rng.sample(examples, min(config.shots, len(examples))) for _ in range(batch)]
        seeds = [config.seed * 1_000_003 + attempt + i for i in range(batch)]
        attempt += batch
        texts = [
            t.strip()
            for t in client.ask_all(
                [write_request(s, x) for s, x in zip(shots, seeds, strict=True)]
            )
        ]
        result.asked += batch
        keep, dropped = fresh(texts, [*seen, *result.inputs], config.near_dup_threshold)
        result.duplicates += dropped
        for text in keep:
            result.inputs.append(text)
            styles.append(shots[texts.index(text)][0])
    if not result.inputs:
        raise SynthError(
            f"the teacher wrote {result.asked} inputs, all duplicates of logged ones; "
            "try another --seed or a teacher that writes more varied inputs"
        )
    result.answers = client.ask_all(
        [answer_request(s, t) for s, t in zip(styles, result.inputs, strict=True)]
    )
    return result


def summary(result: SynthResult, config: SynthConfig) -> dict[str, Any]:
    return {
        "route": config.route,
        "requested": config.n,
        "written": len(result.inputs),
        "asked": result.asked,
        "duplicates_dropped": result.duplicates,
        "real_examples": result.real_examples,
        "seed": config.seed,
    }
