"""Client API keys, per-key limits and CORS: pure parts table-driven, then a live gateway."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import orjson
import pytest

from gateway.auth import Authenticator, TokenBucket, key_digest
from gateway.config import ConfigError, ServerConfig, parse_config
from gateway.errors import AuthenticationFailed, RateLimited
from gateway.store.db import connect
from tests.fixtures.servers import GatewayFactory

KEY, OTHER = "dk-app-one-secret", "dk-app-two-secret"


@pytest.mark.parametrize(
    ("times", "expected"),
    [
        ([0, 0, 0], [0.0, 0.0, 0.5]),  # burst 2, then wait half a second at 2/s
        ([0, 0, 0.5], [0.0, 0.0, 0.0]),
        ([0, 0, 0.25], [0.0, 0.0, 0.25]),
        ([0, 10, 10, 10], [0.0, 0.0, 0.0, 0.5]),  # saved up no more than the burst
    ],
)
def test_token_bucket(times: list[float], expected: list[float]) -> None:
    bucket = TokenBucket(rate=2, burst=2)
    assert [round(bucket.take(t), 3) for t in times] == expected


def authenticator(**extra: Any) -> Authenticator:
    server = ServerConfig.model_validate(
        {
            "api_keys": [
                {"name": "one", "sha256": key_digest(KEY), **extra},
                {"name": "two", "sha256": key_digest(OTHER)},
            ]
        }
    )
    return Authenticator.from_config(server, environ={})


@pytest.mark.parametrize(
    ("header", "code"),
    [
        (None, "missing_api_key"),
        ("Basic abc", "missing_api_key"),
        ("Bearer ", "missing_api_key"),
        ("Bearer nope", "invalid_api_key"),
        (f"Bearer {KEY}x", "invalid_api_key"),
    ],
)
def test_bad_keys_are_refused(header: str | None, code: str) -> None:
    with pytest.raises(AuthenticationFailed) as info:
        authenticator().check(header)
    assert info.value.code == code


def test_good_keys_name_their_client_and_env_keys_work() -> None:
    auth = authenticator()
    assert auth.check(f"Bearer {KEY}").name == "one"  # type: ignore[union-attr]
    assert auth.check(f"bearer {OTHER}").name == "two"  # type: ignore[union-attr]
    env = Authenticator.from_config(ServerConfig(api_keys_env="KEYS"), environ={"KEYS": "a1, b2,"})
    assert [k.name for k in env.keys] == ["keys-0", "keys-1"]
    assert env.check("Bearer b2") is not None
    assert not Authenticator.from_config(ServerConfig(), environ={}).enabled


def test_rate_limit_per_key() -> None:
    now = [0.0]
    auth = authenticator(rate_per_s=1, burst=2)
    auth.clock = lambda: now[0]
    auth.check(f"Bearer {KEY}")
    auth.check(f"Bearer {KEY}")
    with pytest.raises(RateLimited) as info:
        auth.check(f"Bearer {KEY}")
    assert info.value.retry_after == 1
    for _ in range(5):
        auth.check(f"Bearer {OTHER}")  # the other key has no limit
    now[0] = 1.0
    assert auth.check(f"Bearer {KEY}") is not None


def test_plain_keys_are_refused_in_config() -> None:
    with pytest.raises(ConfigError, match="SHA-256 of the key, not the key itself"):
        parse_config(
            {
                "upstreams": {"t": {"base_url": "http://x:1/v1"}},
                "server": {"api_keys": [{"name": "a", "sha256": KEY}]},
            },
            environ={},
        )


def keyed(cfg: dict[str, Any]) -> None:
    cfg["server"] = {
        "api_keys": [
            {"name": "app-one", "sha256": key_digest(KEY), "rate_per_s": 1, "burst": 3},
            {"name": "app-two", "sha256": key_digest(OTHER), "max_request_bytes": 300},
        ]
    }
    cfg["routes"][0]["teacher"]["model"] = "gpt-4o-echo"
    cfg["upstreams"]["teacher"]["api_key_env"] = "TEST_TEACHER_KEY"


MESSAGES = [{"role": "user", "content": "refund my invoice"}]


def test_live_gateway_with_keys(
    make_gateway: GatewayFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_TEACHER_KEY", "sk-teacher-upstream")
    server = make_gateway(keyed)

    def client(key: str) -> openai.OpenAI:
        return openai.OpenAI(base_url=server.base_url, api_key=key, max_retries=0)

    with pytest.raises(openai.AuthenticationError):
        client("wrong").chat.completions.create(model="gpt-4o", messages=MESSAGES)
    with pytest.raises(openai.AuthenticationError):
        client("wrong").models.list()
    answer = client(KEY).chat.completions.create(model="gpt-4o", messages=MESSAGES)
    seen = orjson.loads(answer.choices[0].message.content or "")
    assert seen["__authorization"] == "Bearer sk-teacher-upstream"  # never the app's key
    assert [m.id for m in client(KEY).models.list().data] == ["gpt-4o"]

    client(KEY).chat.completions.create(model="gpt-4o", messages=MESSAGES)
    with pytest.raises(openai.RateLimitError) as info:  # burst of 3 spent (models counts)
        client(KEY).chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert int(info.value.response.headers["retry-after"]) >= 1

    big = [{"role": "user", "content": "x" * 400}]
    with pytest.raises(openai.APIStatusError) as too_big:
        client(OTHER).chat.completions.create(model="gpt-4o", messages=big)
    assert too_big.value.status_code == 413
    client(OTHER).chat.completions.create(model="gpt-4o", messages=MESSAGES)

    feedback = httpx.post(f"{server.base_url}/feedback", json={"request_id": "x", "score": 1})
    assert feedback.status_code == 401

    server.flush()
    with connect(server.store_path, read_only=True) as conn:
        rows = conn.execute("SELECT client FROM requests ORDER BY ts").fetchall()
        dump = str(conn.execute("SELECT * FROM requests").fetchall())
    assert [r[0] for r in rows] == ["app-one", "app-one", "app-two"]
    # The client keys are nowhere (the teacher key appears only inside the echoed answer).
    assert KEY not in dump
    assert OTHER not in dump


def test_cors_is_off_by_default_and_on_when_configured(make_gateway: GatewayFactory) -> None:
    preflight = {"Origin": "https://app.example", "Access-Control-Request-Method": "POST"}
    plain = make_gateway(name="plain")
    r = httpx.options(f"{plain.base_url}/chat/completions", headers=preflight)
    assert "access-control-allow-origin" not in r.headers

    def cors(cfg: dict[str, Any]) -> None:
        cfg["server"] = {"cors_origins": ["https://app.example"]}

    allowed = make_gateway(cors, name="cors")
    r = httpx.options(f"{allowed.base_url}/chat/completions", headers=preflight)
    assert r.headers["access-control-allow-origin"] == "https://app.example"
    # The POST itself carries them too (the proxy routes skip the middleware stack without CORS)
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "refund please"}]}
    for server, origin in ((plain, None), (allowed, "https://app.example")):
        r = httpx.post(
            f"{server.base_url}/chat/completions",
            json=body,
            headers={"Origin": "https://app.example"},
        )
        assert r.status_code == 200
        assert r.headers.get("access-control-allow-origin") == origin
