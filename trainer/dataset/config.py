"""The settings of one dataset build, validated up front so a bad value fails before any I/O."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

# Filters in the order they are applied; a row removed by one is counted there only.
# `route` and `corrupt` cannot be switched off: without them there is nothing to build from.
SQL_FILTERS: tuple[str, ...] = (
    "route",
    "shadow",
    "data_tool",
    "non_teacher",
    "failed",
    "truncated",
)
ROW_FILTERS: tuple[str, ...] = (
    "corrupt",
    "excluded",
    "refusal",
    "tool_use",
    "invalid_json",
    "unknown_label",
    "length_bounds",
    "negative_feedback",
    "disagreement",
    "exact_duplicate",
    "near_duplicate",
    "user_cap",
)
FILTERS: tuple[str, ...] = SQL_FILTERS + ROW_FILTERS
# `excluded` is a person's decision (an `exclude` annotation); `include` undoes it, not a flag.
ALWAYS_ON: frozenset[str] = frozenset({"route", "data_tool", "corrupt", "excluded"})
# These are switched on by their own options (--per-user-cap, --labels, --max-disagreement,
# --text-only).
_BY_OPTION: frozenset[str] = frozenset({"user_cap", "unknown_label", "disagreement", "tool_use"})
SWITCHABLE: tuple[str, ...] = tuple(f for f in FILTERS if f not in ALWAYS_ON | _BY_OPTION)
TARGETS: tuple[str, ...] = ("primary", "vote", "judge")
BALANCE_MODES: tuple[str, ...] = ("none", "undersample", "oversample", "weights")
# PII found in an answer (the student's target), per route (one build is one route):
# pseudonymize: fakes of the same kind, the same fake in prompt and answer, so copying a value
#   from the prompt stays learnable and no real value is kept (the default);
# replace: [EMAIL]-style placeholders in prompt and answer (the student learns to write them);
# keep: the answer as the teacher wrote it (prompts are still pseudonymized);
# drop: leave out every row whose answer holds PII.
PII_ANSWER_MODES: tuple[str, ...] = ("pseudonymize", "replace", "keep", "drop")

DEFAULT_REFUSALS: tuple[str, ...] = (
    "I'm sorry, but I can't",
    "I'm sorry, but I cannot",
    "I am sorry, but I cannot",
    "I'm sorry, I can't",
    "I cannot help with",
    "I can't help with",
    "I can't assist with",
    "I cannot assist with",
    "I'm unable to help",
    "I am unable to help",
    "As an AI",
    "as a language model",
)


@dataclass(frozen=True)
class BuildConfig:
    """What to read, which filters to apply and how to split; defaults suit most routes."""

    route: str
    since: datetime | None = None  # inclusive lower bound on `ts`
    until: datetime | None = None  # exclusive upper bound on `ts`
    eval_fraction: float = 0.1  # share of rows (whole users/conversations) held out for eval
    seed: int = 0  # drives the split, per-user caps and balancing; same seed, same files
    disabled: frozenset[str] = frozenset()  # filter names switched off
    min_chars: int = 1  # bounds on prompt chars and on answer chars, each
    max_chars: int = 32_000
    feedback_threshold: float = 0.0  # a feedback score at or below this drops the row
    near_dup_threshold: float = 0.9  # estimated Jaccard similarity of word shingles
    shingle_words: int = 3
    num_perm: int = 128  # MinHash permutations: more is more exact and slower
    per_user_cap: int | None = None  # keep at most this many rows per user
    balance: str = "none"
    labels: tuple[str, ...] | None = None  # the label set; None: detect from the answers
    max_labels: int = 20  # auto-detection: at most this many distinct answers ...
    max_label_chars: int = 64  # ... each at most this long
    min_rows: int = 10  # fewer train rows than this is an error
    scrub_pii: bool = True
    # What scrubbing does to PII in the teacher's answers (the targets); see PII_ANSWER_MODES.
    pii_answers: str = "pseudonymize"
    refusal_phrases: tuple[str, ...] = field(default=DEFAULT_REFUSALS)
    target: str = "primary"  # primary | vote | judge: which teacher answer becomes the target
    judge_teacher: str | None = None  # judge: the teacher whose answer wins without a judge call
    # Drop examples where more than this share of teachers disagree with the target (None: keep).
    max_disagreement: float | None = None
    # Leave out rows with tools, tool calls or tool results (agent traffic is kept by default:
    # OpenAI's fine-tuning format carries it, and so does `distill train`).
    text_only: bool = False

    def __post_init__(self) -> None:
        if not self.route:
            raise ValueError("route must not be empty: pass --route NAME")
        if not 0.0 <= self.eval_fraction < 1.0:
            raise ValueError(f"eval_fraction must be in [0, 1), got {self.eval_fraction}")
        if self.since and self.until and self.since >= self.until:
            raise ValueError(f"since ({self.since}) must be before until ({self.until})")
        unknown = sorted(self.disabled - set(SWITCHABLE))
        if unknown:
            raise ValueError(
                f"unknown or unswitchable filter(s) {unknown}; switchable: {list(SWITCHABLE)}"
            )
        if self.min_chars < 0 or self.max_chars < self.min_chars:
            raise ValueError(
                f"need 0 <= min_chars <= max_chars, got {self.min_chars} and {self.max_chars}"
            )
        if not 0.0 < self.near_dup_threshold <= 1.0:
            raise ValueError(f"near_dup_threshold must be in (0, 1], got {self.near_dup_threshold}")
        if self.shingle_words < 1:
            raise ValueError(f"shingle_words must be >= 1, got {self.shingle_words}")
        if not 16 <= self.num_perm <= 1024:
            raise ValueError(f"num_perm must be in [16, 1024], got {self.num_perm}")
        if self.per_user_cap is not None and self.per_user_cap < 1:
            raise ValueError(f"per_user_cap must be >= 1, got {self.per_user_cap}")
        if self.balance not in BALANCE_MODES:
            raise ValueError(f"balance must be one of {list(BALANCE_MODES)}, got {self.balance!r}")
        if self.labels is not None and len(set(self.labels)) < 2:
            raise ValueError(f"labels needs at least two distinct labels, got {list(self.labels)}")
        if self.target not in TARGETS:
            raise ValueError(f"target must be one of {list(TARGETS)}, got {self.target!r}")
        if self.max_disagreement is not None and not 0.0 <= self.max_disagreement < 1.0:
            raise ValueError(
                f"max_disagreement must be in [0, 1) (0 drops any disagreement), "
                f"got {self.max_disagreement}"
            )
        if self.pii_answers not in PII_ANSWER_MODES:
            raise ValueError(
                f"pii_answers must be one of {list(PII_ANSWER_MODES)}, got {self.pii_answers!r}"
            )
        if self.min_rows < 1:
            raise ValueError(f"min_rows must be >= 1, got {self.min_rows}")

    def enabled(self, name: str) -> bool:
        if name == "user_cap":
            return self.per_user_cap is not None
        if name == "unknown_label":
            return self.labels is not None
        if name == "disagreement":
            return self.max_disagreement is not None
        if name == "tool_use":
            return self.text_only
        return name not in self.disabled


def default_out_dir(route: str, now: datetime) -> Path:
    """`datasets/<route>/<UTC timestamp>`; route names may hold '/', which must not nest dirs."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in route)
    return Path("datasets") / safe / now.strftime("%Y%m%dT%H%M%SZ")
