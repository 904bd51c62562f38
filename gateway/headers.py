"""Header limits, checked before anything else runs: uvicorn's httptools parser has none."""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.errors import HeadersTooLarge, error_json

MAX_HEADERS = 100
MAX_HEADER_BYTES = 32 * 1024  # all names and values together


async def refused_headers(scope: Scope, send: Send) -> bool:
    """Answer 431 in OpenAI's error shape when the headers are too many or too large."""
    headers = scope["headers"]
    size = sum(len(k) + len(v) for k, v in headers)
    if len(headers) <= MAX_HEADERS and size <= MAX_HEADER_BYTES:
        return False
    body = error_json(
        HeadersTooLarge(
            f"request headers too large ({len(headers)} headers, {size} bytes; limits "
            f"{MAX_HEADERS} headers, {MAX_HEADER_BYTES} bytes)",
            code="headers_too_large",
        )
    )
    await send(
        {
            "type": "http.response.start",
            "status": 431,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
    return True


class HeaderLimits:
    """Pure ASGI middleware applying `refused_headers` to every HTTP request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and await refused_headers(scope, send):
            return
        await self.app(scope, receive, send)
