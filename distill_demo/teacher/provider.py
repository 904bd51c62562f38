"""What real providers do to an answer besides its content: compression, headers, faults.

...-gzip|-deflate|-br|-zstd     compress the answer (streams too) when Accept-Encoding allows
every answer                    x-request-id, openai-processing-ms, x-ratelimit-* headers
...-overloaded (server.py)      429, with retry-after: 1
...-usage-<negative|string|list|huge>   usage.prompt_tokens -5, "12", [] or 2**31
...-garbage-html                200 with an HTML page
...-garbage-truncated           200 with half of the JSON answer
...-garbage-sse                 streams: a `data:` line that is not JSON after two chunks
...-garbage-huge                200 with 10 MB of text that is not JSON
...-garbage-html500             500 with 2 MB of HTML
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import sys
import time
import zlib
from collections.abc import AsyncIterable, AsyncIterator, Callable, Mapping
from typing import Any

import brotli
import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

if sys.version_info >= (3, 14):  # pragma: no cover - the stdlib has it from 3.14
    from compression.zstd import ZstdCompressor
else:
    from backports.zstd import ZstdCompressor

ENCODINGS = ("gzip", "deflate", "br", "zstd")


class _Encoder:
    """Incremental compression: `chunk` may be sent as is (flushed), `finish` ends the body."""

    def __init__(self, encoding: str) -> None:
        self.chunk: Callable[[bytes], bytes]
        self.finish: Callable[[], bytes]
        if encoding in ("gzip", "deflate"):
            z = zlib.compressobj(wbits=31 if encoding == "gzip" else 15)
            self.chunk = lambda data: z.compress(data) + z.flush(zlib.Z_SYNC_FLUSH)
            self.finish = z.flush
        elif encoding == "br":
            b = brotli.Compressor()
            self.chunk = lambda data: b.process(data) + b.flush()
            self.finish = b.finish
        elif encoding == "zstd":
            c = ZstdCompressor()
            self.chunk = lambda data: c.compress(data, ZstdCompressor.FLUSH_BLOCK)
            self.finish = lambda: c.flush(ZstdCompressor.FLUSH_FRAME)
        else:
            raise ValueError(f"unknown encoding {encoding!r}; one of {', '.join(ENCODINGS)}")


def accepts(accept_encoding: str | None, encoding: str) -> bool:
    """Whether an Accept-Encoding header value lists the encoding (q=0 means refused)."""
    for item in (accept_encoding or "").split(","):
        name, _, params = item.strip().partition(";")
        if name.strip().lower() in (encoding, "*"):
            return params.replace(" ", "") not in ("q=0", "q=0.0", "q=0.00", "q=0.000")
    return False


def compress(data: bytes, encoding: str) -> bytes:
    encoder = _Encoder(encoding)
    return encoder.chunk(data) + encoder.finish()


async def _compressed(chunks: AsyncIterable[Any], encoding: str) -> AsyncIterator[bytes]:
    encoder = _Encoder(encoding)
    async for chunk in chunks:
        yield encoder.chunk(chunk if isinstance(chunk, bytes) else str(chunk).encode())
    yield encoder.finish()


def compressed(response: Response, encoding: str, accept_encoding: str | None) -> Response:
    """The response compressed with `encoding` when the client accepts it (as providers do)."""
    if not accepts(accept_encoding, encoding):
        return response
    response.headers["vary"] = "Accept-Encoding"
    if isinstance(response, StreamingResponse):
        response.body_iterator = _compressed(response.body_iterator, encoding)
        response.headers["content-encoding"] = encoding
        return response
    body = compress(bytes(response.body), encoding)
    headers = {
        k: v for k, v in response.headers.items() if k not in ("content-length", "content-type")
    }
    headers["content-encoding"] = encoding
    return Response(body, response.status_code, headers, response.media_type)


# -- headers, rate limits, odd usage and garbage: model-name suffixes like the rest --------------

ODD_USAGE: dict[str, Any] = {"negative": -5, "string": "12", "list": [], "huge": 2**31}
GARBAGE = ("html", "truncated", "sse", "huge", "html500")
_SUFFIX = re.compile(r"-(usage|garbage)-([a-z0-9]+)$")


def fault(model: str) -> tuple[str, str] | None:
    """`...-usage-<negative|string|list|huge>` or `...-garbage-<kind>`, else None."""
    match = _SUFFIX.search(model)
    if match is None:
        return None
    kind, name = match[1], match[2]
    known = ODD_USAGE if kind == "usage" else GARBAGE
    return (kind, name) if name in known else None


def with_provider_headers(
    response: Response, started: float, request: Mapping[str, str] | None = None
) -> Response:
    """What OpenAI sends with every answer: a request id, timing and rate-limit headers, and
    the organization and project the request named."""
    for name in ("openai-organization", "openai-project"):
        if request and request.get(name):
            response.headers[name] = request[name]
    limited = response.status_code == 429
    response.headers["x-request-id"] = "req_" + os.urandom(16).hex()
    response.headers["openai-processing-ms"] = str(int((time.perf_counter() - started) * 1000))
    response.headers["x-ratelimit-limit-requests"] = "10000"
    response.headers["x-ratelimit-remaining-requests"] = "0" if limited else "9999"
    response.headers["x-ratelimit-reset-requests"] = "1s" if limited else "6ms"
    if limited:
        response.headers["retry-after"] = "1"
    return response


def _with_usage(payload: Any, odd: Any) -> Any:
    if isinstance(payload, dict) and isinstance(payload.get("usage"), dict):
        payload["usage"] = {**payload["usage"], "prompt_tokens": odd, "total_tokens": odd}
    return payload


async def _odd_stream(chunks: AsyncIterable[Any], odd: Any) -> AsyncIterator[bytes]:
    async for chunk in chunks:
        data = chunk if isinstance(chunk, bytes) else str(chunk).encode()
        if data.startswith(b"data: {") and b'"usage":{' in data:
            data = b"data: " + orjson.dumps(_with_usage(orjson.loads(data[6:]), odd)) + b"\n\n"
        yield data


async def _bad_stream(chunks: AsyncIterable[Any]) -> AsyncIterator[bytes]:
    sent = 0
    async for chunk in chunks:
        yield chunk if isinstance(chunk, bytes) else str(chunk).encode()
        sent += 1
        if sent == 2:
            yield b'data: {"id": "chatcmpl-x", "choices": [{"delta": {"content": "unfinished\n\n'


def with_fault(response: Response, kind: str, name: str) -> Response:
    """The answer with odd usage, or replaced by garbage, as a faulty provider sends it."""
    if response.status_code != 200:
        return response
    streaming = isinstance(response, StreamingResponse)
    if kind == "usage":
        odd = ODD_USAGE[name]
        if isinstance(response, StreamingResponse):
            response.body_iterator = _odd_stream(response.body_iterator, odd)
            return response
        body = orjson.dumps(_with_usage(orjson.loads(response.body), odd))
        return Response(body, media_type="application/json")
    if name == "sse" and isinstance(response, StreamingResponse):
        response.body_iterator = _bad_stream(response.body_iterator)
        return response
    if name == "truncated" and not streaming:
        body = bytes(response.body)
        return Response(body[: len(body) // 2], media_type="application/json")
    if name == "huge":
        return Response(b"x" * (10 * 1024 * 1024), media_type="text/plain")
    if name == "html500":
        page = b"<html><body>" + b"<p>upstream exploded</p>" * 87_000 + b"</body></html>"
        return Response(page, status_code=500, media_type="text/html")
    return Response(b"<html><body>Bad gateway</body></html>", media_type="text/html")


def as_provider(
    response: Response, model: str, request: Mapping[str, str], started: float
) -> Response:
    """The stand-in's answer as a real provider would send it, faults by model-name suffix."""
    found = fault(model)
    if found is not None:
        response = with_fault(response, *found)
    encoding = next((e for e in ENCODINGS if model.endswith(f"-{e}")), None)
    if encoding is not None:
        response = compressed(response, encoding, request.get("accept-encoding"))
    return with_provider_headers(response, started, request)


