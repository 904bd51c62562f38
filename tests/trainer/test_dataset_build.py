"""`distill dataset build` end to end on a real DuckDB store and on Parquet segments."""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest
from click.testing import CliRunner, Result

from distill_demo.teacher.task import JSON_SYSTEM_PROMPT, SYSTEM_PROMPT, classify, generate_ticket
from gateway.store.schema import migrate
from trainer.dataset.cli import dataset

ROUTE = "support-triage"
CASE = re.compile(r"Case [0-9a-f]{10}")
T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
COLUMNS = (
    "id",
    "ts",
    "route",
    "variant",
    "kind",
    "endpoint",
    "model",
    "request",
    "response",
    "status",
    "error",
    "stream",
    "finish_reason",
    "user",
    "session",
)


@dataclass
class Store:
    """The rows written, plus what the build should make of them."""

    path: Path
    rows: list[dict[str, Any]] = field(default_factory=list)
    feedback: list[tuple[str, float]] = field(default_factory=list)
    expected: list[list[dict[str, str]]] = field(default_factory=list)  # kept rows' messages
    heavy: str = "heavy-user"

    def add(
        self,
        prompt: str,
        answer: str,
        *,
        keep: bool = False,
        written: list[dict[str, str]] | None = None,
        **overrides: Any,
    ) -> str:
        """Log one exchange; `keep` marks it as one the build must write (as `written`)."""
        n = len(self.rows)
        row_id = f"req-{n:04d}"
        endpoint = overrides.pop("endpoint", "chat")
        system = overrides.pop("system", SYSTEM_PROMPT)
        response_format = overrides.pop("response_format", None)
        if endpoint == "chat":
            messages = [{"role": "system", "content": system}, {"role": "user", "content": prompt}]
            request: dict[str, Any] = {"model": ROUTE, "messages": messages}
            if response_format:
                request["response_format"] = response_format
            choice: dict[str, Any] = {
                "index": 0,
                "message": {"role": "assistant", "content": answer},
                "finish_reason": "stop",
            }
        else:
            messages = [{"role": "user", "content": prompt}]
            request = {"model": ROUTE, "prompt": prompt}
            choice = {"index": 0, "text": answer, "finish_reason": "stop"}
        row = {
            "id": row_id,
            "ts": T0 + timedelta(minutes=n),
            "route": ROUTE,
            "variant": "teacher",
            "kind": "primary",
            "endpoint": endpoint,
            "model": ROUTE,
            "request": json.dumps(request),
            "response": json.dumps({"id": f"cmpl-{n}", "object": "x", "choices": [choice]}),
            "status": 200,
            "error": None,
            "stream": False,
            "finish_reason": "stop",
            "user": f"user-{n}",
            "session": None,
        }
        row.update(overrides)
        self.rows.append(row)
        if keep:
            final = [*messages, {"role": "assistant", "content": answer}]
            self.expected.append(written or final)
        return row_id

    def write(self) -> Path:
        with duckdb.connect(str(self.path)) as conn:
            migrate(conn)
            names = ", ".join(f'"{c}"' for c in COLUMNS)
            conn.executemany(
                f"INSERT INTO requests ({names}) VALUES ({', '.join('?' for _ in COLUMNS)})",
                [[row[c] for c in COLUMNS] for row in self.rows],
            )
            for i, (rid, score) in enumerate(self.feedback):
                conn.execute(
                    "INSERT INTO feedback (id, ts, request_id, score) VALUES (?, ?, ?, ?)",
                    [f"fb-{i}", T0, rid, score],
                )
        return self.path


def _ticket(rng: random.Random, n: int) -> str:
    # The case reference makes every ticket distinct, so only the planted duplicates match.
    text, _ = generate_ticket(rng)
    return f"Case {rng.getrandbits(40):010x}: {text}"


