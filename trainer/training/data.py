"""Read a chat-format dataset dir, tokenize with the base model's chat template, mask, collate."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import torch
from jinja2 import TemplateError
from transformers import PreTrainedTokenizerBase

from trainer.training import tool_turns

IGNORE_INDEX = -100  # label value the loss skips (torch cross_entropy's default ignore_index)


class TrainingInputError(ValueError):
    """Bad user input to training (dataset, base model, output dir); the message says what to do."""


@dataclass(frozen=True)
class ChatExample:
    """One conversation to learn from, with its loss weight (class balancing)."""

    messages: list[dict[str, Any]]
    weight: float = 1.0
    rationale: str | None = None  # why the answer is right (`distill dataset enrich`)
    disagreement: float = 0.0  # share of teachers that disagreed with the target
    tools: list[dict[str, Any]] | None = None  # the request's function tools (agent rows)


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
    longest_answer: int = 0  # answer tokens (with the end-of-turn token) of the longest answer
    longest_sequence: int = 0  # tokens of the longest conversation, kept or skipped
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
    messages: list[dict[str, Any]] = []
    for i, msg in enumerate(obj["messages"]):
        problem = tool_turns.message_problem(msg)
        if problem:
            raise TrainingInputError(f"{where}: message {i} {problem}")
        messages.append(tool_turns.turn(msg))
    tools = obj.get("tools")
    problem = tool_turns.tools_problem(tools)
    if problem:
        raise TrainingInputError(f"{where}: {problem}")
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
    return ChatExample(messages, float(weight), rationale, float(disagreement), tools or None)


def read_jsonl(path: Path) -> list[ChatExample]:
    """All examples of a JSONL file (blank lines skipped); errors name the line."""
    examples = []
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if line.strip():
                examples.append(parse_example(line, f"{path.name} line {lineno}"))
    return examples


# Stands in for the answer when rendering, to find where the template puts it; private-use
# code points never occur in real text.
_PROBE = "\ue000distill-answer\ue001"


def _render(
    tokenizer: PreTrainedTokenizerBase,
    messages: list[dict[str, Any]],
    generation_prompt: bool,
    tools: list[Any] | None = None,
) -> str:
    try:
        text = tokenizer.apply_chat_template(
            messages, tools=tools, tokenize=False, add_generation_prompt=generation_prompt
        )
    except (TemplateError, ValueError) as exc:
        raise TrainingInputError(
            f"the base model's chat template cannot render this conversation ({exc}); pick a "
            "chat/instruct model whose template has system, user and assistant turns"
        ) from None
    assert isinstance(text, str)
    return text


@dataclass(frozen=True)
class AnswerLayout:
    """How the template writes the answer: after `prompt` (the generation prompt), `answer`
    (the content as the template writes it, with any text it puts before it), then `end`."""

    context: list[dict[str, Any]]
    prompt: str
    answer: str
    end: str


def answer_layout(
    tokenizer: PreTrainedTokenizerBase,
    messages: list[dict[str, Any]],
    tools: list[Any] | None = None,
) -> AnswerLayout:
    """Split the rendering of the last assistant turn into prompt, answer and end of turn.

    The prompt is what inference renders (`add_generation_prompt=True`) for the turns before
    the answer; the template must write the assistant turn as that prompt followed by the answer.
    An answer that calls tools is what the template writes for the calls between the two.
    """
    last = max(i for i, m in enumerate(messages) if m["role"] == "assistant")
    context = [dict(m) for m in messages[:last]]
    prompt = _render(tokenizer, context, True, tools)
    probe = _render(tokenizer, [*context, {"role": "assistant", "content": _PROBE}], False, tools)
    at = probe.find(_PROBE)
    if at < 0:
        raise TrainingInputError(
            "the base model's chat template does not render the assistant's answer, so there "
            "is nothing to learn; pick a chat/instruct model whose template has an assistant turn"
        )
    before, after = probe[:at], probe[at + len(_PROBE) :]
    full = _render(tokenizer, [*context, messages[last]], False, tools)
    if messages[last].get("tool_calls"):
        # The template's own tool-call format: everything it writes after the prompt.
        before = prompt
    fits = full.startswith(before) and full.endswith(after)
    if not before.startswith(prompt) or not fits or len(full) < len(before) + len(after):
        raise TrainingInputError(
            f"the base model's chat template opens the assistant turn with {before[-40:]!r} but "
            f"its generation prompt ends with {prompt[-40:]!r}, so training could not match what "
            "inference sends; fix the template's add_generation_prompt branch"
        )
    content = full[len(before) : len(full) - len(after)]
    return AnswerLayout(context, prompt, before[len(prompt) :] + content, after)


def special_ids(tokenizer: PreTrainedTokenizerBase) -> set[int]:
    """Ids of the tokenizer's special tokens (eos, end-of-turn markers, ...)."""
    added = tokenizer.added_tokens_decoder
    return set(tokenizer.all_special_ids) | {i for i, t in added.items() if t.special}


def end_of_turn_ids(tokenizer: PreTrainedTokenizerBase, end: str) -> list[int]:
    """The tokens that close the answer, up to the first special one (where generation stops).

    A template that closes turns with plain text gets eos after it, or the model would not stop.
    """
    ids = list(tokenizer(end, add_special_tokens=False)["input_ids"]) if end else []
    special = special_ids(tokenizer)
    for i, token in enumerate(ids):
        if token in special:
            return ids[: i + 1]
    eos = tokenizer.eos_token_id
    return [*ids, eos] if isinstance(eos, int) else ids


def encode(tokenizer: PreTrainedTokenizerBase, example: ChatExample) -> Encoded:
    """The inference prompt's token ids, then the last answer's; labels on every answer token.

    The prompt is tokenized exactly as inference does (the template with the generation prompt),
    the answer on its own, then the template's end-of-turn token: tokenizing the whole
    conversation at once lets BPE merge template text with the answer's first token. Earlier
    assistant turns are context, as they are when the app sends them: each logged exchange
    teaches its own answer.
    """
    messages, tools = tool_turns.for_template(tokenizer, example.messages, example.tools)
    layout = answer_layout(tokenizer, messages, tools)
    rendered = tokenizer.apply_chat_template(
        layout.context, tools=tools, add_generation_prompt=True, tokenize=True, return_dict=True
    )
    prompt_ids = list(cast("dict[str, Any]", rendered)["input_ids"])
    answer_ids = list(tokenizer(layout.answer, add_special_tokens=False)["input_ids"])
    target = answer_ids + end_of_turn_ids(tokenizer, layout.end)
    return Encoded(
        prompt_ids + target,
        [IGNORE_INDEX] * len(prompt_ids) + target,
        example.weight,
        example.disagreement,
    )


def encode_all(
    tokenizer: PreTrainedTokenizerBase, examples: Sequence[ChatExample], max_seq_len: int
) -> tuple[list[Encoded], EncodeStats]:
    """Encode every example, skipping (and counting) ones too long or with no target tokens."""
    stats = EncodeStats()
    kept = []
    for example in examples:
        enc = encode(tokenizer, example)
        answer = sum(1 for t in enc.labels if t != IGNORE_INDEX)
        stats.longest_answer = max(stats.longest_answer, answer)
        stats.longest_sequence = max(stats.longest_sequence, len(enc.input_ids))
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
