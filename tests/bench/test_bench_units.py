"""The benchmark's parts: wrk summary parsing, percentiles, the nginx fixed upstream."""

from __future__ import annotations

import shutil
import urllib.request

import orjson
import pytest

from bench.gateway.fixed_upstream import ANSWER, FixedUpstream, completion_json
from bench.gateway.load import parse_wrk
from bench.gateway.report import LogCheck
from bench.gateway.ttft import percentile
from gateway.streams import SSESplitter, StreamAssembler, event_data

WRK_OUTPUT = (
    b"Running 1s test @ http://127.0.0.1:1/v1/chat/completions\n"
    b"  1 threads and 32 connections\n"
    b'WRK_JSON {"requests":3000,"sent":3032,"duration_us":1500000,"bytes":9,'
    b'"errors":{"connect":0,"read":1,"write":0,"status":2,"timeout":0},'
    b'"latency_us":{"p50":250.0,"p90":400.0,"p99":1500.5,"p999":3000.0,"mean":300.0,'
    b'"max":9000.0}}\n'
)


def test_parse_wrk_reads_the_summary_line() -> None:
    result = parse_wrk(WRK_OUTPUT)
    assert (result.requests, result.sent) == (3000, 3032)
    assert result.rps == pytest.approx(2000.0)
    assert result.error_count == 3
    assert (result.p50_ms, result.p99_ms, result.max_ms) == (0.25, 1.5005, 9.0)


def test_parse_wrk_without_summary_says_what_it_saw() -> None:
    with pytest.raises(ValueError, match=r"no WRK_JSON summary.*unable to connect"):
        parse_wrk(b"unable to connect to 127.0.0.1:1 Connection refused\n")


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [
        ([1.0, 2.0, 3.0, 4.0], 50, 2.0),
        ([1.0, 2.0, 3.0, 4.0], 75, 3.0),
        ([1.0, 2.0, 3.0, 4.0], 99, 4.0),
        ([5.0, 1.0, 3.0], 0, 1.0),
        (list(map(float, range(1, 101))), 99, 99.0),
        ([7.0], 50, 7.0),
    ],
)
def test_percentile_is_nearest_rank(values: list[float], q: float, expected: float) -> None:
    assert percentile(values, q) == expected


def test_percentile_of_nothing_is_nan() -> None:
    assert percentile([], 50) != percentile([], 50)


@pytest.mark.parametrize(("answered", "rows", "dropped"), [(10, 10, 0), (10, 7, 3), (10, 12, 0)])
def test_dropped_rows_are_answered_but_not_logged(answered: int, rows: int, dropped: int) -> None:
    check = LogCheck(sent=answered, completed=answered, answered=answered, rows=rows, spool_left=0)
    assert check.dropped == dropped


@pytest.mark.skipif(shutil.which("nginx") is None, reason="needs nginx (scripts/setup.sh)")
def test_fixed_upstream_serves_the_canned_completion_as_json_and_sse() -> None:
    with FixedUpstream() as upstream:
        post = urllib.request.Request(
            f"{upstream.base_url}/chat/completions", data=b"{}", method="POST"
        )
        with urllib.request.urlopen(post, timeout=5) as resp:
            assert resp.headers["Content-Type"] == "application/json"
            assert resp.read() == completion_json()
        post = urllib.request.Request(
            f"{upstream.stream_base_url}/chat/completions", data=b"{}", method="POST"
        )
        with urllib.request.urlopen(post, timeout=5) as resp:
            assert resp.headers["Content-Type"] == "text/event-stream"
            stream = resp.read()
    events = SSESplitter().feed(stream)
    assert event_data(events[-1]) == b"[DONE]"
    assembler = StreamAssembler("chat")
    for event in events[:-1]:
        data = event_data(event)
        assert data is not None
        assembler.add(orjson.loads(data))
    answer = assembler.response()
    assert answer["choices"][0]["message"]["content"] == ANSWER
    assert answer["usage"] == orjson.loads(completion_json())["usage"]