# What the main store plants, per filter; the card must report exactly these.
EXPECTED_REMOVED = {
    "route": 3,
    "shadow": 2,
    "data_tool": 0,
    "non_teacher": 2,
    "failed": 3,
    "truncated": 1,
    "corrupt": 3,
    "excluded": 0,
    "refusal": 2,
    "tool_use": 0,
    "invalid_json": 2,
    "unknown_label": 0,
    "length_bounds": 2,
    "negative_feedback": 2,
    "disagreement": 0,
    "exact_duplicate": 3,
    "near_duplicate": 2,
    "user_cap": 0,
}
KEPT = 40 + 12 + 2 + 3 + 1  # base, heavy user, completions, PII, positive feedback
PII_EMAIL = "Write to jane.doe@example.com about it."
PII_PHONE_CARD = "Call +1 415-555-0132, card 4111 1111 1111 1111 was charged."
PII_IBAN_IP = "Refund to DE89 3704 0044 0532 0130 00, I logged in from 192.168.10.77."


def make_store(path: Path) -> Store:
    """A realistic log: good traffic plus every kind of row the build must drop."""
    rng = random.Random(7)
    store = Store(path)
    base = []
    for i in range(40):
        ticket = _ticket(rng, i)
        # Some users only send a session header, some neither: all three split keys occur.
        who: dict[str, Any] = {"user": f"user-{i % 10}"}
        if i % 10 == 8:
            who = {"user": None, "session": f"sess-{i % 3}"}
        elif i % 10 == 9:
            who = {"user": None}
        store.add(ticket, classify(ticket), keep=True, **who)
        base.append(ticket)
    for _ in range(12):
        ticket = _ticket(rng, 0)
        store.add(ticket, classify(ticket), keep=True, user=store.heavy)
    for _ in range(2):
        ticket = _ticket(rng, 0)
        store.add(ticket, classify(ticket), keep=True, endpoint="completions")
    # PII: prompts that must come out scrubbed, answers that stay labels.
    for extra, scrubbed in (
        (PII_EMAIL, "Write to [EMAIL] about it."),
        (PII_PHONE_CARD, "Call [PHONE], card [CARD] was charged."),
        (PII_IBAN_IP, "Refund to [IBAN], I logged in from [IP]."),
    ):
        ticket = f"{_ticket(rng, 0)} {extra}"
        label = classify(ticket)
        written = [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": ticket.replace(extra, scrubbed)},
            {"role": "assistant", "content": label},
        ]
        store.add(ticket, label, keep=True, written=written)
    good = store.add(*_labelled(rng), keep=True)
    store.feedback.append((good, 1.0))

    # Everything below must be dropped, each by its own filter.
    for _ in range(3):
        store.add(*_labelled(rng), route="faq-bot")
    for _ in range(2):
        store.add(*_labelled(rng), kind="shadow", variant="student-a")
    for _ in range(2):
        store.add(*_labelled(rng), variant="student-a")
    store.add(*_labelled(rng), status=502, error="upstream returned 502")
    store.add(*_labelled(rng), status=200, error="client disconnected mid-stream")
    store.add(*_labelled(rng), status=None)
    store.add(*_labelled(rng), finish_reason="length")
    store.add(_ticket(rng, 0), "I'm sorry, but I can't help with that request.")
    store.add(_ticket(rng, 0), "As an AI language model I cannot see your invoice.")
    for _ in range(2):
        store.add(
            _ticket(rng, 0),
            "category: billing",
            system=JSON_SYSTEM_PROMPT,
            response_format={"type": "json_object"},
        )
    store.add(_ticket(rng, 0), "")
    store.add(_ticket(rng, 0) + " " + "x" * 40_000, "billing")
    for score in (0.0, -1.0):
        bad = store.add(*_labelled(rng))
        store.feedback.append((bad, score))
    for i in (0, 1, 2):  # case, spacing and punctuation differ: still the same prompt
        loud = "  " + base[i].upper().replace(":", " -").replace(".", "!") + " "
        store.add(loud, classify(base[i]), user="user-dup")
    for i in (3, 4):  # one more word in a long prompt: a near duplicate
        store.add(base[i] + " Please.", classify(base[i]), user="user-dup")
    _add_corrupt(store)
    return store


