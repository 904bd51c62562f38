"""The upstream transport: what the teacher sent reaches the client, decoded, and is logged."""

from __future__ import annotations

import hashlib
from typing import Any

import httpx
import openai
import orjson
import pytest

from gateway.auth import key_digest
from gateway.usage import STREAM_COUNT_NOTE
from tests.fixtures.servers import GatewayFactory, GatewayServer, free_port
from tests.gateway.test_proxy import MESSAGES, client, rows, without_created

ENCODINGS = ("gzip", "deflate", "br", "zstd")


def teacher_models(*models: str) -> Any:
    """A config edit adding one route per teacher model name (the name selects behaviour)."""

    def edit(cfg: dict[str, Any]) -> None:
        cfg["routes"] += [
            {"name": f"r-{m}", "match": [m], "teacher": {"upstream": "teacher", "model": m}}
            for m in models
        ]

    return edit


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_compressed_answers_reach_the_client_decoded_and_are_logged(
    make_gateway: GatewayFactory, teacher_server: Any, encoding: str
) -> None:
    model = f"gpt-4o-{encoding}"
    server: GatewayServer = make_gateway(teacher_models(model))
    via = client(server).chat.completions.with_raw_response.create(model=model, messages=MESSAGES)
    direct = client(teacher_server).chat.completions.with_raw_response.create(
        model=model, messages=MESSAGES
    )
    assert direct.headers["content-encoding"] == encoding  # the upstream really compresses
    assert without_created(via.parse()) == without_created(direct.parse())
    assert via.parse().choices[0].message.content == "billing"

    streamed = "".join(
        chunk.choices[0].delta.content or ""
        for chunk in client(server).chat.completions.create(
            model=model, messages=MESSAGES, stream=True
        )
        if chunk.choices
    )
    assert streamed == "billing"

    logged = rows(server)
    assert [r["status"] for r in logged] == [200, 200]
    for row in logged:
        response = orjson.loads(row["response"])
        assert response["choices"][0]["message"]["content"] == "billing"
        assert row["prompt_tokens"] > 0 and row["completion_tokens"] > 0
        assert row["error"] is None


def test_upstream_headers_reach_the_client_and_the_sdk_request_id(
    gateway_server: GatewayServer,
) -> None:
    app = client(gateway_server, organization="org-7", project="proj-7")
    raw = app.chat.completions.with_raw_response.create(model="gpt-4o", messages=MESSAGES)
    completion = raw.parse()
    # forwarded upstream, and echoed back by the teacher as OpenAI does
    assert (raw.headers["openai-organization"], raw.headers["openai-project"]) == (
        "org-7",
        "proj-7",
    )
    teacher_id = raw.headers["x-request-id"]
    assert teacher_id.startswith("req_") and teacher_id != raw.headers["x-distill-request-id"]
    assert completion._request_id == teacher_id  # what the SDK shows as the request id
    assert int(raw.headers["openai-processing-ms"]) >= 0
    assert raw.headers["x-ratelimit-limit-requests"] == "10000"
    assert "content-encoding" not in raw.headers
    assert len(raw.headers.get_list("content-length")) == 1

    stream = client(gateway_server).chat.completions.with_raw_response.create(
        model="gpt-4o", messages=MESSAGES, stream=True
    )
    assert stream.headers["x-request-id"].startswith("req_")
    assert stream.headers["content-type"].startswith("text/event-stream")
    list(stream.parse())


def test_a_teachers_429_keeps_its_retry_after(make_gateway: GatewayFactory) -> None:
    server = make_gateway(teacher_models("gpt-4o-overloaded"))
    response = httpx.post(
        f"{server.base_url}/chat/completions",
        json={"model": "gpt-4o-overloaded", "messages": MESSAGES},
    )
    assert response.status_code == 429
    assert response.headers["retry-after"] == "1"
    assert response.headers["x-ratelimit-remaining-requests"] == "0"
    assert response.headers["x-distill-request-id"].startswith("req_")


def test_stream_usage_off_sends_the_body_as_is_and_counts_usage(
    make_gateway: GatewayFactory,
) -> None:
    def edit(cfg: dict[str, Any]) -> None:
        teacher_models("gpt-4o-echo")(cfg)
        cfg["upstreams"]["teacher"]["stream_usage"] = False

    server = make_gateway(edit)
    chunks = list(
        client(server).chat.completions.create(model="gpt-4o-echo", messages=MESSAGES, stream=True)
    )
    echoed = orjson.loads("".join(c.choices[0].delta.content or "" for c in chunks if c.choices))
    assert "stream_options" not in echoed  # nothing added to what the app sent
    [row] = rows(server)
    content_chunks = sum(1 for c in chunks if c.choices and c.choices[0].delta.content)
    assert row["completion_tokens"] == content_chunks and row["prompt_tokens"] is None
    assert orjson.loads(row["notes"]) == [STREAM_COUNT_NOTE]


