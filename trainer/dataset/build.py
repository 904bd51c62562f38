"""The dataset build: read the store, curate, split, balance, scrub, write files and card."""

from __future__ import annotations

import dataclasses
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from gateway.store.db import StoreBusyError
from trainer.dataset import pii, sampling
from trainer.dataset.annotations import resolve
from trainer.dataset.card import source_counts, target_report
from trainer.dataset.config import FILTERS, BuildConfig, default_out_dir
from trainer.dataset.consensus import Judge
from trainer.dataset.pipeline import Curated, Sources, curate
from trainer.dataset.query import build_query
from trainer.dataset.records import Example
from trainer.dataset.split import split_groups
from trainer.dataset.store import StoreError, read_snapshot
from trainer.dataset.writer import (
    DatasetWriter,
    FileInfo,
    check_out_dir,
    content_hash,
    example_line,
)

CARD_VERSION = 1
_MAX_CORRUPT_WARNINGS = 5


class DatasetError(RuntimeError):
    """The build cannot produce a useful dataset; the message says why and what to do."""

    def __init__(self, message: str, removed: dict[str, int] | None = None) -> None:
        super().__init__(message)
        self.removed = removed or {}


def _stderr(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


def _removed_table(removed: dict[str, int], rows_in: int) -> str:
    lines = [f"  rows in window: {rows_in}"]
    lines += [f"  {name:<18} -{n}" for name, n in removed.items()]
    return "\n".join(lines)


def _scrubbed(
    example: Example, found: Counter[str], answers: Counter[str], mode: str, seed: int
) -> list[dict[str, Any]]:
    """The example's turns plus the teacher's answer, with PII scrubbed as `mode` says.

    `answers` counts what happened to answers holding PII: rewritten or kept.
    """
    fake = None if mode == "replace" else pii.Pseudonymizer(seed)
    turns = example.turns()
    out = []
    for i, turn in enumerate(turns):
        if not isinstance(turn.get("content"), str):
            out.append(turn)  # a turn that only calls tools
            continue
        is_answer = i == len(turns) - 1
        text, counts = pii.scrub(turn["content"], fake)
        if is_answer and counts:
            answers["kept" if mode == "keep" else "rewritten"] += 1
            if mode == "keep":
                out.append(turn)
                continue
        found.update(counts)
        out.append({**turn, "content": text})
    return out


def pii_warnings(report: dict[str, Any]) -> list[str]:
    """What scrubbing did to the targets, worded for the user (empty when nothing)."""
    mode, out = report["answers"], []
    rewritten, dropped = report["answers_rewritten"], report["answers_dropped"]
    if rewritten and mode == "pseudonymize":
        out.append(
            f"PII scrubbing rewrote {rewritten} answers (the student's targets): each value got a "
            "fake of the same kind, the same one as in the prompt, so copying it stays learnable. "
            "Choose otherwise with --pii-answers keep|drop|replace"
        )
    if rewritten and mode == "replace":
        out.append(
            f"PII scrubbing rewrote {rewritten} answers to placeholders like [EMAIL]: the student "
            "will learn to answer with them. --pii-answers pseudonymize keeps values copyable"
        )
    if dropped:
        out.append(f"left out {dropped} rows whose answers held PII (--pii-answers drop)")
    return out


def _answer_has_pii(example: Example) -> bool:
    return bool(pii.scrub(example.answer)[1])


def _config_dict(config: BuildConfig) -> dict[str, Any]:
    raw = dataclasses.asdict(config)
    raw["disabled"] = sorted(config.disabled)
    for key in ("since", "until"):
        raw[key] = raw[key].isoformat() if raw[key] is not None else None
    return raw


def build_dataset(
    store: Path,
    config: BuildConfig,
    out: Path | None = None,
    *,
    now: datetime | None = None,
    warn: Callable[[str], None] = _stderr,
    timings: dict[str, float] | None = None,
    judge: Judge | None = None,
    review_out: Path | None = None,
) -> tuple[Path, dict[str, Any]]:
    """Build and write the dataset; returns (directory, card). Raises DatasetError.

    `timings`, when given, receives the seconds each stage took (read, curate, write).
    `judge` picks among disagreeing answers for `--target judge`; `review_out` receives the
    disagreeing examples as JSONL.
    """
    now = now or datetime.now(UTC)
    clock = _Clock(timings)
    out = out or default_out_dir(config.route, now)
    try:
        check_out_dir(out)
    except FileExistsError as exc:
        raise DatasetError(str(exc)) from exc
    query = build_query(config)
    try:
        snapshot = read_snapshot(store, query)
        clock.lap("read")
    except (StoreError, StoreBusyError) as exc:
        raise DatasetError(str(exc)) from exc
    rows_in = sum(snapshot.counts.values())
    if snapshot.counts.get("route", 0) == rows_in:
        listing = ", ".join(f"{r!s} ({n})" for r, n in snapshot.routes) or "none"
        raise DatasetError(
            f"no rows for route {config.route!r} in {store}"
            + (" in the --since/--until window" if config.since or config.until else "")
            + f". Routes with rows: {listing}. Pass one of them as --route."
        )

    gold = resolve(snapshot.annotations)
    sources = Sources(meta=snapshot.meta, secondary=snapshot.secondary, gold=gold, judge=judge)
    curated = curate(snapshot.rows, config, sources)
    clock.lap("curate")
    for line in curated.corrupt[:_MAX_CORRUPT_WARNINGS]:
        warn(f"skipped corrupt row {line}")
    if len(curated.corrupt) > _MAX_CORRUPT_WARNINGS:
        warn(f"... and {len(curated.corrupt) - _MAX_CORRUPT_WARNINGS} more corrupt rows")
    tool_rows = sum(e.uses_tools for e in curated.examples)
    if tool_rows:
        warn(
            f"{tool_rows} rows are agent traffic (tools, tool calls or tool results), written in "
            "OpenAI's fine-tuning format with `tools`; `distill train` renders them with the "
            "student's chat template, as text when it has no tool format (docs/training-recipe.md)"
            ": build with --text-only to leave them out"
        )
    removed = {name: 0 for name in FILTERS}
    removed.update({k: v for k, v in snapshot.counts.items() if k != "kept"})
    removed.update(curated.removed)
    extra: dict[str, Any] = {
        "annotations": {
            "rows": gold.rows,
            "corrections": len(gold.corrections),
            "corrections_applied": sum(e.corrected for e in curated.examples),
            "exclusions": len(gold.excluded),
            "excluded": removed["excluded"],
            "labels": len(gold.labels),
        },
        "review": None
        if review_out is None
        else {"path": str(review_out), "rows": len(curated.review)},
        "tool_rows": tool_rows,  # agent traffic kept (tools, tool calls, tool results)
    }
    stats = getattr(judge, "stats", None)
    if callable(stats):
        judged = stats()
        extra["judge"] = judged
        if judged["failures"]:
            fallback = (
                f"teacher {config.judge_teacher!r}'s" if config.judge_teacher else "the primary's"
            )
            warn(
                f"the judge at {judged['base_url']} failed on {judged['failures']} of "
                f"{judged['calls']} calls (of {judged['asked']} examples to judge); the "
                f"examples it did not judge took {fallback} answer"
            )
    result = _split_and_write(store, config, out, now, query.rows, curated, removed, rows_in, extra)
    for message in pii_warnings(result[1]["pii"]):
        warn(message)
    if review_out is not None:
        write_review(review_out, curated.review)
    clock.lap("write")
    return result


def write_review(path: Path, items: list[dict[str, Any]]) -> None:
    """The disagreeing examples as JSONL, renamed into place only when complete."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(b"".join(orjson.dumps(item) + b"\n" for item in items))
    tmp.rename(path)


class _Clock:
    def __init__(self, sink: dict[str, float] | None) -> None:
        self.sink = sink
        self.last = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        if self.sink is not None:
            self.sink[name] = now - self.last
        self.last = now


def _split_and_write(
    store: Path,
    config: BuildConfig,
    out: Path,
    now: datetime,
    sql: str,
    curated: Curated,
    removed: dict[str, int],
    rows_in: int,
    extra: dict[str, Any],
) -> tuple[Path, dict[str, Any]]:
    examples = curated.examples
    answers: Counter[str] = Counter()
    if config.scrub_pii and config.pii_answers == "drop":
        kept = [e for e in examples if not _answer_has_pii(e)]
        answers["dropped"] = len(examples) - len(kept)
        examples = kept
    is_eval = split_groups([e.group() for e in examples], config.eval_fraction, config.seed)
    train = [e for e, ev in zip(examples, is_eval, strict=True) if not ev]
    held_out = [e for e, ev in zip(examples, is_eval, strict=True) if ev]

    # Balance the training side only: eval keeps the real class mix, so its scores mean
    # what they will mean in production.
    labels = curated.labels
    if config.balance != "none" and labels is None:
        raise DatasetError(
            f"--balance {config.balance} needs label answers, but the {len(examples)} answers "
            "are not a small set of short labels; pass --labels a,b,c or --balance none",
            removed,
        )
    train_labels = [e.answer.strip() for e in train]
    plan = sampling.balance(train_labels, config.balance, config.seed)
    if len(plan) < config.min_rows:
        raise DatasetError(
            f"only {len(plan)} training rows left (minimum {config.min_rows}, --min-rows). "
            "What removed them:\n"
            + _removed_table(removed, rows_in)
            + "\nWiden --since/--until, switch filters off (--no-...), or lower --min-rows.",
            removed,
        )

    found: Counter[str] = Counter()
    cache: dict[int, list[dict[str, Any]]] = {}

    def messages(example: Example) -> list[dict[str, Any]]:
        if not config.scrub_pii:
            return example.turns()
        key = id(example)  # oversampled rows repeat: scrub (and count) each example once
        if key not in cache:
            cache[key] = _scrubbed(example, found, answers, config.pii_answers, config.seed)
        return cache[key]

    # Curricula by disagreement need each example's score; other builds keep plain lines.
    scored = config.target != "primary" and any(e.disagreement > 0 for e in examples)

    def line(example: Example, weight: float | None = None) -> bytes:
        return example_line(
            messages(example),
            weight,
            tools=list(example.tools) or None,  # OpenAI's format: the functions the model had
            disagreement=round(example.disagreement, 4) if scored else None,
        )

    def train_lines() -> Iterator[bytes]:
        for index, weight in plan:
            yield line(train[index], weight)

    with DatasetWriter(out) as writer:
        files: dict[str, FileInfo] = {
            "train.jsonl": writer.write_jsonl("train.jsonl", train_lines()),
            "eval.jsonl": writer.write_jsonl("eval.jsonl", (line(e) for e in held_out)),
        }
        groups_train = {e.group() for e in train}
        groups_eval = {e.group() for e in held_out}
        card: dict[str, Any] = {
            "card_version": CARD_VERSION,
            "format": "openai-chat-jsonl",
            "route": config.route,
            "created_at": now.isoformat(),
            "seed": config.seed,
            "source": {"store": str(store), "query": sql, "params": _params(config)},
            "config": _config_dict(config),
            "rows_in": rows_in,
            "rows_kept": len(examples),
            "rows_out": files["train.jsonl"].rows + files["eval.jsonl"].rows,
            "filters": {
                name: {"enabled": config.enabled(name), "removed": removed[name]}
                for name in FILTERS
            },
            "split": {
                "eval_fraction": config.eval_fraction,
                "train": len(train),
                "eval": len(held_out),
                "train_groups": len(groups_train),
                "eval_groups": len(groups_eval),
                "groups_on_both_sides": len(groups_train & groups_eval),
            },
            "labels": list(labels) if labels else None,
            "labels_source": curated.labels_source,
            "label_distribution": _label_distribution(labels, train, held_out, plan),
            "balance": {"mode": config.balance, "train_before": len(train), "after": len(plan)},
            "pii": {
                "scrubbed": config.scrub_pii,
                "answers": config.pii_answers if config.scrub_pii else "keep",
                "replaced": {kind: found[kind] for kind in pii.KINDS},
                # Answers are the targets: say how many scrubbing changed, kept or dropped.
                "answers_rewritten": answers["rewritten"],
                "answers_kept_with_pii": answers["kept"],
                "answers_dropped": answers["dropped"],
            },
            "files": {name: dataclasses.asdict(info) for name, info in files.items()},
            "content_hash": content_hash(files),
            "content_hash_method": "sha256 over 'name\\0sha256(file)\\n' of the jsonl files",
            "corrupt_rows": curated.corrupt[:100],
            "target": target_report(config.target, config.judge_teacher, examples, curated),
            "sources": {
                "kept": source_counts(examples),
                "train": source_counts([train[i] for i, _ in plan]),
                "eval": source_counts(held_out),
            },
            **extra,
        }
        return writer.commit(card), card


def _params(config: BuildConfig) -> dict[str, Any]:
    return {
        "route": config.route,
        "since": config.since.isoformat() if config.since else None,
        "until": config.until.isoformat() if config.until else None,
    }


def _label_distribution(
    labels: tuple[str, ...] | None,
    train: list[Example],
    held_out: list[Example],
    plan: list[tuple[int, float | None]],
) -> dict[str, dict[str, int]] | None:
    if labels is None:
        return None
    return {
        "train_before_balance": sampling.distribution([e.answer.strip() for e in train]),
        "train": sampling.distribution([train[i].answer.strip() for i, _ in plan]),
        "eval": sampling.distribution([e.answer.strip() for e in held_out]),
    }
