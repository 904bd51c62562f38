"""Fuzzing with a hostile upstream and hostile clients: the log never stops, nothing is a 5xx.

Hypothesis draws the cases (derandomized, so CI runs the same ones; `DISTILL_FUZZ_EXAMPLES`
raises the count). The upstream sends any JSON as `usage`, streamed or not: every answer
reaches the client and every row reaches the store (issue 15, items 2 and 3). Clients send
any number as a feedback score and any integer as a page offset (items 4 and 10).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.store.db import connect
from tests.fixtures.servers import GatewayFactory, GatewayServer, ServerThread
from tests.reliability.hostile import create_hostile_app

pytestmark = pytest.mark.reliability

EXAMPLES = int(os.environ.get("DISTILL_FUZZ_EXAMPLES", "30"))
TOKEN = "fuzz-admin-token"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
    database=None,
)

# What a teacher may send as usage: JSON of any shape, numbers at and past every bound.
NUMBERS = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.sampled_from([2**31 - 1, 2**31, 2**32, -1, 0, 2**63 - 1, -(2**63)]),
    st.floats(allow_nan=False, allow_infinity=False),
)
SCALARS = st.one_of(st.none(), st.booleans(), NUMBERS, st.text(max_size=20))


def _nested(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)


JSON = st.recursive(SCALARS, _nested, max_leaves=8)
USAGE = st.one_of(
    JSON,
    st.fixed_dictionaries(
        {},
        optional={"prompt_tokens": JSON, "completion_tokens": JSON, "total_tokens": JSON},
    ),
)


@pytest.fixture
def hostile_gateway(
    make_gateway: GatewayFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[GatewayServer]:
    upstream = ServerThread(create_hostile_app()).start()
    monkeypatch.setenv("DISTILL_ADMIN_TOKEN", TOKEN)

    def to_hostile(cfg: dict[str, Any]) -> None:
        cfg["upstreams"]["teacher"]["base_url"] = f"{upstream.url}/v1"

    yield make_gateway(to_hostile)
    upstream.stop()


def test_any_usage_from_the_upstream_is_answered_and_logged(
    hostile_gateway: GatewayServer,
) -> None:
    sent: list[str] = []
    with httpx.Client(timeout=30) as http:

        @SETTINGS
        @given(usage=USAGE, stream=st.booleans())
        def case(usage: Any, stream: bool) -> None:
            body = {
                "model": "gpt-4o",
                "stream": stream,
                "messages": [{"role": "user", "content": "hi"}],
                "x_usage": usage,
            }
            response = http.post(f"{hostile_gateway.base_url}/chat/completions", json=body)
            assert response.status_code == 200, response.text
            if stream:
                assert response.text.rstrip().endswith("data: [DONE]"), response.text[-300:]
            else:
                assert response.json()["choices"][0]["message"]["content"] == "ok"
            sent.append(response.headers["x-distill-request-id"])

        case()
    hostile_gateway.flush()  # fails if the writer is stuck on a row
    with connect(hostile_gateway.store_path, read_only=True) as conn:
        stored = {r[0] for r in conn.execute("SELECT id FROM requests").fetchall()}
    assert set(sent) <= stored, f"{len(set(sent) - stored)} of {len(sent)} rows missing"
    ready = httpx.get(f"{hostile_gateway.url}/readyz")
    assert ready.status_code == 200, ready.text


SCORES = st.one_of(
    st.floats(),  # NaN and infinities included
    st.integers(min_value=-(10**30), max_value=10**30),
    st.sampled_from(['"NaN"', '"Infinity"', '"-inf"', "1e999", "-1e999", "NaN", "Infinity"]),
)


def score_json(score: Any) -> bytes:
    if isinstance(score, str):
        return score.encode()
    if isinstance(score, float) and not math.isfinite(score):
        return {True: b"NaN"}.get(math.isnan(score), b"Infinity" if score > 0 else b"-Infinity")
    return orjson.dumps(score)


def is_finite_number(score: Any) -> bool:
    if isinstance(score, str):
        return False
    return math.isfinite(float(score))


def test_any_feedback_score_is_stored_or_refused_cleanly(hostile_gateway: GatewayServer) -> None:
    with httpx.Client(timeout=30) as http:
        answered = http.post(
            f"{hostile_gateway.base_url}/chat/completions",
            json={"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]},
        )
        rid = answered.headers["x-distill-request-id"]

        @SETTINGS
        @given(score=SCORES)
        def case(score: Any) -> None:
            body = b'{"request_id": "%s", "score": %s}' % (rid.encode(), score_json(score))
            response = http.post(
                f"{hostile_gateway.base_url}/feedback",
                content=body,
                headers={"Content-Type": "application/json"},
            )
            finite = is_finite_number(score) and abs(float(score)) < 1.8e308
            assert response.status_code == (201 if finite else 400), (score, response.text)
            if response.status_code == 400:
                assert response.json()["error"]["param"] == "score"

        case()
    hostile_gateway.flush()
    with connect(hostile_gateway.store_path, read_only=True) as conn:
        scores = [r[0] for r in conn.execute("SELECT score FROM feedback").fetchall()]
    assert all(s is not None and math.isfinite(s) for s in scores)  # never NaN, never NULL


def test_any_page_offset_is_answered_in_json(hostile_gateway: GatewayServer) -> None:
    edges = st.sampled_from([2**63, 2**63 - 1, 2**64, -(2**63) - 1, 10**30, -1, 0])
    big = edges | st.integers(min_value=-(2**70), max_value=2**70)
    with httpx.Client(timeout=30, headers=ADMIN) as http:

        @SETTINGS
        @given(offset=big, limit=big | st.integers(min_value=1, max_value=500))
        def case(offset: int, limit: int) -> None:
            for path in ("/ui/api/traffic", "/ui/api/pairs"):
                response = http.get(
                    f"{hostile_gateway.url}{path}", params={"offset": offset, "limit": limit}
                )
                assert response.status_code in (200, 400), (path, offset, limit, response.text)
                assert response.headers["content-type"].startswith("application/json")
                if response.status_code == 400:
                    assert response.json()["error"]["type"] == "invalid_request_error"

        case()
