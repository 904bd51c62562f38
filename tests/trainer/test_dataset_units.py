"""Table-driven tests of the dataset build's pure parts: filters, dedup, split, balance, PII."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest

from trainer.dataset import dedup, filters, pii, sampling
from trainer.dataset.config import DEFAULT_REFUSALS, BuildConfig, default_out_dir
from trainer.dataset.query import build_query, reason_expression
from trainer.dataset.records import CorruptRow, parse_row
from trainer.dataset.split import split_groups

# --- SQL filters: the CASE runs in a real DuckDB over one-row tables ---------------------

_OK = {
    "route": "r",
    "kind": "primary",
    "variant": "teacher",
    "status": 200,
    "error": None,
    "finish_reason": "stop",
    "tags": None,
}


@pytest.mark.parametrize(
    ("changes", "disabled", "reason"),
    [
        ({}, (), None),
        ({"route": "other"}, (), "route"),
        ({"route": None}, (), "route"),
        ({"kind": "shadow", "variant": "s1"}, (), "shadow"),
        ({"kind": "shadow", "variant": "s1"}, ("shadow",), "non_teacher"),
        ({"kind": "shadow", "variant": "s1"}, ("shadow", "non_teacher"), None),
        ({"kind": "fallback"}, (), None),  # the teacher answering as fallback is still a target
        ({"variant": None}, (), "non_teacher"),
        ({"status": 500}, (), "failed"),
        ({"status": None}, (), "failed"),
        ({"error": "upstream reset"}, (), "failed"),
        ({"error": ""}, (), None),
        ({"status": 429}, ("failed",), None),
        ({"finish_reason": "length"}, (), "truncated"),
        ({"finish_reason": "length"}, ("truncated",), None),
        ({"finish_reason": "length", "status": 500}, (), "failed"),  # first filter wins
        ({"route": "x", "status": 500, "kind": "shadow"}, (), "route"),
        # The trainer's own calls (rationales, synth writing, judging) are never targets.
        ({"tags": '{"distill_tool": "enrich"}'}, (), "data_tool"),
        ({"tags": '{"distill_tool": "judge"}', "status": 500}, (), "data_tool"),
        ({"tags": '{"synthetic": true}'}, (), None),  # synthetic answers are training data
        ({"tags": '{"team": "a"}'}, (), None),
    ],
)
def test_sql_reason(changes: dict[str, Any], disabled: tuple[str, ...], reason: str | None) -> None:
    row = {**_OK, **changes}
    config = BuildConfig(route="r", disabled=frozenset(disabled))
    conn = duckdb.connect()
    conn.execute(
        "CREATE TABLE r AS SELECT ?::VARCHAR AS route, ?::VARCHAR AS kind, "
        "?::VARCHAR AS variant, ?::INTEGER AS status, ?::VARCHAR AS error, "
        "?::VARCHAR AS finish_reason, ?::JSON AS tags",
        [row[k] for k in ("route", "kind", "variant", "status", "error", "finish_reason", "tags")],
    )
    got = conn.execute(f"SELECT {reason_expression(config)} FROM r", {"route": "r"}).fetchone()
    assert got == (reason,)


def test_query_window_params() -> None:
    since, until = datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 2, 1, tzinfo=UTC)
    query = build_query(BuildConfig(route="r", since=since, until=until))
    assert query.params == {"route": "r", "since": since, "until": until}
    assert "r.ts >= $since" in query.rows and "r.ts < $until" in query.rows
    assert "$route" not in query.routes
    assert "$since" not in build_query(BuildConfig(route="r")).rows


# --- parsing logged bodies -----------------------------------------------------------


def _chat(messages: Any, content: Any = "billing", **extra: Any) -> tuple[str, str]:
    request = json.dumps({"model": "m", "messages": messages, **extra})
    response = json.dumps({"choices": [{"message": {"role": "assistant", "content": content}}]})
    return request, response


_SYS = {"role": "system", "content": "Classify."}
_USER = {"role": "user", "content": "My invoice is wrong."}
_OK_RESPONSE = _chat([_USER])[1]
_PARTS = [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]
_TURNS = [
    _USER,
    {"role": "assistant", "content": "x"},
    {"role": "user", "content": "y", "name": "n"},
]


@pytest.mark.parametrize(
    ("endpoint", "bodies", "messages", "answer"),
    [
        ("chat", _chat([_SYS, _USER]), [_SYS, _USER], "billing"),
        (
            "chat",
            _chat([{"role": "user", "content": _PARTS}]),
            [{"role": "user", "content": "ab"}],
            "billing",
        ),
        ("chat", _chat(_TURNS), _TURNS, "billing"),
        (
            "completions",
            (json.dumps({"prompt": ["Q: 2+2?"]}), json.dumps({"choices": [{"text": " 4"}]})),
            [{"role": "user", "content": "Q: 2+2?"}],
            " 4",
        ),
    ],
)  # fmt: skip
def test_parse_row(
    endpoint: str, bodies: tuple[str, str], messages: list[dict[str, str]], answer: str
) -> None:
    example = parse_row("id", endpoint, bodies[0], bodies[1], "u", None, None)
    assert list(example.messages) == messages
    assert example.answer == answer
    assert example.group() == "user:u"


@pytest.mark.parametrize(
    ("endpoint", "request_body", "response_body", "why"),
    [
        ("chat", None, "{}", "request is missing"),
        ("chat", "{not json", "{}", "request is not valid JSON"),
        ("chat", "[1]", "{}", "request is not a JSON object"),
        ("chat", '{"truncated": true, "original_bytes": 9, "head": "{"}', "{}", "capture limit"),
        ("chat", '{"model": "m"}', _OK_RESPONSE, "request has no messages"),
        ("chat", '{"messages": []}', _OK_RESPONSE, "request has no messages"),
        ("chat", _chat([{"role": "tool", "content": "x"}])[0], _OK_RESPONSE, "no tool_call_id"),
        ("chat", _chat([{"role": "function", "content": "x"}])[0], _OK_RESPONSE, "supported role"),
        ("chat", _chat([{"role": "user", "content": None}])[0], _OK_RESPONSE, "no text content"),
        ("chat", _chat([{"role": "user", "content": [{"type": "i"}]}])[0], _OK_RESPONSE, "no text"),
        ("chat", _chat([_SYS])[0], _OK_RESPONSE, "no user message"),
        ("chat", _chat([_USER])[0], '{"choices": []}', "response has no choices"),
        ("chat", _chat([_USER])[0], _chat([_USER], content=None)[1], "no assistant text"),
        ("completions", '{"prompt": [1, 2]}', '{"choices": [{"text": "x"}]}', "single text prompt"),
        ("completions", '{"prompt": "p"}', '{"choices": [{"message": {}}]}', "no assistant text"),
    ],
)  # fmt: skip
def test_corrupt_rows(
    endpoint: str, request_body: str | None, response_body: str, why: str
) -> None:
    with pytest.raises(CorruptRow, match=why):
        parse_row("id", endpoint, request_body, response_body, None, None, None)


@pytest.mark.parametrize(
    ("user", "session", "group"),
    [
        ("u1", "s1", "user:u1"),
        ("", "s1", "session:s1"),
        (None, None, "conversation:"),
    ],
)
def test_group_key(user: str | None, session: str | None, group: str) -> None:
    req, resp = _chat([_SYS, _USER])
    assert parse_row("id", "chat", req, resp, user, session, None).group().startswith(group)


def test_conversation_groups_follow_the_first_user_message() -> None:
    a = parse_row("1", "chat", *_chat([_USER]), None, None, None)
    b = parse_row(
        "2", "chat", *_chat([_USER, {"role": "assistant", "content": "?"}, _USER]), None, None, None
    )
    c = parse_row("3", "chat", *_chat([{"role": "user", "content": "other"}]), None, None, None)
    assert a.group() == b.group() != c.group()


# --- per-row filters -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "refusal"),
    [
        ("billing", False),
        ("I'm sorry, but I can't help with that.", True),
        ("I\u2019m sorry, but I can\u2019t do this", True),  # curly apostrophes
        ("AS AN AI, I have no access to your account.", True),
        ("Sorry for the trouble: this is a billing issue.", False),
        ("", False),
    ],
)
def test_is_refusal(answer: str, refusal: bool) -> None:
    assert filters.is_refusal(answer, DEFAULT_REFUSALS) is refusal


_SCHEMA = {
    "type": "json_schema",
    "json_schema": {
        "name": "t",
        "schema": {
            "type": "object",
            "properties": {"category": {"enum": ["billing", "technical", "account"]}},
            "required": ["category"],
        },
    },
}


@pytest.mark.parametrize(
    ("answer", "response_format", "problem"),
    [
        ("not json", None, None),
        ("not json", {"type": "text"}, None),
        ('{"category": "billing"}', {"type": "json_object"}, None),
        ("category: billing", {"type": "json_object"}, "not valid JSON"),
        ('["billing"]', {"type": "json_object"}, "not a JSON object"),
        ('{"category": "billing"}', _SCHEMA, None),
        ('{"category": "cats"}', _SCHEMA, "does not match the schema"),
        ("{}", _SCHEMA, "does not match the schema"),
        ('["x"]', {"type": "json_schema"}, None),  # no schema given: any JSON will do
        ("{", _SCHEMA, "not valid JSON"),
    ],
)
def test_json_problem(
    answer: str, response_format: dict[str, Any] | None, problem: str | None
) -> None:
    got = filters.json_problem(answer, response_format)
    assert got == problem if problem is None else got is not None and got.startswith(problem)


@pytest.mark.parametrize(
    ("chars", "low", "high", "ok"),
    [(0, 1, 10, False), (1, 1, 10, True), (10, 1, 10, True), (11, 1, 10, False), (0, 0, 0, True)],
)
def test_within_bounds(chars: int, low: int, high: int, ok: bool) -> None:
    assert filters.within_bounds(chars, low, high) is ok


@pytest.mark.parametrize(
    ("score", "threshold", "negative"),
    [(None, 0.0, False), (1.0, 0.0, False), (0.0, 0.0, True), (-1.0, 0.0, True), (2.0, 3.0, True)],
)
def test_is_negative(score: float | None, threshold: float, negative: bool) -> None:
    assert filters.is_negative(score, threshold) is negative


# --- dedup -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ([("user", "Hi, my invoice!")], [("user", "hi my INVOICE")], True),
        ([("user", "Hi")], [("system", "Hi")], False),
        ([("system", "s"), ("user", "x")], [("system", "t"), ("user", "x")], False),
        ([("user", "a b")], [("user", "ab")], False),
    ],
)
def test_exact_key(a: list[tuple[str, str]], b: list[tuple[str, str]], same: bool) -> None:
    assert (dedup.exact_key(a) == dedup.exact_key(b)) is same


def test_exact_duplicates_keep_the_first() -> None:
    assert dedup.exact_duplicates([b"a", b"b", b"a", b"a", b"c"]) == [
        False,
        False,
        True,
        True,
        False,
    ]


_LONG = (
    "Hello team, I was charged twice for my invoice this month and the second payment "
    "went through on the card I removed last week, can you refund it please"
)


@pytest.mark.parametrize(
    ("items", "flags"),
    [
        ([("s", _LONG), ("s", _LONG + " Thanks.")], [False, True]),
        ([("s", _LONG), ("s", _LONG.upper() + "!!")], [False, True]),
        ([("s", _LONG), ("other-system", _LONG + " Thanks.")], [False, False]),
        (
            [("s", _LONG), ("s", "My dashboard crashes on save since the last update")],
            [False, False],
        ),
        ([("s", "short"), ("s", "short"), ("s", "shorter")], [False, True, False]),
        ([("s", "a b c d e f g h i j"), ("s", "a b c d e f g h i k")], [False, False]),
    ],
)
def test_near_duplicates(items: list[tuple[str, str]], flags: list[bool]) -> None:
    assert dedup.near_duplicates(items, threshold=0.9) == flags


def test_near_duplicate_threshold_is_respected() -> None:
    # The last word differs: 3-word shingles share 7 of 9, a near duplicate at 0.6, not at 0.9.
    items = [("s", "a b c d e f g h i j"), ("s", "a b c d e f g h i k")]
    assert dedup.near_duplicates(items, threshold=0.6, num_perm=256) == [False, True]


@pytest.mark.parametrize(
    ("text", "size", "count"),
    [("a b c d", 3, 2), ("a b", 3, 1), ("", 3, 1), ("a, b. c", 1, 3)],
)
def test_shingles(text: str, size: int, count: int) -> None:
    assert len(dedup.shingles(text, size)) == count


# --- sampling -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("users", "cap", "kept_per_user"),
    [
        (["a"] * 5 + ["b"] * 2 + [None] * 4, 2, {"a": 2, "b": 2, None: 4}),
        (["a"] * 3, 5, {"a": 3}),
        (["a", "b", "a", "b", "a"], 1, {"a": 1, "b": 1}),
    ],
)
def test_cap_per_user(
    users: list[str | None], cap: int, kept_per_user: dict[str | None, int]
) -> None:
    keep = sampling.cap_per_user(users, cap, seed=0)
    assert Counter(u for u, k in zip(users, keep, strict=True) if k) == kept_per_user
    assert keep == sampling.cap_per_user(users, cap, seed=0)


def test_cap_per_user_depends_on_the_seed() -> None:
    users = ["a"] * 20
    picks = {tuple(sampling.cap_per_user(users, 3, seed)) for seed in range(5)}
    assert len(picks) > 1


@pytest.mark.parametrize(
    ("answers", "labels"),
    [
        (["b", "a", "b", "a"], ("a", "b")),
        (["billing ", "billing", "account", "account"], ("account", "billing")),
        (["a", "a", "a", "a"], None),  # one class: nothing to classify
        (["a", "b", "c"], None),  # too few rows per label
        ([f"answer {i}" for i in range(100)], None),  # free text
        (["x" * 65, "y", "x" * 65, "y"], None),  # too long to be a label
        (["a", "", "a", ""], None),
    ],
)
def test_detect_labels(answers: list[str], labels: tuple[str, ...] | None) -> None:
    assert sampling.detect_labels(answers, max_labels=20, max_chars=64) == labels


_LABELS = ["a", "a", "a", "a", "b", "b", "c"]


@pytest.mark.parametrize(
    ("mode", "expected_counts", "weights"),
    [
        ("none", {"a": 4, "b": 2, "c": 1}, None),
        ("undersample", {"a": 1, "b": 1, "c": 1}, None),
        ("oversample", {"a": 4, "b": 4, "c": 4}, None),
        ("weights", {"a": 4, "b": 2, "c": 1}, {"a": 0.583333, "b": 1.166667, "c": 2.333333}),
    ],
)
def test_balance(
    mode: str, expected_counts: dict[str, int], weights: dict[str, float] | None
) -> None:
    plan = sampling.balance(_LABELS, mode, seed=0)
    assert Counter(_LABELS[i] for i, _ in plan) == expected_counts
    assert [i for i, _ in plan] == sorted(i for i, _ in plan)
    if weights is None:
        assert all(w is None for _, w in plan)
    else:
        assert {_LABELS[i]: w for i, w in plan} == weights
    if mode == "oversample":
        assert Counter(i for i, _ in plan)[6] == 4  # the one "c" row, four times
        assert set(i for i, _ in plan if _LABELS[i] == "b") == {4, 5}


def test_distribution_is_sorted() -> None:
    assert list(sampling.distribution(["b", "a", "b"]).items()) == [("a", 1), ("b", 2)]


# --- split --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("groups", "fraction", "min_eval", "max_eval"),
    [
        ([f"u{i}" for i in range(100)], 0.1, 10, 10),
        ([f"u{i // 4}" for i in range(100)], 0.2, 20, 20),
        (["heavy"] * 50 + [f"u{i}" for i in range(50)], 0.1, 10, 10),  # heavy never fits
        (["a"] * 5 + ["b"] * 5, 0.1, 5, 5),  # nothing fits: the smallest group goes
        (["a"] * 10, 0.5, 0, 0),  # one group: all train
        ([f"u{i}" for i in range(10)], 0.0, 0, 0),
        ([f"u{i}" for i in range(3)], 0.99, 2, 2),  # train keeps a group
    ],
)
def test_split_groups(groups: list[str], fraction: float, min_eval: int, max_eval: int) -> None:
    flags = split_groups(groups, fraction, seed=0)
    assert min_eval <= sum(flags) <= max_eval
    side = {}
    for group, is_eval in zip(groups, flags, strict=True):
        assert side.setdefault(group, is_eval) == is_eval, f"{group} on both sides"
    assert flags == split_groups(groups, fraction, seed=0)


def test_split_is_stable_when_rows_are_added() -> None:
    groups = [f"u{i}" for i in range(200)]
    before = dict(zip(groups, split_groups(groups, 0.1, seed=0), strict=True))
    more = groups + [f"new{i}" for i in range(20)]
    after = dict(zip(more, split_groups(more, 0.1, seed=0), strict=True))
    moved = sum(before[g] != after[g] for g in groups)
    assert moved <= 5  # a few groups shift as the target grows, most stay where they were


def test_split_depends_on_the_seed() -> None:
    groups = [f"u{i}" for i in range(50)]
    assert split_groups(groups, 0.2, seed=0) != split_groups(groups, 0.2, seed=1)


# --- PII -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "scrubbed", "kinds"),
    [
        ("mail me: jane.doe+x@mail.example.co.uk.", "mail me: [EMAIL].", {"email": 1}),
        ("call +44 20 7946 0958 now", "call [PHONE] now", {"phone": 1}),
        ("call (415) 555-0132.", "call [PHONE].", {"phone": 1}),
        ("card 4111-1111-1111-1111 ok", "card [CARD] ok", {"card": 1}),
        ("card 4111111111111111", "card [CARD]", {"card": 1}),
        ("to DE89370400440532013000 pls", "to [IBAN] pls", {"iban": 1}),
        ("to GB82 WEST 1234 5698 7654 32", "to [IBAN]", {"iban": 1}),
        ("from 10.0.0.255.", "from [IP].", {"ip": 1}),
        ("from 2001:db8::8a2e:370:7334 today", "from [IP] today", {"ip": 1}),
        ("a@b.io and c@d.io", "[EMAIL] and [EMAIL]", {"email": 2}),
        # Look-alikes that must survive:
        ("order 4111111111111112", "order 4111111111111112", {}),  # fails Luhn
        ("order 123456789012", "order 123456789012", {}),  # a bare id, no separators
        ("on 2025-01-31 at 10:30:00", "on 2025-01-31 at 10:30:00", {}),
        ("version 1.2.3 and 999.1.1.1", "version 1.2.3 and 999.1.1.1", {}),
        ("DE00370400440532013000", "DE00370400440532013000", {}),  # bad IBAN checksum
        ("std::vector and ::", "std::vector and ::", {}),
        ("costs 1,234.56 EUR", "costs 1,234.56 EUR", {}),
    ],
)
def test_scrub(text: str, scrubbed: str, kinds: dict[str, int]) -> None:
    out, found = pii.scrub(text)
    assert out == scrubbed
    assert dict(found) == kinds


@pytest.mark.parametrize(
    ("digits", "valid"),
    [("4111111111111111", True), ("4111111111111112", False), ("79927398713", True)],
)
def test_luhn(digits: str, valid: bool) -> None:
    assert pii.luhn_valid(digits) is valid


# --- config ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"route": ""}, "route"),
        ({"eval_fraction": 1.0}, "eval_fraction"),
        ({"eval_fraction": -0.1}, "eval_fraction"),
        ({"disabled": frozenset({"route"})}, "unswitchable"),
        ({"disabled": frozenset({"typo"})}, "typo"),
        ({"min_chars": 5, "max_chars": 4}, "min_chars"),
        ({"near_dup_threshold": 0.0}, "near_dup_threshold"),
        ({"per_user_cap": 0}, "per_user_cap"),
        ({"balance": "smote"}, "smote"),
        ({"labels": ("a", "a")}, "labels"),
        ({"min_rows": 0}, "min_rows"),
        ({"num_perm": 8}, "num_perm"),
        (
            {"since": datetime(2025, 2, 1, tzinfo=UTC), "until": datetime(2025, 1, 1, tzinfo=UTC)},
            "before",
        ),
    ],
)
def test_config_rejects_bad_values(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        BuildConfig(**{"route": "r", **kwargs})


def test_default_out_dir_is_one_level_per_route() -> None:
    now = datetime(2025, 3, 1, 12, 30, 5, tzinfo=UTC)
    assert default_out_dir("team/triage v2", now) == Path(
        "datasets/team_triage_v2/20250301T123005Z"
    )
