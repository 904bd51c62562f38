"""The console's SQL against real DuckDB files and Parquet segments (filters, pairs, counts)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest

from gateway.store.db import connect
from gateway.ui import queries
from gateway.ui.annotation import Annotation, RefusedAnnotationError, UnknownRequestError, add
from gateway.ui.source import open_store

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def row(
    rid: str,
    *,
    minutes: int,
    route: str | None = "triage",
    variant: str = "teacher",
    kind: str = "primary",
    pair: str | None = None,
    status: int = 200,
    error: str | None = None,
    user: str = "u1",
    prompt: str = "my printer is broken",
    answer: str | None = "technical",
) -> dict[str, Any]:
    request = {"model": "gpt-4o", "messages": [{"role": "user", "content": prompt}]}
    response = (
        {"choices": [{"message": {"role": "assistant", "content": answer}}]} if answer else None
    )
    return {
        "id": rid,
        "ts": T0 + timedelta(minutes=minutes),
        "route": route,
        "variant": variant,
        "kind": kind,
        "pair_id": pair or rid,
        "endpoint": "chat",
        "request": json.dumps(request),
        "response": json.dumps(response) if response else None,
        "status": status,
        "error": error,
        "stream": False,
        "latency_ms": 10.0 + minutes,
        "user": user,
    }


ROWS = [
    row("r1", minutes=1),
    row("r2", minutes=2, variant="student-x", kind="shadow", pair="r1", answer="billing"),
    row("r3", minutes=3, status=502, error="upstream refused", user="u2", answer=None),
    row("r4", minutes=4, route="other", prompt="<b>refund</b> please", answer="billing"),
    row("r5", minutes=5, user="u3", prompt="reset my password", answer="account"),
    row("r6", minutes=6, variant="student-x", kind="shadow", pair="r5", answer="Account "),
]


def insert(conn: duckdb.DuckDBPyConnection, rows: list[dict[str, Any]]) -> None:
    for r in rows:
        cols = ", ".join(f'"{c}"' for c in r)
        conn.execute(
            f"INSERT INTO requests ({cols}) VALUES ({', '.join('?' * len(r))})", list(r.values())
        )


def make_store(path: Path) -> Path:
    with connect(path) as conn:
        insert(conn, ROWS)
        conn.execute(
            "INSERT INTO feedback (id, ts, request_id, score) VALUES ('f1', ?, 'r4', 0)", [T0]
        )
    add(path, Annotation(request_id="r5", kind="exclude", author="ann"))
    return path


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Read-only tests share one store: building it costs more than their queries."""
    return make_store(tmp_path_factory.mktemp("ui") / "store.duckdb")


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return make_store(tmp_path / "store.duckdb")


@pytest.mark.parametrize(
    ("f", "expected"),
    [
        (queries.TrafficFilter(), ["r6", "r5", "r4", "r3", "r2", "r1"]),
        (queries.TrafficFilter(route="other"), ["r4"]),
        (queries.TrafficFilter(variant="student-x"), ["r6", "r2"]),
        (queries.TrafficFilter(kind="primary", route="triage"), ["r5", "r3", "r1"]),
        (queries.TrafficFilter(status="error"), ["r3"]),
        (queries.TrafficFilter(status="502"), ["r3"]),
        (queries.TrafficFilter(status="ok", kind="primary"), ["r5", "r4", "r1"]),
        (queries.TrafficFilter(user="u3"), ["r5"]),
        (queries.TrafficFilter(text="REFUND"), ["r4"]),
        (queries.TrafficFilter(text="billing"), ["r4", "r2"]),
        (queries.TrafficFilter(text="_"), []),  # LIKE wildcards are searched as typed
        (queries.TrafficFilter(text="assistant"), []),  # roles and keys are not message text
        (queries.TrafficFilter(text="content"), []),
        (queries.TrafficFilter(text="gpt-4o"), []),  # nor is the model
        (queries.TrafficFilter(text="%"), []),
        (queries.TrafficFilter(feedback="negative"), ["r4"]),
        (queries.TrafficFilter(feedback="positive"), []),
        (queries.TrafficFilter(annotated="exclude"), ["r5"]),
        (queries.TrafficFilter(annotated="correction"), []),
        (queries.TrafficFilter(paired=True, kind="primary"), ["r5", "r1"]),
        (queries.TrafficFilter(since=T0 + timedelta(minutes=3)), ["r6", "r5", "r4", "r3"]),
        (queries.TrafficFilter(until=T0 + timedelta(minutes=3)), ["r2", "r1"]),
        (queries.TrafficFilter(limit=2, offset=1), ["r5", "r4"]),
    ],
)
def test_traffic_filters_and_pages(
    shared: Path, f: queries.TrafficFilter, expected: list[str]
) -> None:
    with open_store(shared) as conn:
        page = queries.traffic_page(conn, f)
    assert [r["id"] for r in page["rows"]] == expected
    if f.limit == 50:
        assert page["total"] == len(expected)


