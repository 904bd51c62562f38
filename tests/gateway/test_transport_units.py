"""The transport's pure parts: header policy, usage checks, answer checks, passthrough choice."""

from __future__ import annotations

from typing import Any

import pytest

from distill_demo.teacher.provider import accepts
from gateway.answer_check import capped, error_text, json_object, looks_like_sse
from gateway.config import parse_config
from gateway.errors import NotFound
from gateway.headers import request_headers, response_headers
from gateway.passthrough import embeddings_digest, endpoint_of, own_model, upstream_for
from gateway.streams import StreamAssembler
from gateway.usage import checked_usage


@pytest.mark.parametrize(
    ("upstream", "expected"),
    [
        ([("X-Request-Id", "req_1"), ("openai-processing-ms", "12")],
         {"x-request-id": "req_1", "openai-processing-ms": "12"}),
        ([("Retry-After", "3"), ("x-ratelimit-remaining-requests", "0")],
         {"retry-after": "3", "x-ratelimit-remaining-requests": "0"}),
        # hop-by-hop, recomputed and host-bound headers stop here
        ([("Connection", "keep-alive, X-Secret"), ("Keep-Alive", "timeout=5"),
          ("Transfer-Encoding", "chunked"), ("X-Secret", "1"), ("Content-Length", "10"),
          ("Content-Encoding", "gzip"), ("Set-Cookie", "a=b"), ("Alt-Svc", "h3"),
          ("Strict-Transport-Security", "max-age=1"), ("Date", "x"), ("Server", "y"),
          ("Access-Control-Allow-Origin", "*"), ("x-distill-variant", "spoofed")],
         {}),
        ([("Content-Type", "application/json"), ("Vary", "a"), ("vary", "b")],
         {"content-type": "application/json", "vary": "a, b"}),
    ],
)  # fmt: skip
def test_response_headers(upstream: list[tuple[str, str]], expected: dict[str, str]) -> None:
    assert response_headers(upstream) == expected


@pytest.mark.parametrize(
    ("client", "extra", "expected"),
    [
        ({"openai-organization": "o", "openai-project": "p", "openai-beta": "b",
          "traceparent": "t", "tracestate": "s", "authorization": "Bearer k",
          "cookie": "c", "host": "h", "x-distill-session": "s1"}, (),
         {"openai-organization": "o", "openai-project": "p", "openai-beta": "b",
          "traceparent": "t", "tracestate": "s"}),
        ({"x-team": "a", "x-other": "b"}, ("X-Team",), {"x-team": "a"}),
        # a header the Connection header lists is hop-by-hop, even when allowed
        ({"connection": "traceparent", "traceparent": "t"}, (), {}),
        ({}, ("te",), {}),
    ],
)  # fmt: skip
def test_request_headers(
    client: dict[str, str], extra: tuple[str, ...], expected: dict[str, str]
) -> None:
    assert request_headers(client, extra) == expected


