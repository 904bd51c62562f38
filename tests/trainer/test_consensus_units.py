"""Pure parts of target choice: normalising, voting, judging, annotations, data-tool prompts."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from distill_demo.teacher import data_tools
from distill_demo.teacher.task import classify
from trainer.dataset import consensus
from trainer.dataset.annotations import resolve
from trainer.dataset.judge import judge_prompt, parse_verdict

T0 = datetime(2025, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("answers", "target", "source", "agrees"),
    [
        # A majority beats the primary.
        (["billing", "technical", "technical"], "technical", "b", (False, True, True)),
        # Normalised text counts as the same vote; the first member's text is the target.
        (["billing", "Technical.", "technical"], "Technical.", "b", (False, True, True)),
        # Ties go to the primary.
        (["billing", "technical"], "billing", "a", (True, False)),
        (["billing", "technical", "account"], "billing", "a", (True, False, False)),
        # All agree.
        (["account", "account", "account"], "account", "a", (True, True, True)),
        # One teacher only.
        (["account"], "account", "a", (True,)),
    ],
)
def test_vote_on_labels(
    answers: list[str], target: str, source: str, agrees: tuple[bool, ...]
) -> None:
    named = list(zip("abc", answers, strict=False))
    choice = consensus.vote(named)
    assert (choice.target, choice.source, choice.agrees) == (target, source, agrees)
    assert choice.disagreement == pytest.approx(1 - sum(agrees) / len(agrees))


def test_vote_on_json_goes_field_by_field() -> None:
    a = '{"category": "billing", "priority": "high"}'
    b = '{"category": "technical", "priority": "low"}'
    c = '{"category": "technical", "priority": "high"}'
    choice = consensus.vote([("a", a), ("b", b), ("c", c)])
    # category: technical 2-1; priority: high 2-1 -> exactly teacher c's object, c's text.
    assert choice.target == c and choice.source == "c"
    assert choice.agrees == (False, False, True)
    # A merge no teacher gave is written as JSON.
    d = '{"category": "account", "priority": "low"}'
    merged = consensus.vote([("a", a), ("b", b), ("d", d), ("c", c)])
    assert json.loads(merged.target) == {"category": "technical", "priority": "high"}


def test_choose_modes() -> None:
    answers = [("teacher", "billing"), ("b", "technical"), ("c", "technical")]
    assert consensus.choose(answers, "primary").target == "billing"
    assert consensus.choose(answers, "vote").target == "technical"
    # judge: the judge's pick among the distinct candidates wins ...
    seen: list[list[str]] = []

    def judge(messages: object, candidates: list[str]) -> int:
        seen.append(list(candidates))
        return 0

    assert consensus.choose(answers, "judge", judge=judge).target == "billing"
    assert seen == [["billing", "technical"]]
    # ... a judge without an answer falls back to the named teacher, then the primary.
    silent = consensus.choose(answers, "judge", judge=lambda m, c: None, judge_teacher="c")
    assert silent.target == "technical" and silent.source == "c"
    assert consensus.choose(answers, "judge", judge_teacher="nobody").target == "billing"
    with pytest.raises(ValueError, match="primary, vote or judge"):
        consensus.choose(answers, "median")


def test_annotations_latest_per_request_and_kind_wins() -> None:
    rows = [
        ("r1", "correction", T0, "billing", None),
        ("r1", "correction", T0 + timedelta(seconds=1), "account", None),
        ("r2", "exclude", T0, None, None),
        ("r3", "exclude", T0, None, None),
        ("r3", "include", T0 + timedelta(seconds=1), None, None),
        ("r4", "include", T0, None, None),
        ("r4", "exclude", T0 + timedelta(seconds=1), None, None),
        ("r5", "label", T0, None, "urgent"),
    ]
    gold = resolve(rows)
    assert gold.corrections == {"r1": "account"}
    assert gold.excluded == {"r2", "r4"}
    assert gold.labels == {"r5": "urgent"}
    assert gold.rows == len(rows)


def test_judge_prompt_round_trips_through_the_demo_teacher() -> None:
    ticket = "I was charged twice for my invoice."
    messages = [{"role": "system", "content": "Classify."}, {"role": "user", "content": ticket}]
    prompt = judge_prompt(messages, ["technical", "billing"])
    reply = data_tools.data_tool_answer(
        prompt[0]["content"], prompt[1]["content"], request_seed=None, error_rate=0.0, seed=""
    )
    assert reply == "2" and parse_verdict(reply, 2) == 1
    assert classify(ticket) == "billing"


@pytest.mark.parametrize(
    ("text", "n", "index"), [("2", 3, 1), ("Candidate 1.", 2, 0), ("7", 2, None), ("no", 2, None)]
)
def test_parse_verdict(text: str, n: int, index: int | None) -> None:
    assert parse_verdict(text, n) == index


def test_rationale_names_the_keywords_found() -> None:
    ticket = "Can I get a refund on the last invoice?"
    text = data_tools.rationale(ticket, "billing")
    assert text == "The ticket mentions 'invoice', 'refund', which point to billing."
    assert "no account keyword" in data_tools.rationale(ticket, "account")


def test_new_ticket_depends_on_seed_and_examples_only() -> None:
    a = data_tools.new_ticket("Example:\nx", 1)
    assert a == data_tools.new_ticket("Example:\nx", 1)
    assert a != data_tools.new_ticket("Example:\nx", 2)
    assert (
        data_tools.data_tool_answer("Classify.", "x", request_seed=1, error_rate=0, seed="") is None
    )
