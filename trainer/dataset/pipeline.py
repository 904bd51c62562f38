"""From fetched rows to the kept examples, counting what each filter removes, in order."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from trainer.dataset import dedup, filters, sampling
from trainer.dataset.config import ROW_FILTERS, BuildConfig
from trainer.dataset.records import CorruptRow, Example, parse_row
from trainer.dataset.store import Row

_SYSTEM_ROLES = ("system", "developer")


@dataclass
class Curated:
    """The examples that survived, and what happened to the others."""

    examples: list[Example]
    removed: dict[str, int]  # row filter -> rows removed, in filter order
    labels: tuple[str, ...] | None  # the label set when answers are labels
    labels_source: str | None  # 'given' | 'detected' | None
    corrupt: list[str] = field(default_factory=list)  # "id: why" for each corrupt row


def _row_problem(example: Example, config: BuildConfig) -> str | None:
    """The first per-row filter the example fails, or None."""
    if config.enabled("refusal") and filters.is_refusal(example.answer, config.refusal_phrases):
        return "refusal"
    if config.enabled("invalid_json") and filters.json_problem(
        example.answer, example.response_format
    ):
        return "invalid_json"
    if config.labels is not None and example.answer.strip() not in config.labels:
        return "unknown_label"
    if config.enabled("length_bounds") and not (
        filters.within_bounds(example.prompt_chars, config.min_chars, config.max_chars)
        and filters.within_bounds(len(example.answer), config.min_chars, config.max_chars)
    ):
        return "length_bounds"
    if config.enabled("negative_feedback") and filters.is_negative(
        example.min_score, config.feedback_threshold
    ):
        return "negative_feedback"
    return None


def _keep(
    examples: list[Example], drop: Sequence[bool], name: str, removed: dict[str, int]
) -> list[Example]:
    removed[name] = sum(drop)
    return [e for e, d in zip(examples, drop, strict=True) if not d]


def _near_dup_item(example: Example) -> tuple[str, str]:
    """(bucket, text): compare only under the same system prompt, on the other turns."""
    system = tuple(
        (m["role"], m["content"]) for m in example.messages if m["role"] in _SYSTEM_ROLES
    )
    rest = [m["content"] for m in example.messages if m["role"] not in _SYSTEM_ROLES]
    return _bucket(system), "\n".join(rest)


@lru_cache(maxsize=1024)  # a route has a handful of system prompts over millions of rows
def _bucket(system: tuple[tuple[str, str], ...]) -> str:
    return dedup.exact_key(system).hex()


def curate(rows: Sequence[Row], config: BuildConfig) -> Curated:
    """Parse, filter, deduplicate and cap; returns the survivors in their original order."""
    removed = dict.fromkeys(ROW_FILTERS, 0)
    corrupt: list[str] = []
    examples: list[Example] = []
    # Cheap per-row checks first, in one pass.
    for row in rows:
        try:
            example = parse_row(*row)
        except CorruptRow as exc:
            removed["corrupt"] += 1
            corrupt.append(f"{row[0]}: {exc}")
            continue
        problem = _row_problem(example, config)
        if problem is None:
            examples.append(example)
        else:
            removed[problem] += 1
    # Then the set-wide ones; each sees only what the previous ones kept.
    if config.enabled("exact_duplicate"):
        keys = [dedup.exact_key([(m["role"], m["content"]) for m in e.messages]) for e in examples]
        examples = _keep(examples, dedup.exact_duplicates(keys), "exact_duplicate", removed)
    if config.enabled("near_duplicate"):
        flags = dedup.near_duplicates(
            [_near_dup_item(e) for e in examples],
            threshold=config.near_dup_threshold,
            shingle_words=config.shingle_words,
            num_perm=config.num_perm,
        )
        examples = _keep(examples, flags, "near_duplicate", removed)
    if config.per_user_cap is not None:
        keep = sampling.cap_per_user([e.user for e in examples], config.per_user_cap, config.seed)
        examples = _keep(examples, [not k for k in keep], "user_cap", removed)
    labels, source = config.labels, "given" if config.labels is not None else None
    if labels is None:
        labels = sampling.detect_labels(
            [e.answer for e in examples], config.max_labels, config.max_label_chars
        )
        source = "detected" if labels is not None else None
    return Curated(
        examples=examples, removed=removed, labels=labels, labels_source=source, corrupt=corrupt
    )
