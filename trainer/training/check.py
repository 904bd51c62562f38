"""Did the run learn? Eval-split agreement beside the baselines a collapsed run reaches (pure)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from gateway.answers import answer_key
from trainer.evaluation.metrics import agreement_score, detect_task_kind

EXIT_CHECK_FAILED = 3  # `distill train`: the adapter was written but did not learn the task

# A loss that ends above this share of where it started did not move ...
FLAT_LOSS_RATIO = 0.9
# ... unless it was already this low (nats per answer token): nothing left to learn.
LEARNED_LOSS = 0.05
# The student gives one answer to at least this share of prompts ...
CONSTANT_SHARE = 0.9
# ... while the teacher's most frequent answer covers at most this share: a collapse.
TEACHER_VARIED_SHARE = 0.75

ADVICE = (
    "The adapter was written but is not a rollout candidate (`distill adapters register` "
    "refuses it unless --force). Try: a learning-rate search (`distill train --search lr`), "
    "more steps (--max-steps), checking that the base model's chat template is the one it was "
    "tuned with, and that train.jsonl's answers are consistent (`distill eval` shows examples)."
)


@dataclass(frozen=True)
class LearningCheck:
    """What the trained student answers on the eval split, against what a collapsed one would."""

    n: int
    task_kind: str
    agreement: float  # mean agreement with the teacher, as `distill eval` and the gates score it
    majority_baseline: float  # agreement of always giving the teacher's most frequent answer
    top_answer_share: float  # share of prompts the student gives its most frequent answer to
    teacher_top_share: float  # share of the teacher's most frequent answer
    top_answer: str
    first_loss: float | None
    last_loss: float | None
    max_new_tokens: int
    problems: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["passed"] = self.passed
        data["advice"] = None if self.passed else ADVICE
        return data


def _top_share(answers: Sequence[str]) -> tuple[str, float]:
    """The most frequent answer (compared as the gates compare answers) and its share."""
    counts = Counter(answer_key(a) for a in answers)
    key, count = counts.most_common(1)[0]
    first = next(a for a in answers if answer_key(a) == key)
    return first, count / len(answers)


def assess(
    predictions: Sequence[str],
    references: Sequence[str],
    losses: Sequence[float],
    *,
    max_new_tokens: int = 0,
) -> LearningCheck:
    """Score the student's eval answers and name what looks like a run that did not learn."""
    if not references or len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions for {len(references)} references")
    kind = detect_task_kind(references)
    n = len(references)
    pairs = zip(predictions, references, strict=True)
    agreement = sum(agreement_score(p, r, kind) for p, r in pairs) / n
    majority, teacher_share = _top_share(references)
    baseline = sum(agreement_score(majority, r, kind) for r in references) / n
    top_answer, student_share = _top_share(predictions)
    first = float(losses[0]) if losses else None
    last = float(losses[-1]) if losses else None

    problems = []
    flat = (
        first is not None
        and last is not None
        and last > FLAT_LOSS_RATIO * first
        and last > LEARNED_LOSS
    )
    if flat and len(losses) >= 2:
        problems.append(f"the training loss stayed flat ({first:.4f} -> {last:.4f})")
    if student_share >= CONSTANT_SHARE and teacher_share <= TEACHER_VARIED_SHARE:
        problems.append(
            f"the student gives one answer ({top_answer[:40]!r}) to {student_share:.0%} of the "
            f"eval prompts, where the teacher's most frequent answer covers {teacher_share:.0%}"
        )
    if teacher_share < 1.0 and agreement <= baseline:
        problems.append(
            f"agreement with the teacher {agreement:.3f} is not above the majority-answer "
            f"baseline {baseline:.3f}"
        )
    return LearningCheck(
        n=n,
        task_kind=kind,
        agreement=agreement,
        majority_baseline=baseline,
        top_answer_share=student_share,
        teacher_top_share=teacher_share,
        top_answer=top_answer,
        first_loss=first,
        last_loss=last,
        max_new_tokens=max_new_tokens,
        problems=problems,
    )
