"""What real providers do to an answer besides its content: compression (gzip/deflate/br/zstd)."""

from __future__ import annotations

import sys
import zlib
from collections.abc import AsyncIterable, AsyncIterator, Callable
from typing import Any

import brotli
from starlette.responses import Response, StreamingResponse

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
