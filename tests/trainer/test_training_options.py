"""Training options the sweep varies: rationale tasks, curriculum order, precision, schedules."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from trainer.training import TrainConfig, TrainingInputError, load_train_config
from trainer.training.data import ChatExample, Encoded, encode_all, parse_example
from trainer.training.sft import build_trainer, make_lora_model
from trainer.training.tasks import (
    RATIONALE_PREFIX,
    curriculum_order,
    rationale_task,
    with_rationales,
)

SYSTEM = {"role": "system", "content": "Classify the ticket."}


def _example(ticket: str, label: str, rationale: str | None = None, d: float = 0.0) -> ChatExample:
    messages = [
        SYSTEM,
        {"role": "user", "content": ticket},
        {"role": "assistant", "content": label},
    ]
    return ChatExample(messages, 1.0, rationale, d)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"curriculum": "hardest"}, "curriculum='hardest'"),
        ({"precision": "fp8"}, "precision='fp8'"),
        ({"rationale_weight": -1.0}, "rationale_weight=-1.0"),
    ],
)
def test_new_settings_reject_bad_values(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TrainConfig(**overrides)


@pytest.mark.parametrize(
    ("raw", "value"), [("true", True), ("False", False), ("1", True), ("off", False)]
)
def test_rationales_setting_from_text(raw: str, value: bool) -> None:
    assert load_train_config(None, rationales=raw).rationales is value


def test_rationales_setting_rejects_other_text() -> None:
    with pytest.raises(ValueError, match="rationales='maybe' is not true or false"):
        load_train_config(None, rationales="maybe")


def test_rationale_and_disagreement_fields_are_read() -> None:
    line = json.dumps(
        {
            "messages": [SYSTEM, {"role": "assistant", "content": "x"}],
            "rationale": "because",
            "disagreement": 0.5,
        }
    )
    example = parse_example(line, "train.jsonl line 1")
    assert (example.rationale, example.disagreement) == ("because", 0.5)
    with pytest.raises(TrainingInputError, match="rationale must be a string"):
        parse_example(line.replace('"because"', "3"), "train.jsonl line 1")


def test_rationale_task_prefixes_the_system_prompt_and_answers_with_the_rationale() -> None:
    task = rationale_task(_example("refund please", "billing", "It says refund."), 0.5)
    assert task.messages == [
        {"role": "system", "content": f"{RATIONALE_PREFIX} Classify the ticket."},
        {"role": "user", "content": "refund please"},
        {"role": "assistant", "content": "It says refund."},
    ]
    assert task.weight == 0.5 and task.rationale is None
    # Without a system prompt, the prefix becomes one.
    bare = ChatExample(
        [{"role": "user", "content": "u"}, {"role": "assistant", "content": "a"}], 1.0, "r"
    )
    assert rationale_task(bare, 1.0).messages[0] == {"role": "system", "content": RATIONALE_PREFIX}


def test_with_rationales_keeps_the_answer_task_unchanged() -> None:
    a = _example("t1", "billing", "r1")
    b = _example("t2", "account")  # no rationale: answer task only
    out = with_rationales([a, b])
    assert out[0] == a and out[2] == b and len(out) == 3
    assert out[1].messages[-1]["content"] == "r1"
    with pytest.raises(TrainingInputError, match="distill dataset enrich"):
        with_rationales([b])


@pytest.mark.parametrize(
    ("curriculum", "order"),
    [("none", [0, 1, 2, 3]), ("length", [2, 0, 3, 1]), ("disagreement", [3, 2, 1, 0])],
)
def test_curriculum_order(curriculum: str, order: list[int]) -> None:
    lengths, disagreement = [3, 9, 1, 5], [0.6, 0.3, 0.3, 0.0]
    items = [
        Encoded([i] * n, [i] * n, 1.0, d)
        for i, (n, d) in enumerate(zip(lengths, disagreement, strict=True))
    ]
    assert [e.input_ids[0] for e in curriculum_order(items, curriculum)] == order


def test_curriculum_and_bf16_reach_the_trainer(tiny_model_dir: Path, tmp_path: Path) -> None:
    """The Trainer's dataloader yields the curriculum's order; bf16 is passed to it."""
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    examples = [_example("word " * n, "billing") for n in (9, 2, 14, 5, 1, 7)]
    items, _ = encode_all(tokenizer, examples, 256)
    config = TrainConfig(curriculum="length", precision="bf16", batch_size=2, save_steps=0)
    ordered = curriculum_order(items, config.curriculum)
    model = make_lora_model(
        AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32), config
    )
    trainer = build_trainer(
        model, tokenizer, ordered, [], config, work_dir=tmp_path / "w", steps=3, progress=False
    )
    assert trainer.args.bf16 is True
    widths = [int(b["attention_mask"].sum(dim=1).max()) for b in trainer.get_train_dataloader()]
    assert widths == sorted(widths) and len(widths) == 3
    shuffled = build_trainer(
        model,
        tokenizer,
        items,
        [],
        TrainConfig(batch_size=2, save_steps=0),
        work_dir=tmp_path / "w2",
        steps=3,
        progress=False,
    )
    assert shuffled.args.bf16 is False
    assert shuffled.args.train_sampling_strategy == "group_by_length"