# -- the rest of the API surface, enough to see a gateway pass it through unchanged ------------


def _vector(text: str, dimensions: int = 8) -> list[float]:
    digest = hashlib.sha256(text.encode()).digest()
    return [round(b / 255 - 0.5, 6) for b in digest[:dimensions]]


async def embeddings(request: Request) -> Response:
    body = orjson.loads(await request.body())
    inputs = body.get("input")
    texts = [inputs] if isinstance(inputs, str) else [str(i) for i in inputs or []]
    data = [
        {"object": "embedding", "index": i, "embedding": _vector(t)} for i, t in enumerate(texts)
    ]
    tokens = sum(max(1, len(t) // 4) for t in texts)
    usage = {"prompt_tokens": tokens, "total_tokens": tokens}
    payload = {"object": "list", "data": data, "model": body.get("model"), "usage": usage}
    return Response(orjson.dumps(payload), media_type="application/json")


async def moderations(request: Request) -> Response:
    body = orjson.loads(await request.body())
    result = {"flagged": False, "categories": {"violence": False}}
    payload = {"id": "modr-1", "model": body.get("model") or "omni-moderation-latest"}
    return Response(orjson.dumps({**payload, "results": [result]}), media_type="application/json")


async def model(request: Request) -> Response:
    payload = {"id": request.path_params["model"], "object": "model", "owned_by": "teacher"}
    return Response(orjson.dumps(payload), media_type="application/json")


async def upload(request: Request) -> Response:
    """What arrived, so a test can see a multipart body was not touched on the way."""
    raw = await request.body()
    payload = {
        "object": "file",
        "bytes": len(raw),
        "sha256": hashlib.sha256(raw).hexdigest(),
        "content_type": request.headers.get("content-type"),
        "query": request.url.query,
        "headers": dict(request.headers),
    }
    return Response(orjson.dumps(payload), media_type="application/json")


async def file_content(request: Request) -> Response:
    """A binary download sent in pieces (64 KiB of bytes 0..255 in 16 chunks)."""

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(16):
            yield bytes(range(256)) * 16
            await asyncio.sleep(0)

    return StreamingResponse(chunks(), media_type="application/octet-stream")


def api_routes() -> list[Route]:
    return [
        Route("/v1/embeddings", embeddings, methods=["POST"]),
        Route("/v1/moderations", moderations, methods=["POST"]),
        Route("/v1/models/{model:path}", model, methods=["GET"]),
        Route("/v1/files", upload, methods=["POST"]),
        Route("/v1/files/{file_id}/content", file_content, methods=["GET"]),
    ]
