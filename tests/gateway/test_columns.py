"""What the log keeps outside the bodies: tags and session from the body's `metadata`, and
redaction on every stored column (user, session, tags, error, ...), not only on the bodies."""

from __future__ import annotations

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
