"""Eval and sweep generation length follows the dataset's longest answer, not a fixed 64."""

from __future__ import annotations

from pathlib import Path

import pytest
from transformers import AutoTokenizer

from trainer.evaluation.generate import GenerationError, answer_budget, generation_budget


@pytest.mark.parametrize(
    ("longest", "budget"), [(0, 9), (1, 9), (5, 13), (32, 40), (100, 125), (400, 500)]
)
def test_answer_budget_adds_a_quarter_and_at_least_eight(longest: int, budget: int) -> None:
    assert answer_budget(longest) == budget


def test_generation_budget_counts_the_students_tokens(tiny_model_dir: Path) -> None:
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    long_answer = '{"email": "someone@example.com", "plan": "enterprise", "seats": 250}' * 3
    n = len(tok(long_answer, add_special_tokens=False)["input_ids"])
    assert n > 64  # longer than the old fixed budget
    budget = generation_budget(["billing", long_answer], str(tiny_model_dir), {})
    assert budget == answer_budget(n + 1) > n


def test_generation_budget_falls_back_to_what_training_measured(tmp_path: Path) -> None:
    missing = str(tmp_path / "no-model")
    lineage = {"answer_tokens": {"longest": 30, "max_new_tokens": 38}}
    assert generation_budget(["x"], missing, lineage) == 38
    with pytest.raises(GenerationError, match="--max-tokens"):
        generation_budget(["x"], missing, {})