@pytest.mark.parametrize(
    ("usage", "counts", "noted"),
    [
        ({"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
         {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}, []),
        ({"prompt_tokens": -5, "completion_tokens": 2}, {"completion_tokens": 2},
         ["prompt_tokens"]),
        ({"prompt_tokens": "12", "completion_tokens": []}, {},
         ["prompt_tokens", "completion_tokens"]),
        ({"prompt_tokens": 2**31, "completion_tokens": 2**31 - 1},
         {"completion_tokens": 2**31 - 1}, ["prompt_tokens"]),
        ({"prompt_tokens": True, "completion_tokens": 1.5}, {},
         ["prompt_tokens", "completion_tokens"]),
        ([], {}, ["usage"]),
        (None, {}, []),
    ],
)  # fmt: skip
def test_checked_usage(usage: Any, counts: dict[str, int], noted: list[str]) -> None:
    got, notes = checked_usage(usage)
    assert got == counts
    assert len(notes) == len(noted)
    for note, key in zip(notes, noted, strict=True):
        assert key in note and "NULL" in note


@pytest.mark.parametrize(
    ("endpoint", "payloads", "pieces"),
    [
        ("chat", [{"choices": [{"delta": {"role": "assistant", "content": ""}}]},
                  {"choices": [{"delta": {"content": "ab"}}]},
                  {"choices": [{"delta": {"content": "cd"}}]}], 2),
        ("chat", [{"choices": [{"delta": {"tool_calls": [{"index": 0, "id": "c"}]}},
                               {"index": 1, "delta": {"refusal": "no"}}]}], 2),
        ("chat", [{"choices": [{"delta": {"reasoning_content": "hm"}}]},
                  {"choices": [], "usage": {"prompt_tokens": 1}}], 1),
        ("completions", [{"choices": [{"text": "x"}]}, {"choices": [{"text": ""}]}], 1),
    ],
)  # fmt: skip
def test_stream_pieces(endpoint: str, payloads: list[dict[str, Any]], pieces: int) -> None:
    assembler = StreamAssembler(endpoint)
    for payload in payloads:
        assembler.add(payload)
    assert assembler.pieces == pieces


@pytest.mark.parametrize(
    ("data", "is_object"),
    [(b'{"a": 1}', True), (b'{"a": ', False), (b"[1]", False), (b"", False), (b"<html>", False)],
)
def test_json_object(data: bytes, is_object: bool) -> None:
    assert (json_object(data) is not None) is is_object


@pytest.mark.parametrize(
    ("first", "sse"),
    [
        (b"data: {}\n\n", True),
        (b"\n: keep-alive\n\n", True),
        (b"event: response.created\ndata: {}\n\n", True),
        (b'{"id": "x"}', False),
        (b"<html>", False),
        (b"", False),
    ],
)
def test_looks_like_sse(first: bytes, sse: bool) -> None:
    assert looks_like_sse(first) is sse


def test_error_text_and_cap() -> None:
    page = b"<html>" + b"x" * 2_000_000
    assert error_text(500, "text/html", page, None) == (
        "upstream answered 500 with 2000006 bytes of text/html"
    )
    assert error_text(429, "", b"", {"error": {"message": "slow"}}) == '{"message":"slow"}'
    cut = capped("y" * 5000)
    assert cut is not None and cut.startswith("y" * 4096) and cut.endswith("cut]")
    assert capped("short") == "short" and capped(None) is None


def config(routes: list[dict[str, Any]], upstreams: tuple[str, ...] = ("a", "b")) -> Any:
    return parse_config(
        {
            "upstreams": {u: {"base_url": f"http://127.0.0.1:1/{u}"} for u in upstreams},
            "routes": routes,
        }
    )


def route(name: str, upstream: str, model: str, default: bool = False) -> dict[str, Any]:
    return {
        "name": name,
        "match": [name],
        "teacher": {"upstream": upstream, "model": model},
        "default": default,
    }


@pytest.mark.parametrize(
    ("routes", "model", "expected"),
    [
        ([route("x", "a", "tx"), route("y", "b", "ty")], "y", ("b", "ty")),
        ([route("x", "a", "tx"), route("y", "b", "ty", default=True)], "emb", ("b", None)),
        ([route("x", "a", "tx"), route("y", "b", "ty", default=True)], None, ("b", None)),
        ([route("x", "a", "tx"), route("y", "a", "ty")], None, ("a", None)),
    ],
)
def test_upstream_for(routes: list[dict[str, Any]], model: str | None, expected: Any) -> None:
    assert upstream_for(config(routes), model) == expected


def test_upstream_for_without_a_default_says_what_to_do() -> None:
    with pytest.raises(NotFound, match="default: true"):
        upstream_for(config([route("x", "a", "tx"), route("y", "b", "ty")]), "emb")


def test_embeddings_digest_keeps_no_vector() -> None:
    answer = {
        "object": "list",
        "data": [
            {"object": "embedding", "index": 0, "embedding": [0.5, -0.25, 1.0]},
            {"object": "embedding", "index": 1, "embedding": "AAAAPw=="},
        ],
        "usage": {"prompt_tokens": 2},
    }
    digest = embeddings_digest(answer)
    first, second = (d["embedding"] for d in digest["data"])
    assert first["dimensions"] == 3 and len(first["sha256"]) == 64
    assert second["base64_chars"] == 8 and first["sha256"] != second["sha256"]
    assert digest["usage"] == answer["usage"] and "-0.25" not in str(digest)


@pytest.mark.parametrize(
    ("path", "endpoint"),
    [("/embeddings", "embeddings"), ("/files/f-1/content", "files"), ("/", "v1")],
)
def test_endpoint_of(path: str, endpoint: str) -> None:
    assert endpoint_of(path) == endpoint


@pytest.mark.parametrize(
    ("header", "encoding", "ok"),
    [
        ("gzip, deflate, br, zstd", "br", True),
        ("gzip;q=0, deflate", "gzip", False),
        ("*", "zstd", True),
        (None, "gzip", False),
        ("identity", "gzip", False),
    ],
)
def test_teacher_compresses_only_what_is_accepted(
    header: str | None, encoding: str, ok: bool
) -> None:
    assert accepts(header, encoding) is ok


@pytest.mark.parametrize(
    ("method", "path", "owner"),
    [
        ("GET", "/models/x", "distill:x"),
        ("GET", "/models/unrouted", None),
        ("DELETE", "/models/x", None),
        ("GET", "/files/x", None),
    ],
)
def test_own_model(method: str, path: str, owner: str | None) -> None:
    found = own_model(config([route("x", "a", "tx")]), method, path)
    assert (found and found["owned_by"]) == owner
