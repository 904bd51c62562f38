"""From fetched rows to the kept examples, counting what each filter removes, in order."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from trainer.dataset import consensus, dedup, filters, sampling
from trainer.dataset.annotations import Gold
from trainer.dataset.config import ROW_FILTERS, BuildConfig
from trainer.dataset.records import CorruptRow, Example, answer_text, parse_row, turn_text
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
    # example id -> every teacher's (name, answer), primary first, and the choice made
    choices: dict[str, tuple[list[tuple[str, str]], consensus.Choice]] = field(default_factory=dict)
    review: list[dict[str, Any]] = field(default_factory=list)  # disagreeing examples


@dataclass(frozen=True)
class Sources:
    """What the store says beyond the rows: pairs, secondary answers, gold annotations."""

    meta: Mapping[str, tuple[str, bool]] = field(default_factory=dict)  # id -> (pair, synthetic)
    secondary: Mapping[str, list[tuple[str, str, str | None]]] = field(default_factory=dict)
    gold: Gold = field(default_factory=Gold)
    judge: consensus.Judge | None = None


def _answers(
    example: Example, pair_id: str, sources: Sources, corrupt: list[str]
) -> list[tuple[str, str]]:
    """The primary's answer, then each secondary teacher's latest usable one for the pair."""
    answers = [(consensus.PRIMARY, example.answer)]
    latest: dict[str, str] = {}
    for name, endpoint, response in sources.secondary.get(pair_id, []):
        try:
            latest[name] = answer_text(response, endpoint)
        except CorruptRow as exc:
            corrupt.append(f"{pair_id} ({name}): {exc}")
    return answers + sorted(latest.items())


def _with_target(
    example: Example, config: BuildConfig, sources: Sources, curated: Curated
) -> Example:
    """The example with its pair, synthetic flag, chosen target and any gold correction."""
    pair_id, synthetic = sources.meta.get(example.id, (example.id, False))
    answers = _answers(example, pair_id, sources, curated.corrupt)
    choice = consensus.choose(
        answers,
        config.target,
        messages=example.messages,
        judge=sources.judge,
        judge_teacher=config.judge_teacher,
    )
    curated.choices[example.id] = (answers, choice)
    gold = sources.gold.answer_for(example.id)
    if choice.disagreement > 0:
        curated.review.append(
            {
                "id": example.id,
                "pair_id": pair_id,
                "messages": list(example.messages),
                "answers": dict(answers),
                "target": choice.target,
                "target_source": choice.source,
                "disagreement": round(choice.disagreement, 4),
                "correction": gold,
            }
        )
    return dataclasses.replace(
        example,
        answer=gold if gold is not None else choice.target,
        synthetic=synthetic,
        pair_id=pair_id,
        # A person's answer settles the example: no disagreement left to filter or order by.
        disagreement=0.0 if gold is not None else choice.disagreement,
        corrected=gold is not None,
    )


def _row_problem(example: Example, config: BuildConfig) -> str | None:
    """The first per-row filter the example fails, or None."""
    if config.enabled("refusal") and (
        example.refused or filters.is_refusal(example.answer, config.refusal_phrases)
    ):
        return "refusal"
    if config.enabled("tool_use") and example.uses_tools:
        return "tool_use"
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
    if (
        config.max_disagreement is not None
        and not example.corrected
        and example.disagreement > config.max_disagreement
    ):
        return "disagreement"
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
    rest = [turn_text(m) for m in example.messages if m["role"] not in _SYSTEM_ROLES]
    return _bucket(system), "\n".join(rest)


@lru_cache(maxsize=1024)  # a route has a handful of system prompts over millions of rows
def _bucket(system: tuple[tuple[str, str], ...]) -> str:
    return dedup.exact_key(system).hex()


def curate(rows: Sequence[Row], config: BuildConfig, sources: Sources | None = None) -> Curated:
    """Parse, choose targets, filter, deduplicate and cap; survivors keep their original order."""
    sources = sources or Sources()
    removed = dict.fromkeys(ROW_FILTERS, 0)
    curated = Curated(examples=[], removed=removed, labels=None, labels_source=None)
    corrupt = curated.corrupt
    examples: list[Example] = []
    # Cheap per-row checks first, in one pass.
    for row in rows:
        try:
            example = parse_row(*row)
        except CorruptRow as exc:
            removed["corrupt"] += 1
            corrupt.append(f"{row[0]}: {exc}")
            continue
        if example.id in sources.gold.excluded:
            removed["excluded"] += 1
            continue
        example = _with_target(example, config, sources, curated)
        problem = _row_problem(example, config)
        if problem is None:
            examples.append(example)
        else:
            removed[problem] += 1
    # Then the set-wide ones; each sees only what the previous ones kept.
    if config.enabled("exact_duplicate"):
        keys = [dedup.exact_key([(m["role"], turn_text(m)) for m in e.messages]) for e in examples]
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
    curated.examples, curated.labels, curated.labels_source = examples, labels, source
    return curated