def test_other_v1_paths_pass_through_counted_and_embeddings_logged_as_digests(
    gateway_server: GatewayServer, teacher_server: Any
) -> None:
    via, direct = client(gateway_server), client(teacher_server)
    texts = ["my invoice is wrong", "the app crashes"]
    embedded = via.embeddings.create(model="text-embedding-3-small", input=texts)
    assert embedded == direct.embeddings.create(model="text-embedding-3-small", input=texts)
    moderated = via.moderations.create(input="hello")
    assert moderated.results[0].flagged is False
    assert via.models.retrieve("gpt-4o").id == "gpt-4o"

    boundary = "distill-test-boundary"
    upload = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.jsonl"\r\n'
            f"Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + bytes(range(256))
        + f"\r\n--{boundary}--\r\n".encode()
    )
    content_type = f"multipart/form-data; boundary={boundary}"
    trace = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    sent_headers = {
        "content-type": content_type,
        "openai-organization": "org-1",
        "openai-project": "proj-1",
        "openai-beta": "assistants=v2",
        "traceparent": trace,
        "cookie": "session=secret",
        "x-distill-session": "s1",
    }
    uploaded = httpx.post(
        f"{gateway_server.base_url}/files?x=1", content=upload, headers=sent_headers
    )
    answer = uploaded.json()
    assert uploaded.headers["content-length"] == str(len(uploaded.content))
    assert answer["sha256"] == hashlib.sha256(upload).hexdigest()  # the bytes, untouched
    assert (answer["content_type"], answer["query"]) == (content_type, "x=1")
    arrived = answer["headers"]
    for name in ("openai-organization", "openai-project", "openai-beta", "traceparent"):
        assert arrived[name] == sent_headers[name]
    assert "cookie" not in arrived and "x-distill-session" not in arrived

    with httpx.stream("GET", f"{gateway_server.base_url}/files/file-1/content") as download:
        assert download.headers["content-type"] == "application/octet-stream"
        assert download.read() == bytes(range(256)) * 16 * 16

    logged = rows(gateway_server)
    assert sorted(r["endpoint"] for r in logged) == ["embeddings", "moderations"]
    [row] = [r for r in logged if r["endpoint"] == "embeddings"]
    stored = orjson.loads(row["response"])["data"]
    assert [d["embedding"]["dimensions"] for d in stored] == [8, 8]
    vector = orjson.dumps(embedded.data[0].embedding)
    assert stored[0]["embedding"]["sha256"] != hashlib.sha256(b"").hexdigest()
    assert len(stored[0]["embedding"]["sha256"]) == 64 and len(vector) > 64
    assert orjson.loads(row["request"])["input"] == texts
    assert row["prompt_tokens"] == embedded.usage.prompt_tokens

    metrics = httpx.get(f"{gateway_server.url}/metrics").text
    for endpoint in ("embeddings", "moderations", "models", "files"):
        assert f'distill_passthrough_requests_total{{endpoint="{endpoint}"' in metrics


def test_an_unknown_path_with_no_default_upstream_says_what_to_do(
    make_gateway: GatewayFactory,
) -> None:
    def two_teachers(cfg: dict[str, Any]) -> None:
        cfg["upstreams"]["other"] = dict(cfg["upstreams"]["teacher"])
        cfg["routes"].append(
            {"name": "b", "match": ["b"], "teacher": {"upstream": "other", "model": "gpt-4o"}}
        )

    server = make_gateway(two_teachers)
    response = httpx.get(f"{server.base_url}/files")
    assert response.status_code == 404
    assert "default: true" in response.json()["error"]["message"]


def test_passthrough_checks_client_keys_and_keeps_the_apps_key(
    make_gateway: GatewayFactory,
) -> None:
    key = "dk-passthrough-secret"

    def keys(cfg: dict[str, Any]) -> None:
        cfg["server"] = {"api_keys": [{"name": "app", "sha256": key_digest(key)}]}

    server = make_gateway(keys)
    url = f"{server.base_url}/files"
    assert httpx.post(url, content=b"x").status_code == 401
    answer = httpx.post(url, content=b"x", headers={"authorization": f"Bearer {key}"})
    assert answer.status_code == 200
    assert "authorization" not in answer.json()["headers"]  # the gateway's key stays here


def test_an_embeddings_call_that_fails_is_logged_failed(make_gateway: GatewayFactory) -> None:
    def dead(cfg: dict[str, Any]) -> None:
        cfg["upstreams"]["teacher"]["base_url"] = f"http://127.0.0.1:{free_port()}/v1"

    server = make_gateway(dead)
    with pytest.raises(openai.APIStatusError) as caught:
        client(server).embeddings.create(model="text-embedding-3-small", input="hi")
    assert caught.value.status_code == 502
    [row] = rows(server)
    assert (row["endpoint"], row["status"]) == ("embeddings", 502)
    assert "unreachable" in row["error"]


def test_embeddings_rows_carry_user_session_and_tags(gateway_server: GatewayServer) -> None:
    client(gateway_server).embeddings.create(
        model="text-embedding-3-small",
        input="where is my parcel",
        user="u-7",
        extra_headers={"x-distill-session": "s-9", "x-distill-tags": "team=search"},
    )
    [row] = rows(gateway_server)
    assert (row["endpoint"], row["user"], row["session"]) == ("embeddings", "u-7", "s-9")
    assert orjson.loads(row["tags"]) == {"team": "search"}
