"""Choose one target per example from several teachers' answers: primary, majority vote or judge."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from gateway.answers import answer_key, parse_json_object, same_answer, value_key

PRIMARY = "teacher"  # the variant name the gateway logs for a route's primary teacher

__all__ = ["PRIMARY", "Choice", "Judge", "choose", "distinct", "pick", "same_answer", "vote"]


def _majority(keys: Sequence[str]) -> int:
    """Index of the first answer of the biggest group; ties go to the earliest (the primary)."""
    counts: dict[str, int] = {}
    for key in keys:
        counts[key] = counts.get(key, 0) + 1
    best = max(counts.values())
    return next(i for i, key in enumerate(keys) if counts[key] == best)


@dataclass(frozen=True)
class Choice:
    """The chosen target and, per teacher (in input order), whether it agrees with it."""

    target: str
    agrees: tuple[bool, ...]
    source: str  # the teacher whose text became the target, or 'vote' for a merged JSON

    @property
    def disagreement(self) -> float:
        """Share of teachers whose answer differs from the target (0 with one teacher)."""
        return 1.0 - sum(self.agrees) / len(self.agrees) if self.agrees else 0.0


def _agreement(answers: Sequence[tuple[str, str]], target: str) -> tuple[bool, ...]:
    return tuple(same_answer(text, target) for _, text in answers)


def _vote_json(answers: Sequence[tuple[str, str]], objects: list[dict[str, Any]]) -> Choice:
    merged: dict[str, Any] = {}
    keys_in_order: list[str] = []
    for obj in objects:
        keys_in_order += [k for k in obj if k not in keys_in_order]
    for key in keys_in_order:
        # A field is kept when most teachers give it; its value is the majority among them.
        have = [obj[key] for obj in objects if key in obj]
        if len(have) * 2 < len(objects):
            continue
        merged[key] = have[_majority([value_key(v) for v in have])]
    # Reuse a teacher's own text when it says exactly the merged object (keeps its formatting).
    text = json.dumps(merged)
    source = "vote"
    for name, answer in answers:
        if same_answer(answer, text):
            text, source = answer, name
            break
    return Choice(target=text, agrees=_agreement(answers, text), source=source)


def vote(answers: Sequence[tuple[str, str]]) -> Choice:
    """Majority over (teacher, answer) pairs, primary first; ties go to the primary.

    JSON objects vote field by field; anything else votes on its normalised text.
    """
    if not answers:
        raise ValueError("vote needs at least one answer")
    objects = [parse_json_object(text) for _, text in answers]
    if all(obj is not None for obj in objects) and len(answers) > 1:
        return _vote_json(answers, [obj for obj in objects if obj is not None])
    winner = _majority([answer_key(text) for _, text in answers])
    name, text = answers[winner]
    return Choice(target=text, agrees=_agreement(answers, text), source=name)


def pick(answers: Sequence[tuple[str, str]], name: str) -> Choice | None:
    """The answer teacher `name` gave, or None when it gave none for this example."""
    for teacher, text in answers:
        if teacher == name:
            return Choice(target=text, agrees=_agreement(answers, text), source=teacher)
    return None


# A judge sees the prompt and the distinct candidates; it returns the index it prefers.
Judge = Callable[[Sequence[dict[str, str]], Sequence[str]], int | None]


def distinct(answers: Sequence[tuple[str, str]]) -> list[str]:
    """Candidate texts for a judge: one per distinct answer, in teacher order."""
    out: list[str] = []
    for _, text in answers:
        if not any(same_answer(text, seen) for seen in out):
            out.append(text)
    return out


def choose(
    answers: Sequence[tuple[str, str]],
    mode: str,
    *,
    messages: Sequence[dict[str, str]] = (),
    judge: Judge | None = None,
    judge_teacher: str | None = None,
) -> Choice:
    """The target for one example under `mode`; the primary's answer when nothing else applies."""
    if len(answers) == 1:  # the common case at scale: no second opinion, nothing to compare
        return Choice(answers[0][1], (True,), answers[0][0])
    if mode == "primary":
        return Choice(answers[0][1], _agreement(answers, answers[0][1]), answers[0][0])
    if mode == "vote":
        return vote(answers)
    if mode != "judge":
        raise ValueError(f"target must be primary, vote or judge, got {mode!r}")
    candidates = distinct(answers)
    if len(candidates) == 1:
        return Choice(answers[0][1], _agreement(answers, answers[0][1]), answers[0][0])
    if judge is not None:
        index = judge(messages, candidates)
        if index is not None and 0 <= index < len(candidates):
            text = candidates[index]
            source = next(n for n, t in answers if same_answer(t, text))
            return Choice(text, _agreement(answers, text), source)
    if judge_teacher is not None:
        picked = pick(answers, judge_teacher)
        if picked is not None:
            return picked
    return Choice(answers[0][1], _agreement(answers, answers[0][1]), answers[0][0])