def test_traffic_row_has_excerpts_feedback_and_annotations(shared: Path) -> None:
    with open_store(shared) as conn:
        rows = {r["id"]: r for r in queries.traffic_page(conn, queries.TrafficFilter())["rows"]}
    assert rows["r4"]["prompt"] == "<b>refund</b> please"
    assert rows["r4"]["answer"] == "billing"
    assert rows["r4"]["feedback"] == 0
    assert rows["r5"]["annotations"] == "exclude"
    assert rows["r1"]["annotations"] is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kind": "teacher"}, "kind='teacher'"),
        ({"status": "bad"}, "status='bad'"),
        ({"status": "²"}, "status='²'"),  # a digit to str.isdigit, not to int()
        ({"status": "99999999999"}, "status='99999999999'"),
        ({"feedback": "meh"}, "feedback='meh'"),
        ({"limit": 0}, "limit=0"),
        ({"limit": 501}, "limit=501"),
        ({"offset": -1}, "offset=-1"),
    ],
)
def test_bad_filters_name_the_value(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        queries.TrafficFilter(**kwargs)


def test_exchange_with_pair_feedback_and_annotations(shared: Path) -> None:
    with open_store(shared) as conn:
        item = queries.exchange(conn, "r1")
        missing = queries.exchange(conn, "nope")
    assert missing is None
    assert item is not None
    assert item["prompt"] == "my printer is broken"
    assert [p["id"] for p in item["pair"]] == ["r2"]
    assert item["pair"][0]["answer"] == "billing"
    assert item["annotations"] == [] and item["feedback"] == []


def test_pairs_worst_first_with_agreement_rate(shared: Path) -> None:
    with open_store(shared) as conn:
        worst = queries.pairs_page(conn, queries.PairFilter(student="student-x"))
        newest = queries.pairs_page(conn, queries.PairFilter(order="newest"))
        none = queries.pairs_page(conn, queries.PairFilter(student="nobody"))
    assert [(r["primary_id"], r["shadow_id"]) for r in worst["rows"]] == [
        ("r1", "r2"),
        ("r5", "r6"),
    ]
    assert worst["rows"][0]["disagreement"] == 1.0  # no word in common
    assert worst["rows"][1]["disagreement"] == 0.0  # case and spaces do not count
    assert worst["mode"] == "normalized"
    assert worst["agreement_rate"] == pytest.approx(0.5)
    assert [r["shadow_id"] for r in newest["rows"]] == ["r6", "r2"]
    assert none["total"] == 0 and none["rows"] == []


def test_annotation_counts_latest_word_holds(store: Path) -> None:
    with open_store(store) as conn:
        assert queries.annotation_counts(conn, "triage") == {"exclude": 1}
    add(store, Annotation(request_id="r5", kind="include", author="ann", note="fine after all"))
    add(store, Annotation(request_id="r1", kind="correction", author="ann", answer="hardware"))
    add(store, Annotation(request_id="r4", kind="correction", author="ann", answer="refund"))
    with open_store(store) as conn:
        assert queries.annotation_counts(conn, "triage") == {"correction": 1}
        assert queries.annotation_counts(conn, "other") == {"correction": 1}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kind": "delete"}, "kind='delete'"),
        ({"kind": "correction"}, "needs the gold answer"),
        ({"kind": "correction", "answer": "   "}, "needs the gold answer"),
        ({"kind": "label"}, "needs the label"),
        ({"kind": "exclude", "answer": "x"}, "only for kind correction"),
        ({"kind": "exclude", "author": "<script>"}, "author="),
        ({"kind": "exclude", "request_id": " "}, "request_id is empty"),
    ],
)
def test_annotation_validation(kwargs: dict[str, Any], message: str) -> None:
    values = {"request_id": "r1", "author": "ann", **kwargs}
    with pytest.raises(ValueError, match=message):
        Annotation(**values)


@pytest.mark.parametrize(
    ("request_id", "answer", "message"),
    [
        ("r2", "billing, really", "r2 is a shadow row .* correct its primary exchange r1"),
        ("r6", "account", "shadow row"),
        ("r1", "technical", "logged answer unchanged"),
        ("r1", "  technical\n", "logged answer unchanged"),
    ],
)
def test_corrections_that_would_mean_nothing_are_refused(
    store: Path, request_id: str, answer: str, message: str
) -> None:
    with pytest.raises(RefusedAnnotationError, match=message):
        add(store, Annotation(request_id=request_id, kind="correction", author="a", answer=answer))
    with connect(store) as conn:
        assert conn.execute(
            "SELECT count(*) FROM annotations WHERE kind = 'correction'"
        ).fetchone() == (0,)