def _labelled(rng: random.Random) -> tuple[str, str]:
    ticket = _ticket(rng, 0)
    return ticket, classify(ticket)


def _add_corrupt(store: Store) -> None:
    store.add("ignored", "billing")
    store.rows[-1]["request"] = json.dumps({"model": ROUTE})  # no messages
    store.add("ignored", "billing")
    store.rows[-1]["response"] = json.dumps({"choices": []})
    store.add("ignored", "billing")
    store.rows[-1]["request"] = json.dumps({"messages": [{"role": "user", "content": None}]})


@pytest.fixture
def store(tmp_path: Path) -> Store:
    made = make_store(tmp_path / "distill.duckdb")
    made.write()
    return made


def run_build(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(dataset, ["build", *args], env=env, catch_exceptions=False)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_build_counts_every_filter_and_writes_exactly_the_kept_rows(
    store: Store, tmp_path: Path
) -> None:
    out = tmp_path / "ds"
    # Placeholders, so the expected prompts can be written out (the default writes fakes:
    # tests/trainer/test_dataset_pii.py).
    args = ("--store", str(store.path), "--route", ROUTE, "--out", str(out))
    result = run_build(*args, "--pii-answers", "replace")
    assert result.exit_code == 0, result.output
    card = json.loads((out / "dataset.json").read_text())

    assert {k: v["removed"] for k, v in card["filters"].items()} == EXPECTED_REMOVED
    assert card["rows_in"] == len(store.rows)
    assert card["rows_kept"] == KEPT == len(store.expected)
    assert card["rows_in"] - sum(EXPECTED_REMOVED.values()) == KEPT
    train, held = read_jsonl(out / "train.jsonl"), read_jsonl(out / "eval.jsonl")
    assert card["files"]["train.jsonl"]["rows"] == len(train)
    assert card["files"]["eval.jsonl"]["rows"] == len(held)
    assert len(train) + len(held) == KEPT
    # The written conversations are exactly the kept rows (PII scrubbed), each once.
    written = sorted(json.dumps(r["messages"]) for r in train + held)
    assert written == sorted(json.dumps(m) for m in store.expected)
    assert all(set(r) == {"messages"} for r in train + held)
    assert card["pii"]["replaced"] == {"email": 1, "iban": 1, "card": 1, "ip": 1, "phone": 1}
    assert "jane.doe" not in (out / "train.jsonl").read_text() + (out / "eval.jsonl").read_text()

    assert card["labels"] == ["account", "billing", "technical"]
    assert card["labels_source"] == "detected"
    answers = [r["messages"][-1]["content"] for r in train]
    assert card["label_distribution"]["train"] == {
        label: answers.count(label) for label in card["labels"]
    }
    assert card["split"]["groups_on_both_sides"] == 0
    assert 0.05 <= len(held) / KEPT <= 0.15
    assert card["seed"] == 0 and card["route"] == ROUTE
    assert "$route" in card["source"]["query"] and card["source"]["params"]["route"] == ROUTE
    assert len(card["content_hash"]) == 64
    assert sorted(p.name for p in out.iterdir()) == ["dataset.json", "eval.jsonl", "train.jsonl"]


def test_split_puts_no_user_session_or_conversation_on_both_sides(
    store: Store, tmp_path: Path
) -> None:
    result = run_build(
        "--store", str(store.path), "--route", ROUTE, "--out", str(tmp_path / "ds"),
        "--eval-fraction", "0.3", "--seed", "3",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    # Every ticket carries a unique case reference; map it to the row's split group.
    group_of = {}
    for row in store.rows:
        match = CASE.search(row["request"])
        if match:  # the first row with a case is the kept one; later ones are duplicates
            group = row["user"] or row["session"] or match.group(0)
            group_of.setdefault(match.group(0), group)
    sides: dict[str, set[str]] = {}
    for side in ("train", "eval"):
        for record in read_jsonl(tmp_path / "ds" / f"{side}.jsonl"):
            case = CASE.search(record["messages"][-2]["content"])
            assert case is not None
            sides.setdefault(group_of[case.group(0)], set()).add(side)
    assert sum(1 for s in sides.values() if s == {"eval"}) >= 2
    assert all(len(s) == 1 for s in sides.values()), sides
    assert {"sess-0", "sess-1", "sess-2"} <= set(sides)


def test_same_inputs_same_files_and_hash(store: Store, tmp_path: Path) -> None:
    cards = []
    for name in ("a", "b"):
        assert (
            run_build(
                "--store", str(store.path), "--route", ROUTE, "--out", str(tmp_path / name)
            ).exit_code
            == 0
        )
        cards.append(json.loads((tmp_path / name / "dataset.json").read_text()))
    assert cards[0]["content_hash"] == cards[1]["content_hash"]
    assert (tmp_path / "a" / "train.jsonl").read_bytes() == (
        tmp_path / "b" / "train.jsonl"
    ).read_bytes()
    other = tmp_path / "c"
    assert (
        run_build(
            "--store", str(store.path), "--route", ROUTE, "--out", str(other), "--seed", "1"
        ).exit_code
        == 0
    )
    assert (
        json.loads((other / "dataset.json").read_text())["content_hash"] != cards[0]["content_hash"]
    )


def test_parquet_segments_give_the_same_dataset(store: Store, tmp_path: Path) -> None:
    segments = tmp_path / "segments"
    (segments / "requests").mkdir(parents=True)
    (segments / "feedback").mkdir()
    with duckdb.connect(str(store.path), read_only=True) as conn:
        # Two request segments, as two gateway replicas would write them.
        conn.execute(
            f"COPY (SELECT * FROM requests WHERE id < 'req-0050') TO "
            f"'{segments}/requests/part-0.parquet' (FORMAT parquet)"
        )
        conn.execute(
            f"COPY (SELECT * FROM requests WHERE id >= 'req-0050') TO "
            f"'{segments}/requests/part-1.parquet' (FORMAT parquet)"
        )
        conn.execute(f"COPY feedback TO '{segments}/feedback/part-0.parquet' (FORMAT parquet)")
    outs = {}
    for name, source in (("file", store.path), ("dir", segments)):
        outs[name] = tmp_path / f"out-{name}"
        result = run_build("--store", str(source), "--route", ROUTE, "--out", str(outs[name]))
        assert result.exit_code == 0, result.output
    cards = {k: json.loads((v / "dataset.json").read_text()) for k, v in outs.items()}
    assert cards["dir"]["filters"] == cards["file"]["filters"]
    assert cards["dir"]["content_hash"] == cards["file"]["content_hash"]
    # Without feedback segments nothing is dropped for feedback, and the build still works.
    for part in (segments / "feedback").iterdir():
        part.unlink()
    result = run_build(
        "--store", str(segments), "--route", ROUTE, "--out", str(tmp_path / "nofb"), "--json"
    )
    assert result.exit_code == 0, result.output
    card = json.loads(result.stdout)
    assert card["filters"]["negative_feedback"]["removed"] == 0
    assert card["rows_kept"] == KEPT + EXPECTED_REMOVED["negative_feedback"]


def test_switching_filters_off_keeps_those_rows(store: Store, tmp_path: Path) -> None:
    out = tmp_path / "ds"
    result = run_build(
        "--store", str(store.path), "--route", ROUTE, "--out", str(out),
        "--no-refusal", "--no-exact-duplicate", "--no-near-duplicate", "--no-pii",
        "--no-shadow", "--per-user-cap", "5", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    card = json.loads(result.stdout)
    assert card["out"] == str(out)
    removed = {k: v["removed"] for k, v in card["filters"].items()}
    assert card["filters"]["refusal"] == {"enabled": False, "removed": 0}
    assert removed["exact_duplicate"] == removed["near_duplicate"] == 0
    # Shadow rows are student answers: with the shadow filter off, non_teacher catches them.
    assert removed["shadow"] == 0 and removed["non_teacher"] == 4
    assert removed["user_cap"] == 12 - 5
    assert card["rows_kept"] == KEPT + 2 + 3 + 2 - 7
    assert card["pii"]["replaced"]["email"] == 0
    assert (
        "jane.doe@example.com"
        in (out / "train.jsonl").read_text() + (out / "eval.jsonl").read_text()
    )


@pytest.mark.parametrize("mode", ["undersample", "oversample", "weights"])
def test_balance_modes_change_train_only(store: Store, tmp_path: Path, mode: str) -> None:
    out = tmp_path / mode
    result = run_build(
        "--store", str(store.path), "--route", ROUTE, "--out", str(out), "--balance", mode
    )
    assert result.exit_code == 0, result.output
    card = json.loads((out / "dataset.json").read_text())
    dist = card["label_distribution"]
    before = dist["train_before_balance"]
    train = read_jsonl(out / "train.jsonl")
    assert card["split"]["eval"] == len(read_jsonl(out / "eval.jsonl"))
    if mode == "undersample":
        assert set(dist["train"].values()) == {min(before.values())}
    elif mode == "oversample":
        assert set(dist["train"].values()) == {max(before.values())}
    else:
        assert dist["train"] == before
        weights = [r["weight"] for r in train]
        assert sum(weights) == pytest.approx(len(train), rel=1e-4)
        for record in train:
            label = record["messages"][-1]["content"]
            assert record["weight"] == pytest.approx(len(train) / (3 * before[label]), rel=1e-4)
    assert len(train) == sum(dist["train"].values())


def test_given_labels_drop_other_answers(store: Store, tmp_path: Path) -> None:
    out = tmp_path / "ds"
    result = run_build(
        "--store", str(store.path), "--route", ROUTE, "--out", str(out),
        "--labels", "billing,technical", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    card = json.loads(result.stdout)
    accounts = sum(1 for m in store.expected if m[-1]["content"] == "account")
    # Later filters (duplicates, feedback, length) no longer see the account rows they held.
    assert card["filters"]["unknown_label"]["enabled"] is True
    assert card["filters"]["unknown_label"]["removed"] >= accounts
    assert card["rows_kept"] == KEPT - accounts
    assert card["rows_in"] - sum(f["removed"] for f in card["filters"].values()) == KEPT - accounts
    written = read_jsonl(out / "train.jsonl") + read_jsonl(out / "eval.jsonl")
    assert {r["messages"][-1]["content"] for r in written} == {"billing", "technical"}
    assert card["labels"] == ["billing", "technical"] and card["labels_source"] == "given"


def test_time_window(store: Store, tmp_path: Path) -> None:
    out = tmp_path / "ds"
    until = (T0 + timedelta(minutes=30)).isoformat()
    result = run_build(
        "--store", str(store.path), "--route", ROUTE, "--out", str(out), "--until", until,
        "--since", T0.isoformat(), "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    card = json.loads(result.stdout)
    assert card["rows_in"] == 30 and card["rows_kept"] == 30
    assert card["source"]["params"]["until"] == until


def _no_leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir()) if parent.exists() else []


def test_missing_store_is_a_clear_error(tmp_path: Path) -> None:
    result = run_build(
        "--store", str(tmp_path / "nope.duckdb"), "--route", ROUTE, "--out", str(tmp_path / "o")
    )
    assert result.exit_code != 0
    assert "does not exist" in result.output and "--store" in result.output
    assert not (tmp_path / "o").exists()


def test_unknown_route_lists_the_routes_that_have_rows(store: Store, tmp_path: Path) -> None:
    result = run_build("--store", str(store.path), "--route", "nope", "--out", str(tmp_path / "o"))
    assert result.exit_code != 0
    assert "no rows for route 'nope'" in result.output
    assert f"{ROUTE} ({len(store.rows) - 3})" in result.output and "faq-bot (3)" in result.output
    assert not (tmp_path / "o").exists()


def test_too_few_rows_shows_the_filter_counts_and_writes_nothing(
    store: Store, tmp_path: Path
) -> None:
    parent = tmp_path / "datasets"
    parent.mkdir()
    result = run_build(
        "--store",
        str(store.path),
        "--route",
        ROUTE,
        "--out",
        str(parent / "o"),
        "--min-rows",
        "500",
    )
    assert result.exit_code != 0
    assert "only" in result.output and "--min-rows" in result.output
    assert "refusal" in result.output and "-2" in result.output
    assert _no_leftovers(parent) == []


def test_existing_output_is_not_overwritten(store: Store, tmp_path: Path) -> None:
    out = tmp_path / "ds"
    out.mkdir()
    (out / "train.jsonl").write_text("precious\n")
    result = run_build("--store", str(store.path), "--route", ROUTE, "--out", str(out))
    assert result.exit_code != 0 and "already exists" in result.output
    assert (out / "train.jsonl").read_text() == "precious\n"


def test_bad_option_values_are_usage_errors(store: Store, tmp_path: Path) -> None:
    for args, needle in (
        (["--eval-fraction", "1.5"], "eval_fraction"),
        (["--since", "yesterday"], "ISO"),
        (["--per-user-cap", "0"], "per_user_cap"),
    ):
        result = run_build(
            "--store", str(store.path), "--route", ROUTE, "--out", str(tmp_path / "o"), *args
        )
        assert result.exit_code != 0, args
        assert needle in result.output, result.output
        assert not (tmp_path / "o").exists()


@pytest.mark.slow
def test_cli_subprocess_with_env_store_and_a_writer_holding_the_lock(
    store: Store, tmp_path: Path
) -> None:
    # Another process holds the file for a moment, as the gateway's writer does per batch.
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('held', flush=True);"
         " time.sleep(1.5); c.close()", str(store.path)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    started = time.monotonic()
    out = tmp_path / "ds"
    env = {**os.environ, "DISTILL_STORE": str(store.path)}
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "distill"), "dataset", "build", "--route", ROUTE,
         "--out", str(out), "--json"],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    holder.wait(timeout=10)
    assert proc.returncode == 0, proc.stderr
    assert time.monotonic() - started >= 1.0  # it waited for the lock instead of failing
    card = json.loads(proc.stdout)
    assert card["rows_kept"] == KEPT
    assert "skipped corrupt row" in proc.stderr


def test_balancing_free_text_answers_is_an_error(tmp_path: Path) -> None:
    free = Store(tmp_path / "free.duckdb")
    rng = random.Random(1)
    for _ in range(30):
        ticket = _ticket(rng, 0)
        free.add(ticket, f"Thanks for writing. {ticket} We will look into it.")
    free.write()
    result = run_build(
        "--store",
        str(free.path),
        "--route",
        ROUTE,
        "--out",
        str(tmp_path / "o"),
        "--balance",
        "weights",
    )
    assert result.exit_code != 0
    assert "needs label answers" in result.output and "--labels" in result.output
    assert not (tmp_path / "o").exists()
    result = run_build(
        "--store", str(free.path), "--route", ROUTE, "--out", str(tmp_path / "o"), "--json"
    )
    assert result.exit_code == 0, result.output
    card = json.loads(result.stdout)
    assert card["labels"] is None and card["label_distribution"] is None
