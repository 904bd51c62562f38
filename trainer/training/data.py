"""Read a chat-format dataset dir, tokenize with the base model's chat template, mask, collate."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import torch
from transformers import PreTrainedTokenizerBase

ROLES = ("system", "user", "assistant")
IGNORE_INDEX = -100  # label value the loss skips (torch cross_entropy's default ignore_index)


class TrainingInputError(ValueError):
    """Bad user input to training (dataset, base model, output dir); the message says what to do."""


@dataclass(frozen=True)
class ChatExample:
    """One conversation to learn from, with its loss weight (class balancing)."""

    messages: list[dict[str, str]]
    weight: float = 1.0
    rationale: str | None = None  # why the answer is right (`distill dataset enrich`)
    disagreement: float = 0.0  # share of teachers that disagreed with the target


@dataclass
class Encoded:
    """A tokenized conversation: labels are IGNORE_INDEX outside assistant turns."""

    input_ids: list[int]
    labels: list[int]
    weight: float = 1.0
    disagreement: float = 0.0


@dataclass
class EncodeStats:
    examples: int = 0
    skipped_too_long: int = 0
    skipped_no_target: int = 0
    tokens: int = 0
    target_tokens: int = 0
    lengths: list[int] = field(default_factory=list)


def parse_example(line: str, where: str) -> ChatExample:
    """One JSONL line → ChatExample; raise TrainingInputError naming `where` (file:line)."""
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise TrainingInputError(f"{where}: not valid JSON ({exc.msg}); fix or remove it") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("messages"), list):
        raise TrainingInputError(
            f'{where}: expected an object with a "messages" list (OpenAI chat fine-tuning format)'
        )
    messages: list[dict[str, str]] = []
    for i, msg in enumerate(obj["messages"]):
        if not isinstance(msg, dict) or msg.get("role") not in ROLES:
            raise TrainingInputError(
                f"{where}: message {i} needs a role among {', '.join(ROLES)}, got {msg!r:.80}"
            )
        if not isinstance(msg.get("content"), str):
            raise TrainingInputError(f"{where}: message {i} needs a string content")
        messages.append({"role": msg["role"], "content": msg["content"]})
    if not any(m["role"] == "assistant" for m in messages):
        raise TrainingInputError(f"{where}: no assistant message, so nothing to learn from")
    weight = obj.get("weight", 1.0)
    if (
        not isinstance(weight, int | float)
        or isinstance(weight, bool)
        or not math.isfinite(weight)
        or weight < 0
    ):
        raise TrainingInputError(f"{where}: weight={weight!r} must be a finite number >= 0")
    rationale = obj.get("rationale")
    if rationale is not None and not isinstance(rationale, str):
        raise TrainingInputError(f"{where}: rationale must be a string")
    disagreement = obj.get("disagreement", 0.0)
    if not isinstance(disagreement, int | float) or isinstance(disagreement, bool):
        raise TrainingInputError(f"{where}: disagreement={disagreement!r} must be a number")
    return ChatExample(messages, float(weight), rationale, float(disagreement))


def read_jsonl(path: Path) -> list[ChatExample]:
    """All examples of a JSONL file (blank lines skipped); errors name the line."""
    examples = []
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if line.strip():
                examples.append(parse_example(line, f"{path.name} line {lineno}"))
    return examples


def uses_generation_markers(tokenizer: PreTrainedTokenizerBase) -> bool:
    template = tokenizer.chat_template
    return isinstance(template, str) and "{% generation %}" in template.replace("{%-", "{%")


def _render(tokenizer: PreTrainedTokenizerBase, messages: list[dict[str, str]], gen: bool) -> str:
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=gen)
    assert isinstance(text, str)
    return text


def assistant_char_spans(
    tokenizer: PreTrainedTokenizerBase, messages: list[dict[str, str]]
) -> tuple[str, list[tuple[int, int]]]:
    """Full rendered text and the character span of each assistant turn.

    For templates without `{% generation %}` markers: the text between the conversation up to a
    turn rendered with the generation prompt and the conversation including that turn is what
    the model produces there (content plus the end-of-turn token).
    """
    full = _render(tokenizer, messages, gen=False)
    spans = []
    for i, msg in enumerate(messages):
        if msg["role"] != "assistant":
            continue
        prefix = _render(tokenizer, messages[:i], gen=True) if i else ""
        upto = _render(tokenizer, messages[: i + 1], gen=False)
        if not (full.startswith(prefix) and full.startswith(upto)):
            raise TrainingInputError(
                "the base model's chat template does not render conversations prefix-wise, so "
                "assistant tokens cannot be found; add {% generation %} markers to it"
            )
        spans.append((len(prefix), len(upto)))
    return full, spans


def encode(tokenizer: PreTrainedTokenizerBase, example: ChatExample) -> Encoded:
    """Token ids of the rendered conversation; labels only on tokens the assistant produces."""
    if uses_generation_markers(tokenizer):
        out = cast(
            "dict[str, Any]",
            tokenizer.apply_chat_template(
                example.messages,
                tokenize=True,
                return_dict=True,
                return_assistant_tokens_mask=True,
            ),
        )
        ids = list(out["input_ids"])
        mask = list(out["assistant_masks"])
    else:
        text, spans = assistant_char_spans(tokenizer, example.messages)
        enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        ids = list(enc["input_ids"])
        mask = [
            int(any(start < end and s <= start < e for s, e in spans))
            for start, end in enc["offset_mapping"]
        ]
    labels = [t if m else IGNORE_INDEX for t, m in zip(ids, mask, strict=True)]
    return Encoded(ids, labels, example.weight, example.disagreement)


def encode_all(
    tokenizer: PreTrainedTokenizerBase, examples: Sequence[ChatExample], max_seq_len: int
) -> tuple[list[Encoded], EncodeStats]:
    """Encode every example, skipping (and counting) ones too long or with no target tokens."""
    stats = EncodeStats()
    kept = []
    for example in examples:
        enc = encode(tokenizer, example)
        if len(enc.input_ids) > max_seq_len:
            stats.skipped_too_long += 1
            continue
        n_target = sum(1 for t in enc.labels[1:] if t != IGNORE_INDEX)
        if n_target == 0:
            stats.skipped_no_target += 1
            continue
        kept.append(enc)
        stats.examples += 1
        stats.tokens += len(enc.input_ids)
        stats.target_tokens += n_target
        stats.lengths.append(len(enc.input_ids))
    return kept, stats


class EncodedDataset(torch.utils.data.Dataset[dict[str, Any]]):
    """Items as dicts with `input_ids`, so the Trainer's length-grouped sampler can bucket them."""

    def __init__(self, items: Sequence[Encoded]) -> None:
        self.items = list(items)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, Any]:
        item = self.items[i]
        return {"input_ids": item.input_ids, "labels": item.labels, "weight": item.weight}


@dataclass
class PadCollator:
    """Right-pad a batch to its longest member; padding is masked out of attention and loss."""

    pad_token_id: int

    def __call__(self, batch: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        width = max(len(b["input_ids"]) for b in batch)
        ids = torch.full((len(batch), width), self.pad_token_id, dtype=torch.long)
        labels = torch.full((len(batch), width), IGNORE_INDEX, dtype=torch.long)
        attention = torch.zeros((len(batch), width), dtype=torch.long)
        for row, b in enumerate(batch):
            n = len(b["input_ids"])
            ids[row, :n] = torch.tensor(b["input_ids"])
            labels[row, :n] = torch.tensor(b["labels"])
            attention[row, :n] = 1
        weights = torch.tensor([float(b["weight"]) for b in batch])
        return {"input_ids": ids, "attention_mask": attention, "labels": labels, "weights": weights}
