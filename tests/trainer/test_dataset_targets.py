"""Consensus targets and gold annotations end to end: three demo teachers behind a real gateway."""

from __future__ import annotations

import json
import random
import shutil
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import openai
import pytest
from click.testing import CliRunner

from distill_demo.teacher.server import TeacherSettings
from distill_demo.teacher.task import SYSTEM_PROMPT, classify, generate_ticket
from gateway.app import create_app
from gateway.config import parse_config
from gateway.metrics import Metrics
from gateway.store.db import connect
from tests.fixtures.servers import ServerThread, free_port, gateway_config_dict, start_teacher
from trainer.dataset.cli import dataset

ROUTE = "support-triage"
N = 150
ERROR_RATE = 0.2
SECONDARY = ("teacher-b", "teacher-c")


@pytest.fixture(scope="module")
def three_teacher_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """N tickets through a gateway whose route has a primary and two secondary teachers.

    Each teacher is the demo teacher with error rate 0.2 and its own seed, so each is wrong on
    a different fifth of the tickets.
    """
    teachers = [start_teacher(TeacherSettings(error_rate=ERROR_RATE, seed=s)) for s in "abc"]
    store = tmp_path_factory.mktemp("targets") / "store.duckdb"
    data = gateway_config_dict(teachers[0].base_url, store)
    for name, server in zip(SECONDARY, teachers[1:], strict=True):
        data["upstreams"][name] = {"base_url": server.base_url, "timeout_s": 5}
    data["routes"][0]["secondary_teachers"] = [
        {"name": name, "upstream": name, "model": "gpt-4o"} for name in SECONDARY
    ]
    app = create_app(parse_config(data, environ={}), metrics=Metrics())
    gateway = ServerThread(app).start()
    try:
        client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="none", max_retries=0)
        rng = random.Random(3)
        for i in range(N):
            ticket = f"Case {i:04d}: {generate_ticket(rng)[0]}"
            client.chat.completions.create(
                model="gpt-4o",
                messages=[
                    {"role": "system", "content": SYSTEM_PROMPT},
                    {"role": "user", "content": ticket},
                ],
                user=f"user-{i % 25}",
            )
        # Second opinions run in the background: wait until all are logged.
        deadline = time.monotonic() + 30
        while True:
            app.state.gateway.writer.flush()
            with connect(store, read_only=True) as conn:
                row = conn.execute(
                    "SELECT count(*) FROM requests WHERE kind='secondary'"
                ).fetchone()
            if row and row[0] >= N * len(SECONDARY):
                break
            assert time.monotonic() < deadline, f"only {row} secondary rows logged"
            time.sleep(0.2)
    finally:
        gateway.stop()
        for teacher in teachers:
            teacher.thread.stop()
    yield store


def build(store: Path, out: Path, *args: str) -> dict[str, Any]:
    result = CliRunner().invoke(
        dataset,
        ["build", "--store", str(store), "--route", ROUTE, "--out", str(out), "--json", *args],
    )
    assert result.exit_code == 0, result.output
    return json.loads((out / "dataset.json").read_text())


def rows(out: Path) -> list[dict[str, Any]]:
    return [
        json.loads(line)
        for split in ("train.jsonl", "eval.jsonl")
        for line in (out / split).read_text().splitlines()
    ]


def wrong(out: Path) -> int:
    """Written answers that differ from the true label of their ticket."""
    return sum(
        r["messages"][-1]["content"] != classify(r["messages"][1]["content"]) for r in rows(out)
    )


