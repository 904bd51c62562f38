"""What the log keeps outside the bodies: tags and session from the body's `metadata`, and
redaction on every stored column (user, session, tags, error, ...), not only on the bodies."""

from __future__ import annotations

import time
from typing import Any

import httpx
import orjson
import pytest

from gateway.tags import body_session, body_tags, body_user
from tests.fixtures.servers import GatewayFactory
from tests.gateway.test_proxy import rows

EMAIL = r"[\w.+-]+@[\w-]+\.[\w.]+"


@pytest.mark.parametrize(
    ("body", "header", "tags", "session"),
    [
        ({}, None, None, None),
        ({"metadata": {"team": "ops"}}, None, {"team": "ops"}, None),
        ({"metadata": {"team": "ops"}}, {"team": "sec", "n": 1}, {"team": "sec", "n": 1}, None),
        ({"metadata": {"session_id": "s1", "x": {"nested": 1}}}, None, {"session_id": "s1"}, "s1"),
        ({"metadata": {"session": "s2"}}, None, {"session": "s2"}, "s2"),
        ({"metadata": {"session_id": 7}}, None, {"session_id": 7}, None),
        ({"metadata": "not an object"}, {"a": "b"}, {"a": "b"}, None),
    ],
)
def test_metadata_tags_and_session(
    body: dict[str, Any], header: dict[str, Any] | None, tags: Any, session: Any
) -> None:
    assert body_tags(body, header) == tags
    assert body_session(body) == session


@pytest.mark.parametrize(
    ("body", "user"),
    [
        ({"user": "u1", "safety_identifier": "s"}, "u1"),
        ({"safety_identifier": "s"}, "s"),
        ({"user": ""}, None),
        ({}, None),
    ],
)
def test_user_from_body(body: dict[str, Any], user: str | None) -> None:
    assert body_user(body) == user


def test_metadata_reaches_the_row_and_every_column_is_redacted(
    make_gateway: GatewayFactory,
) -> None:
    def redact(cfg: dict[str, Any]) -> None:
        cfg["capture"] = {"redact": [{"pattern": EMAIL, "replace": "[EMAIL]"}]}
        cfg["routes"].append(
            {
                "name": "bad",
                "match": ["gpt-4o-error"],
                "teacher": {"upstream": "teacher", "model": "gpt-4o-error"},
            }
        )

    server = make_gateway(redact)
    secret = "ann@example.com"
    body = {
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": f"mail {secret}"}],
        "user": secret,
        "metadata": {"session_id": f"s {secret}", "owner": secret, "team": "ops"},
    }
    with httpx.Client(base_url=server.base_url, timeout=10) as http:
        ok = http.post("/chat/completions", json=body)
        tagged = http.post(
            "/responses",
            json={"model": "gpt-4o", "input": "hi", "safety_identifier": secret},
            headers={"x-distill-tags": f"by={secret}", "x-distill-session": secret},
        )
        failed = http.post("/chat/completions", json={**body, "model": "gpt-4o-error"})
    assert (ok.status_code, tagged.status_code, failed.status_code) == (200, 200, 500)
    logged = {r["id"]: r for r in rows(server)}
    first = logged[ok.headers["x-distill-request-id"]]
    assert orjson.loads(first["tags"]) == {
        "session_id": "s [EMAIL]",
        "owner": "[EMAIL]",
        "team": "ops",
    }
    assert (first["session"], first["user"]) == ("s [EMAIL]", "[EMAIL]")
    second = logged[tagged.headers["x-distill-request-id"]]
    assert (second["user"], second["session"]) == ("[EMAIL]", "[EMAIL]")
    assert orjson.loads(second["tags"]) == {"by": "[EMAIL]"}
    for row in logged.values():  # no column keeps the address, whatever its type
        assert secret not in orjson.dumps({k: str(v) for k, v in row.items()}).decode()
    assert logged[failed.headers["x-distill-request-id"]]["error"] is not None


def test_responses_continuations_stay_where_their_state_is(make_gateway: GatewayFactory) -> None:
    """`previous_response_id` without a sticky key goes to the teacher, never to a canary
    student that could not resolve it; with a user it follows the user's variant."""

    def canary(cfg: dict[str, Any]) -> None:
        cfg["routes"][0]["students"] = [
            {"name": "s1", "upstream": "teacher", "model": "gpt-4o", "weight": 100}
        ]

    server = make_gateway(canary)
    with httpx.Client(base_url=server.base_url, timeout=10) as http:

        def variant(**body: Any) -> str:
            answer = http.post("/responses", json={"model": "gpt-4o", "input": "hi", **body})
            assert answer.status_code == 200, answer.text
            return answer.headers["x-distill-variant"]

        assert variant() == "s1"
        assert variant(previous_response_id="resp_1") == "teacher"
        assert variant(conversation="conv_1") == "teacher"
        assert variant(previous_response_id="resp_1", user="u1") == "s1"


def test_continuations_get_no_second_opinion(
    make_gateway: GatewayFactory, teacher_server: Any
) -> None:
    """A secondary teacher could not resolve a response stored at the primary: not mirrored."""

    def second(cfg: dict[str, Any]) -> None:
        cfg["routes"][0]["secondary_teachers"] = [
            {"name": "teacher-b", "upstream": "teacher", "model": "gpt-4o"}
        ]

    server = make_gateway(second)
    with httpx.Client(base_url=server.base_url, timeout=10) as http:
        fresh = http.post("/responses", json={"model": "gpt-4o", "input": "hi"})
        more = {"model": "gpt-4o", "input": "and?", "previous_response_id": "resp_1"}
        continued = http.post("/responses", json=more)
    mirrored: dict[str, int] = {}
    deadline = time.monotonic() + 10
    while not mirrored.get(fresh.headers["x-distill-request-id"]) and time.monotonic() < deadline:
        logged = rows(server, "kind = 'secondary'")
        mirrored = {
            pair: sum(r["pair_id"] == pair for r in logged)
            for pair in {r["pair_id"] for r in logged}
        }
        time.sleep(0.1)
    assert mirrored == {fresh.headers["x-distill-request-id"]: 1}
    assert continued.headers["x-distill-request-id"] not in mirrored


def test_with_a_pseudonym_key_redacted_users_stay_distinct(
    make_gateway: GatewayFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DISTILL_PSEUDONYM_KEY", "a-secret-the-replicas-share")

    def redact(cfg: dict[str, Any]) -> None:
        cfg["capture"] = {"redact": [{"pattern": EMAIL, "replace": "[EMAIL]"}]}

    server = make_gateway(redact)
    users = ["ann@example.com", "bob@example.com", "ann@example.com", "u-7"]
    with httpx.Client(base_url=server.base_url, timeout=10) as http:
        for user in users:
            body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
            answer = http.post("/chat/completions", json={**body, "user": user})
            assert answer.status_code == 200, answer.text
    stored = [r["user"] for r in sorted(rows(server), key=lambda r: r["ts"])]
    assert stored[3] == "u-7"  # nothing to redact: kept
    assert stored[0] == stored[2] != stored[1]  # one user stays one, two stay two
    assert all(s.startswith("[EMAIL]~") and "@" not in s for s in stored[:3])