def test_correction_of_a_student_answered_row_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "store.duckdb"
    with connect(path) as conn:
        insert(conn, [row("c1", minutes=1, variant="student-x", answer="billing")])
    with pytest.raises(RefusedAnnotationError, match="answered by 'student-x', not the teacher"):
        add(path, Annotation(request_id="c1", kind="correction", author="a", answer="account"))
    add(path, Annotation(request_id="c1", kind="label", author="a", label="wrong"))  # allowed


def test_annotation_for_unknown_exchange_is_refused(store: Path) -> None:
    with pytest.raises(UnknownRequestError, match="no logged exchange"):
        add(store, Annotation(request_id="ghost", kind="exclude", author="ann"))
    with connect(store) as conn:
        row = conn.execute("SELECT count(*) FROM annotations WHERE request_id = 'ghost'").fetchone()
    assert row == (0,)


def test_parquet_segments_with_control_file(tmp_path: Path) -> None:
    seg = tmp_path / "segments"
    (seg / "requests").mkdir(parents=True)
    with connect(tmp_path / "scratch.duckdb") as conn:
        insert(conn, ROWS)
        conn.execute(f"COPY requests TO '{seg / 'requests' / 'part-1.parquet'}' (FORMAT parquet)")
    add(seg, Annotation(request_id="r3", kind="label", author="ann", label="outage"))
    assert (seg / "control.duckdb").exists()
    with open_store(seg) as conn:
        page = queries.traffic_page(conn, queries.TrafficFilter(annotated="label"))
        pairs = queries.pairs_page(conn, queries.PairFilter())
    assert [r["id"] for r in page["rows"]] == ["r3"]
    assert pairs["total"] == 2


def test_page_past_the_end_still_has_the_total(shared: Path) -> None:
    with open_store(shared) as conn:
        page = queries.traffic_page(conn, queries.TrafficFilter(offset=100, route="triage"))
        pairs = queries.pairs_page(conn, queries.PairFilter(offset=100))
    assert (page["rows"], page["total"]) == ([], 5)
    assert (pairs["rows"], pairs["total"]) == ([], 2)


def test_overview_series_live_traffic_costs_and_savings(tmp_path: Path) -> None:
    path = tmp_path / "store.duckdb"
    rows = [
        {**row("t1", minutes=1), "upstream_model": "gpt", "prompt_tokens": 1000,
         "completion_tokens": 500, "ttft_ms": 5.0},
        {**row("s1", minutes=2, variant="stu"), "upstream_model": "stu", "prompt_tokens": 1000,
         "completion_tokens": 500},
        {**row("m1", minutes=2, variant="stu", kind="shadow", pair="t1"),
         "upstream_model": "stu", "prompt_tokens": 1000, "completion_tokens": 500},
        {**row("e1", minutes=70, status=502, error="down", answer=None), "upstream_model": "gpt"},
    ]  # fmt: skip
    with connect(path) as conn:
        insert(conn, rows)
    prices = queries.Prices({"gpt": (1.0, 2.0), "stu": (0.1, 0.2)}, {"triage": "gpt"})
    with open_store(path) as conn:
        out = queries.overview_series(conn, 3600, None, prices)
        late = queries.overview_series(conn, 3600, T0 + timedelta(minutes=60), prices)
    totals = {r["variant"]: r for r in out if r["bucket"] is None}
    assert totals["stu"]["requests"] == 1  # the shadow mirror is not live traffic
    assert totals["stu"]["cost_usd"] == pytest.approx(0.1 + 0.1)
    assert totals["stu"]["teacher_cost_usd"] == pytest.approx(1.0 + 1.0)
    assert totals["teacher"]["requests"] == 2 and totals["teacher"]["errors"] == 1
    assert totals["teacher"]["cost_usd"] == pytest.approx(2.0)
    buckets = sorted({r["bucket"] for r in out if r["bucket"] is not None})
    assert len(buckets) == 2 and buckets[1] - buckets[0] == timedelta(hours=1)
    assert [r["variant"] for r in late if r["bucket"] is None] == ["teacher"]
    with open_store(path) as conn:
        assert queries.unpriced_models(conn, None, ["gpt"]) == ["stu"]  # served live, no price
        assert queries.unpriced_models(conn, None, ["gpt", "stu"]) == []


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("  ", None),
        ("2025-01-31T12:00", datetime(2025, 1, 31, 12, 0, tzinfo=UTC)),
        ("2025-01-31T12:00Z", datetime(2025, 1, 31, 12, 0, tzinfo=UTC)),
        ("2025-01-31 13:00+01:00", datetime(2025, 1, 31, 12, 0, tzinfo=UTC)),
        ("2025-01-31", datetime(2025, 1, 31, tzinfo=UTC)),
    ],
)
def test_parse_time(value: str | None, expected: datetime | None) -> None:
    assert queries.parse_time("since", value) == expected


@pytest.mark.parametrize("value", ["yesterday", "2025-13-01", "12:00"])
def test_parse_time_names_the_bad_value(value: str) -> None:
    with pytest.raises(ValueError, match=f"since={value!r} is not a time"):
        queries.parse_time("since", value)