@pytest.mark.slow
def test_vote_of_three_teachers_beats_each_teacher_alone(
    three_teacher_store: Path, tmp_path: Path
) -> None:
    primary = build(three_teacher_store, tmp_path / "primary")
    review = tmp_path / "review.jsonl"
    voted = build(
        three_teacher_store, tmp_path / "vote", "--target", "vote", "--review-out", str(review)
    )
    assert primary["rows_kept"] == voted["rows_kept"] == N

    # What each teacher alone would have taught, from the review file and the vote's agreement.
    target = voted["target"]
    assert target["mode"] == "vote" and target["pairs_with_secondary"] == N
    assert set(target["teachers"]) == {"teacher", *SECONDARY}
    reviewed = [json.loads(line) for line in review.read_text().splitlines()]
    assert len(reviewed) == target["pairs_with_disagreement"] > 0
    assert target["disagreement_share"] == pytest.approx(len(reviewed) / N)

    # Each teacher's own wrong answers over all N tickets (the review file holds every pair
    # where any teacher differs; elsewhere all three gave the same answer as the target).
    agreed_wrong = wrong(tmp_path / "vote") - sum(
        r["target"] != classify(r["messages"][1]["content"]) for r in reviewed
    )
    per_teacher = {
        name: agreed_wrong
        + sum(r["answers"][name] != classify(r["messages"][1]["content"]) for r in reviewed)
        for name in target["teachers"]
    }
    assert per_teacher["teacher"] == wrong(tmp_path / "primary")
    vote_wrong = wrong(tmp_path / "vote")
    print(f"wrong labels of {N}: each teacher {per_teacher}, vote {vote_wrong}")
    for name, n_wrong in per_teacher.items():
        assert 0.1 * N < n_wrong < 0.3 * N, (name, n_wrong)  # each really is ~20 % wrong
        assert vote_wrong < n_wrong / 2, (name, n_wrong, vote_wrong)
    # The card's agreement numbers are the same comparisons.
    for name, row in target["teachers"].items():
        differ = sum(r["answers"][name] != r["target"] for r in reviewed)
        assert row["disagreements_with_target"] == differ

    # Filtering: any disagreement drops exactly the reviewed pairs.
    strict = build(
        three_teacher_store, tmp_path / "strict", "--target", "vote", "--drop-disagreement"
    )
    assert strict["filters"]["disagreement"]["removed"] == len(reviewed)
    assert strict["rows_kept"] == N - len(reviewed)
    # Two of three agreeing is a disagreement share of 1/3: kept under 0.34, dropped under 0.3.
    loose = build(
        three_teacher_store, tmp_path / "loose", "--target", "vote", "--max-disagreement", "0.34"
    )
    assert loose["filters"]["disagreement"]["removed"] == sum(
        r["disagreement"] > 0.34 for r in reviewed
    )
    assert all("disagreement" in r for r in rows(tmp_path / "vote"))


@pytest.mark.slow
def test_judge_named_teacher_and_judge_endpoint(three_teacher_store: Path, tmp_path: Path) -> None:
    by_c = build(
        three_teacher_store, tmp_path / "c", "--target", "judge", "--judge-teacher", "teacher-c"
    )
    assert by_c["target"]["teachers"]["teacher-c"]["agreement_with_target"] == 1.0
    # A perfect judge (the demo teacher with no errors) behind its own server.
    judge = start_teacher(TeacherSettings(error_rate=0.0))
    try:
        judged = build(
            three_teacher_store,
            tmp_path / "judged",
            "--target",
            "judge",
            "--judge-base-url",
            judge.base_url,
            "--judge-model",
            "gpt-4o",
        )
    finally:
        judge.thread.stop()
    assert judged["target"]["mode"] == "judge"
    # The judge only fails where no teacher had the right label.
    assert wrong(tmp_path / "judged") < wrong(tmp_path / "c")
    assert wrong(tmp_path / "judged") <= 0.02 * N


def _annotate(store: Path, *rows: tuple[str, str, int, str | None]) -> None:
    t0 = datetime(2030, 1, 1, tzinfo=UTC)
    with duckdb.connect(str(store)) as conn:
        for i, (request_id, kind, seconds, answer) in enumerate(rows):
            conn.execute(
                "INSERT INTO annotations (id, ts, request_id, kind, answer, author) "
                "VALUES (?, ?, ?, ?, ?, 'tester')",
                [f"ann-{i}", t0 + timedelta(seconds=seconds), request_id, kind, answer],
            )


