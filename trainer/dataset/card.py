"""Dataset-card sections on where targets came from: teacher agreement and real vs synthetic."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from trainer.dataset import consensus
from trainer.dataset.pipeline import Curated
from trainer.dataset.records import Example


def source_counts(examples: Sequence[Example]) -> dict[str, int]:
    """Real and synthetic rows, so every count can tell them apart."""
    synthetic = sum(e.synthetic for e in examples)
    return {"real": len(examples) - synthetic, "synthetic": synthetic}


def target_report(
    mode: str, judge_teacher: str | None, examples: Sequence[Example], curated: Curated
) -> dict[str, Any]:
    """How targets were chosen for the kept examples and how each teacher agrees with them.

    `agreement_with_target` compares a teacher with what the dataset teaches (gold corrections
    included); `agreement_with_gold` only counts examples a person corrected.
    """
    teachers: dict[str, dict[str, int]] = {}
    multi = disagreeing = changed = 0
    for example in examples:
        answers, choice = curated.choices.get(example.id, ([], None))
        if choice is None:
            continue
        if len(answers) > 1:
            multi += 1
            disagreeing += choice.disagreement > 0
        changed += not consensus.same_answer(example.answer, answers[0][1])
        for name, text in answers:
            row = teachers.setdefault(
                name, {"answers": 0, "agree": 0, "gold_answers": 0, "gold_agree": 0}
            )
            row["answers"] += 1
            row["agree"] += consensus.same_answer(text, example.answer)
            if example.corrected:
                row["gold_answers"] += 1
                row["gold_agree"] += consensus.same_answer(text, example.answer)
    return {
        "mode": mode,
        "judge_teacher": judge_teacher,
        "examples": len(examples),
        "pairs_with_secondary": multi,
        "pairs_with_disagreement": disagreeing,
        "disagreement_share": disagreeing / multi if multi else 0.0,
        "changed_from_primary": changed,
        "teachers": {
            name: {
                "answers": row["answers"],
                "agreement_with_target": row["agree"] / row["answers"],
                "disagreements_with_target": row["answers"] - row["agree"],
                "agreement_with_gold": row["gold_agree"] / row["gold_answers"]
                if row["gold_answers"]
                else None,
            }
            for name, row in sorted(teachers.items())
        },
    }
