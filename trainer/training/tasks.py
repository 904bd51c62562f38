"""Multi-task examples (answer + rationale, as in Distilling Step-by-Step) and curriculum order."""

from __future__ import annotations

from collections.abc import Sequence

from trainer.training.data import ChatExample, Encoded, TrainingInputError

RATIONALE_PREFIX = "[rationale]"


def rationale_task(example: ChatExample, weight: float) -> ChatExample:
    """The same prompt with `[rationale]` in front of its system prompt; the rationale as answer.

    The answer task keeps the prompt exactly as apps send it, so the served student answers
    plain prompts with the answer alone and explains only when asked with the prefix.
    """
    assert example.rationale is not None
    # Only the last assistant turn is explained; earlier turns stay as context.
    last = max(i for i, m in enumerate(example.messages) if m["role"] == "assistant")
    turns = list(example.messages[:last])
    if turns and turns[0]["role"] == "system":
        turns[0] = {"role": "system", "content": f"{RATIONALE_PREFIX} {turns[0]['content']}"}
    else:
        turns.insert(0, {"role": "system", "content": RATIONALE_PREFIX})
    return ChatExample(
        [*turns, {"role": "assistant", "content": example.rationale}],
        example.weight * weight,
        None,
        example.disagreement,
        example.tools,  # an agent row's rationale is asked with the same tools
    )


def with_rationales(examples: Sequence[ChatExample], weight: float = 1.0) -> list[ChatExample]:
    """Each example, followed by its rationale task when it has a rationale."""
    if not any(e.rationale for e in examples):
        raise TrainingInputError(
            "rationales=true but train.jsonl has no rationale fields; add them with "
            "`distill dataset enrich --dataset DIR --rationales --base-url GATEWAY --model M`"
        )
    out: list[ChatExample] = []
    for example in examples:
        out.append(example)
        if example.rationale:
            out.append(rationale_task(example, weight))
    return out


def curriculum_order(items: Sequence[Encoded], curriculum: str) -> list[Encoded]:
    """Items in training order: easy first (short, or agreed on by the teachers), stable."""
    if curriculum == "none":
        return list(items)
    if curriculum == "length":
        return sorted(items, key=lambda e: len(e.input_ids))
    if curriculum == "disagreement":
        return sorted(items, key=lambda e: (e.disagreement, len(e.input_ids)))
    raise ValueError(f"unknown curriculum {curriculum!r}")
