"""Hostile clients and operators (issue 15, items 4, 5, 6, 10): limits, NaN, blank keys, offsets.

Pure parts table-driven; the HTTP cases against a real gateway on 127.0.0.1, with raw sockets
where a well-behaved client would refuse to send the request.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from gateway.auth import Authenticator, key_digest
from gateway.config import ConfigError, ServerConfig, parse_config
from gateway.rollout import store as rollout_store
from gateway.rollout.gates import Gates
from gateway.store.db import connect
from gateway.ui import queries
from tests.fixtures.servers import GatewayFactory, GatewayServer, free_port
from tests.reliability.wire import request, send

pytestmark = pytest.mark.reliability

TOKEN = "hostile-admin-token"
KEY, SMALL = "dk-hostile-big", "dk-hostile-small"  # SMALL's own body limit is 2,000 bytes
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
MIB = 1 << 20


# -- 5. blank key sets are a configuration error --------------------------------------------


@pytest.mark.parametrize("value", [",", " , ", "", "  ", ",,, ,"])
def test_a_blank_key_variable_is_a_config_error(value: str) -> None:
    server = ServerConfig(api_keys_env="DISTILL_API_KEYS")
    with pytest.raises(ConfigError, match=r"\$DISTILL_API_KEYS is set but holds no key"):
        Authenticator.from_config(server, environ={"DISTILL_API_KEYS": value})


@pytest.mark.parametrize(
    ("environ", "keys"),
    [
        ({"DISTILL_API_KEYS": " k1 , ,k2,"}, 2),  # padding and blanks dropped, keys kept
        ({}, 0),  # unset: no keys from the environment (the loopback guard decides)
    ],
)
def test_usable_keys_are_counted(environ: dict[str, str], keys: int) -> None:
    server = ServerConfig(api_keys_env="DISTILL_API_KEYS")
    assert len(Authenticator.from_config(server, environ=environ).keys) == keys


@pytest.mark.parametrize("value", [",", " , "])
def test_serve_refuses_a_blank_key_variable(value: str, tmp_path: Path) -> None:
    config = tmp_path / "distill.yaml"
    config.write_text(
        "server: {api_keys_env: DISTILL_API_KEYS}\n"
        "upstreams: {teacher: {base_url: 'http://127.0.0.1:9/v1'}}\n"
    )
    serve = ["serve", "--config", str(config), "--host", "0.0.0.0", "--port", str(free_port())]
    done = subprocess.run(  # a process of its own: the old code started serving, open to all
        [sys.executable, "-m", "gateway", *serve],
        env={**os.environ, "DISTILL_API_KEYS": value},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "DISTILL_API_KEYS is set but holds no key" in done.stderr, done.stderr


# -- 4 and 6. NaN and infinities are refused wherever a number is read ----------------------

BASE: dict[str, Any] = {"upstreams": {"t": {"base_url": "http://127.0.0.1:9/v1"}}}


@pytest.mark.parametrize(
    ("section", "where"),
    [
        ({"rollout": {"gates": {"min_agreement": float("nan")}}}, "rollout.gates.min_agreement"),
        ({"rollout": {"tick_s": float("inf")}}, "rollout.tick_s"),
        ({"capture": {"sample_rate": float("nan")}}, "capture.sample_rate"),
        ({"upstreams": {"t": {"base_url": "http://x:1/v1", "timeout_s": float("nan")}}}, "t"),
        ({"pricing": {"m": {"prompt_per_1k": float("inf")}}}, "pricing.m.prompt_per_1k"),
    ],
)
def test_config_refuses_nan_and_infinity(section: dict[str, Any], where: str) -> None:
    with pytest.raises(ConfigError, match="finite number") as info:
        parse_config({**BASE, **section}, environ={})
    assert where in str(info.value)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf"), None, "0.5"])
def test_gates_refuse_what_is_not_a_finite_number(value: Any) -> None:
    with pytest.raises(ValueError, match="min_agreement must be a finite number"):
        Gates(min_agreement=value)


@pytest.mark.parametrize(
    ("offset", "limit", "ok"),
    [
        (0, 50, True),
        (2**63 - 1, 1, True),
        (2**63, 50, False),  # past DuckDB's BIGINT: was a plain-text 500
        (10**30, 50, False),
        (-1, 50, False),
        (0, 2**64, False),
    ],
)
def test_page_bounds(offset: int, limit: int, ok: bool) -> None:
    if ok:
        queries.TrafficFilter(offset=offset, limit=limit)
        queries.PairFilter(offset=offset, limit=limit)
        return
    with pytest.raises(ValueError, match=r"offset=|limit="):
        queries.TrafficFilter(offset=offset, limit=limit)
    with pytest.raises(ValueError, match=r"offset=|limit="):
        queries.PairFilter(offset=offset, limit=limit)


# -- live gateway ---------------------------------------------------------------------------


def keyed(cfg: dict[str, Any]) -> None:
    cfg["server"] = {
        "api_keys": [
            {"name": "big", "sha256": key_digest(KEY)},
            {"name": "small", "sha256": key_digest(SMALL), "max_request_bytes": 2000},
        ],
        "max_request_bytes": MIB,
    }


@pytest.fixture
def server(make_gateway: GatewayFactory, monkeypatch: pytest.MonkeyPatch) -> GatewayServer:
    monkeypatch.setenv("DISTILL_ADMIN_TOKEN", TOKEN)
    return make_gateway(keyed)


def logged_request(server: GatewayServer, key: str = KEY) -> str:
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "my invoice is wrong"}]}
    response = httpx.post(
        f"{server.base_url}/chat/completions",
        json=body,
        headers={"Authorization": f"Bearer {key}"},
    )
    assert response.status_code == 200, response.text
    return response.headers["x-distill-request-id"]


def feedback_body(request_id: str, **fields: Any) -> bytes:
    return orjson.dumps({"request_id": request_id, **fields})


def stored_feedback(server: GatewayServer) -> list[tuple[Any, ...]]:
    server.flush()
    with connect(server.store_path, read_only=True) as conn:
        return conn.execute("SELECT request_id, score, length(label) FROM feedback").fetchall()


def test_every_endpoint_has_the_body_limit(server: GatewayServer) -> None:
    rid = logged_request(server)
    key = {"Authorization": f"Bearer {KEY}"}
    small = {"Authorization": f"Bearer {SMALL}"}
    big_label = feedback_body(rid, label="x" * (20 * MIB))  # was stored: 201
    annotation = {"request_id": rid, "kind": "label", "label": "x" * 2 * MIB}
    cases = [
        ("feedback 20 MB, chunked", "/v1/feedback", key, big_label, None),
        ("feedback declares 20 MB", "/v1/feedback", key, b"{}", 20 * MIB),
        (
            "over the key's 2,000 bytes",
            "/v1/feedback",
            small,
            feedback_body(rid, label="x" * 3000),
            None,
        ),
        (
            "admin rollout 2 MB",
            "/admin/rollouts",
            ADMIN,
            orjson.dumps({"route": "x" * 2 * MIB}),
            None,
        ),
        ("console annotation 2 MB", "/admin/annotations", ADMIN, orjson.dumps(annotation), None),
    ]
    for case, path, headers, body, declared in cases:
        data = request(body, path=path, headers=headers, content_length=declared)
        reply = send(server.port, data)
        assert reply.status == 413, (case, reply)
        assert reply.json()["error"]["code"] == "request_too_large", case
    chunked = send(server.port, request(big_label, path="/v1/feedback", headers=key, chunked=True))
    assert chunked.status == 413, chunked
    # Under the limits the same endpoints work, with the small key's own limit too.
    ok = send(
        server.port, request(feedback_body(rid, label="ok"), path="/v1/feedback", headers=small)
    )
    assert ok.status == 201, ok
    assert stored_feedback(server) == [(rid, None, 2)]  # nothing of the refused ones


@pytest.mark.parametrize("score", [b"NaN", b'"NaN"', b"1e999", b'"-Infinity"', b"Infinity"])
def test_feedback_score_must_be_finite(server: GatewayServer, score: bytes) -> None:
    rid = logged_request(server)
    body = b'{"request_id": "%s", "score": %s}' % (rid.encode(), score)
    reply = send(
        server.port,
        request(body, path="/v1/feedback", headers={"Authorization": f"Bearer {KEY}"}),
    )
    assert reply.status == 400, reply  # was 201, counted positive, stored NULL
    assert reply.json()["error"]["param"] == "score"
    assert "finite" in reply.json()["error"]["message"]
    assert stored_feedback(server) == []


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-inf"])
def test_a_nan_gate_is_refused(server: GatewayServer, value: str) -> None:
    body = {"route": "support-triage", "adapter": "a", "gates": {"min_agreement": value}}
    response = httpx.post(f"{server.url}/admin/rollouts", json=body, headers=ADMIN)
    assert response.status_code == 400, response.text  # was 201, the gate silently off
    error = response.json()["error"]
    assert error["param"] == "gates.min_agreement" and "finite" in error["message"]


@pytest.mark.parametrize("query", ["offset=9223372036854775808", "offset=-1", "limit=1e3"])
def test_out_of_range_page_is_a_400_json(server: GatewayServer, query: str) -> None:
    for path in ("/ui/api/traffic", "/ui/api/pairs"):
        response = httpx.get(f"{server.url}{path}?{query}", headers=ADMIN)
        assert response.status_code == 400, (path, response.text)  # was a plain-text 500
        assert response.json()["error"]["type"] == "invalid_request_error"


def seed_bad_rollout(store: Path, gates: str) -> None:
    with connect(store) as conn:
        conn.execute(
            "INSERT INTO rollouts VALUES ('ro_bad', 'support-triage', 'a', 'canary', 0, "
            "'[1, 100]', ?, now(), now(), now())",
            [gates],
        )


@pytest.mark.parametrize(
    "gates",
    ['{"min_agreement": null}', '{"min_agreement": "NaN"}', '{"no_such_gate": 1}', "[1, 2]"],
)
def test_a_bad_stored_rollout_does_not_stop_a_restart(
    make_gateway: GatewayFactory, tmp_path: Path, gates: str, caplog: pytest.LogCaptureFixture
) -> None:
    seed_bad_rollout(tmp_path / "gw.duckdb", gates)
    assert rollout_store.load_active(tmp_path / "gw.duckdb") == []
    assert "ro_bad" in caplog.text and "not resumed" in caplog.text  # reported
    server = make_gateway()  # started before: Gates.__post_init__ raised during start-up
    assert httpx.get(f"{server.url}/readyz").status_code == 200
    assert logged_request(server)
