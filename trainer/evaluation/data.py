"""Read the eval split: each example's prompt (all turns but the last) and the teacher's answer."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class DatasetError(ValueError):
    """An eval split that cannot be used, with what to do about it."""


@dataclass(frozen=True)
class EvalExample:
    messages: list[dict[str, Any]]
    target: str  # the answer's text; for an answer that calls tools, the calls' comparable key
    tools: list[dict[str, Any]] | None = None  # the request's function tools (agent rows)
    answer: dict[str, Any] | None = None  # the teacher's answer turn as the row writes it

    @property
    def calls_tools(self) -> bool:
        return bool(self.answer and self.answer.get("tool_calls"))

    @property
    def user_text(self) -> str:
        """The last user turn: what the report shows as the prompt."""
        for message in reversed(self.messages):
            if message.get("role") == "user":
                return str(message.get("content") or "")
        return ""


def parse_example(line: str, where: str) -> EvalExample:
    """One OpenAI chat fine-tuning line; the final assistant turn is the teacher's answer."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{where}: not valid JSON ({exc.msg}); rebuild the dataset") from exc
    messages = record.get("messages") if isinstance(record, dict) else None
    if not isinstance(messages, list) or len(messages) < 2:
        raise DatasetError(f"{where}: expected {{'messages': [...]}} with a prompt and an answer")
    last = messages[-1]
    if not isinstance(last, dict) or last.get("role") != "assistant":
        raise DatasetError(f"{where}: the last message must be the assistant's (teacher's) answer")
    tools = record.get("tools")
    if tools is not None and not isinstance(tools, list):
        raise DatasetError(f"{where}: tools must be a list of function tools")
    from trainer.training.tool_turns import reference  # trainer.training imports evaluation

    return EvalExample(messages[:-1], reference(last), tools or None, last)


def load_eval_examples(dataset_dir: str | Path, *, limit: int | None = None) -> list[EvalExample]:
    directory = Path(dataset_dir)
    path = directory / "eval.jsonl"
    if not path.is_file():
        raise DatasetError(
            f"{path} not found: pass --dataset the output directory of `distill dataset build`"
        )
    examples = []
    with path.open() as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            examples.append(parse_example(line, f"{path}:{number}"))
            if limit is not None and len(examples) >= limit:
                break
    if not examples:
        raise DatasetError(f"{path} has no examples; build a dataset with an eval split")
    return examples


def dataset_hash(dataset_dir: str | Path) -> str | None:
    """The dataset card's content hash, when there is a card."""
    card = Path(dataset_dir) / "dataset.json"
    if not card.is_file():
        return None
    try:
        value = json.loads(card.read_text()).get("content_hash")
    except (json.JSONDecodeError, AttributeError):
        return None
    return str(value) if value else None