@pytest.mark.slow
def test_corrections_and_exclusions_change_the_build_exactly(
    three_teacher_store: Path, tmp_path: Path
) -> None:
    store = tmp_path / "annotated.duckdb"
    shutil.copyfile(three_teacher_store, store)
    with duckdb.connect(str(store), read_only=True) as conn:
        ids = [
            (rid, json.loads(req)["messages"][1]["content"])
            for rid, req in conn.execute(
                "SELECT id, request::VARCHAR FROM requests WHERE kind = 'primary' ORDER BY ts"
            ).fetchall()
        ]
    before = build(store, tmp_path / "before", "--target", "vote")
    (a, ticket_a), (b, _), (c, _), (d, ticket_d) = ids[:4]
    gold_a = "account" if classify(ticket_a) != "account" else "billing"
    _annotate(
        store,
        (a, "correction", 0, "technical"),
        (a, "correction", 1, gold_a),  # the later correction wins
        (b, "exclude", 0, None),
        (c, "exclude", 0, None),
        (c, "include", 1, None),  # undone
        (d, "correction", 0, "Gold answer."),
    )
    after = build(store, tmp_path / "after", "--target", "vote")
    assert after["filters"]["excluded"]["removed"] == 1
    assert after["rows_kept"] == before["rows_kept"] - 1
    assert after["annotations"] == {
        "rows": 6,
        "corrections": 2,
        "corrections_applied": 2,
        "exclusions": 1,
        "excluded": 1,
        "labels": 0,
    }
    by_ticket_before = {r["messages"][1]["content"]: r for r in rows(tmp_path / "before")}
    by_ticket_after = {r["messages"][1]["content"]: r for r in rows(tmp_path / "after")}
    assert by_ticket_after[ticket_a]["messages"][-1]["content"] == gold_a
    assert by_ticket_after[ticket_d]["messages"][-1]["content"] == "Gold answer."
    assert set(by_ticket_before) - set(by_ticket_after) == {ids[1][1]}
    # Everything else is exactly as before.
    changed = {t for t in by_ticket_after if by_ticket_after[t] != by_ticket_before[t]}
    assert changed <= {ticket_a, ticket_d}
    assert after["target"]["teachers"]["teacher"]["agreement_with_gold"] is not None


@pytest.mark.slow
def test_two_teachers_vote_and_drop_disagreement_beats_each_alone(
    three_teacher_store: Path, tmp_path: Path
) -> None:
    """With two teachers a vote ties on every disagreement (the primary wins), so the gain
    comes from dropping the pairs they disagree on: most single-teacher errors are there."""
    store = tmp_path / "two.duckdb"
    shutil.copyfile(three_teacher_store, store)
    with duckdb.connect(str(store)) as conn:
        conn.execute("DELETE FROM requests WHERE variant = 'teacher-c'")
    primary = build(store, tmp_path / "primary")
    by_b = build(store, tmp_path / "b", "--target", "judge", "--judge-teacher", "teacher-b")
    vote = build(store, tmp_path / "vote", "--target", "vote")
    agreed = build(store, tmp_path / "agreed", "--target", "vote", "--drop-disagreement")
    assert set(agreed["target"]["teachers"]) == {"teacher", "teacher-b"}
    assert vote["target"]["changed_from_primary"] == 0  # ties go to the primary
    assert wrong(tmp_path / "vote") == wrong(tmp_path / "primary")
    kept = agreed["rows_kept"]
    assert kept == N - vote["target"]["pairs_with_disagreement"]
    rate = wrong(tmp_path / "agreed") / kept
    print(
        f"two teachers: primary {wrong(tmp_path / 'primary')}/{primary['rows_kept']}, "
        f"b {wrong(tmp_path / 'b')}/{by_b['rows_kept']}, agreed {wrong(tmp_path / 'agreed')}/{kept}"
    )
    for alone in ("primary", "b"):
        assert wrong(tmp_path / "agreed") < wrong(tmp_path / alone)
        assert rate < wrong(tmp_path / alone) / N / 2


@pytest.mark.slow
def test_unreachable_judge_falls_back_to_the_named_teacher_and_says_so(
    three_teacher_store: Path, tmp_path: Path
) -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    out = tmp_path / "judged"
    result = CliRunner().invoke(
        dataset,
        [
            "build",
            "--store",
            str(three_teacher_store),
            "--route",
            ROUTE,
            "--out",
            str(out),
            "--target",
            "judge",
            "--judge-base-url",
            url,
            "--judge-model",
            "gpt-4o",
            "--judge-teacher",
            "teacher-b",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "failed on 5 of 5 calls" in result.output and "teacher 'teacher-b'" in result.output
    card = json.loads((out / "dataset.json").read_text())
    assert card["judge"]["failures"] == card["judge"]["calls"] == 5  # then it stops asking
    assert card["judge"]["asked"] == card["target"]["pairs_with_disagreement"] > 5
    assert card["target"]["teachers"]["teacher-b"]["agreement_with_target"] == 1.0
