"""`dataset enrich --rationales`: ask a teacher why each training answer is right; new dataset."""

from __future__ import annotations

import hashlib
import json
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from trainer.dataset.teacher_client import Ask, TeacherClient
from trainer.dataset.writer import DatasetWriter, FileInfo, check_out_dir, content_hash

EXPLAIN_SYSTEM_PROMPT = (
    "Explain in one sentence why the answer is right for the input. Reply with the sentence only."
)
TOOL_TAGS = {"distill_tool": "enrich"}


class EnrichError(RuntimeError):
    """The dataset cannot be enriched as asked; the message says what to do."""


def explain_request(messages: list[dict[str, str]]) -> Ask:
    """The rationale request for one example: its last input turn and its answer."""
    user = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
    answer = next(m["content"] for m in reversed(messages) if m["role"] == "assistant")
    return Ask(
        messages=[
            {"role": "system", "content": EXPLAIN_SYSTEM_PROMPT},
            {"role": "user", "content": f"Input:\n{user}\n\nAnswer:\n{answer}"},
        ],
        tags=TOOL_TAGS,
    )


def _read_lines(path: Path) -> list[dict[str, Any]]:
    records = []
    for lineno, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            raise EnrichError(f"{path.name} line {lineno} is not valid JSON") from None
        messages = record.get("messages") if isinstance(record, dict) else None
        if not isinstance(messages, list) or not any(
            isinstance(m, dict) and m.get("role") == "assistant" for m in messages
        ):
            raise EnrichError(f"{path.name} line {lineno} has no assistant answer to explain")
        records.append(record)
    return records


def default_out(dataset_dir: Path) -> Path:
    return dataset_dir.with_name(f"{dataset_dir.name}-rationales")


def enrich_rationales(
    dataset_dir: Path, out: Path, client: TeacherClient
) -> tuple[Path, dict[str, Any]]:
    """Write `out`: the dataset with a `rationale` on every train line; returns (dir, card)."""
    train_path = dataset_dir / "train.jsonl"
    if not train_path.is_file():
        raise EnrichError(
            f"{dataset_dir} has no train.jsonl; pass --dataset a directory written by "
            "`distill dataset build`"
        )
    try:
        check_out_dir(out)
    except FileExistsError as exc:
        raise EnrichError(str(exc)) from exc
    records = _read_lines(train_path)
    if not records:
        raise EnrichError(f"{train_path} is empty; build a bigger dataset first")

    # Oversampled rows repeat: ask once per distinct (input, answer).
    requests: dict[str, Ask] = {}
    keys = []
    for record in records:
        ask = explain_request(record["messages"])
        key = json.dumps(ask.messages)
        requests.setdefault(key, ask)
        keys.append(key)
    answers = dict(zip(requests, client.ask_all(list(requests.values())), strict=True))

    with DatasetWriter(out) as writer:
        files: dict[str, FileInfo] = {
            "train.jsonl": writer.write_jsonl(
                "train.jsonl",
                (
                    orjson.dumps({**r, "rationale": answers[k].strip()}) + b"\n"
                    for r, k in zip(records, keys, strict=True)
                ),
            )
        }
        eval_path = dataset_dir / "eval.jsonl"
        if eval_path.is_file():
            shutil.copyfile(eval_path, writer.tmp / "eval.jsonl")
            digest = hashlib.sha256(eval_path.read_bytes()).hexdigest()
            rows = sum(1 for line in eval_path.read_text().splitlines() if line.strip())
            files["eval.jsonl"] = writer.files["eval.jsonl"] = FileInfo(rows=rows, sha256=digest)
        parent = _card(dataset_dir)
        card = {
            **parent,
            "files": {name: {"rows": f.rows, "sha256": f.sha256} for name, f in files.items()},
            "content_hash": content_hash(files),
            "parent_content_hash": parent.get("content_hash"),
            "rationales": {
                "created_at": datetime.now(UTC).isoformat(),
                "base_url": client.base_url,
                "model": client.model,
                "prompt": EXPLAIN_SYSTEM_PROMPT,
                "rows": len(records),
                "requests": len(requests),
            },
        }
        return writer.commit(card), card


def _card(dataset_dir: Path) -> dict[str, Any]:
    path = dataset_dir / "dataset.json"
    if not path.is_file():
        return {}
    try:
        card = json.loads(path.read_text())
    except json.JSONDecodeError:
        return {}
    return card if isinstance(card, dict) else {}
