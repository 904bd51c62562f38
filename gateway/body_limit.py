"""One request body limit for every endpoint: the caller's key's own, else the server's.

The two proxy endpoints read their bodies themselves under the same rule (gateway.proxy);
this middleware holds every other route (feedback, admin, console) to it, before any of
them parses a byte.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.auth import Authenticator
from gateway.errors import PayloadTooLarge, error_json


def too_large(limit: int, declared: int | None = None) -> PayloadTooLarge:
    size = f"is {declared} bytes" if declared is not None else "exceeds the limit"
    return PayloadTooLarge(
        f"The request body {size}; the limit is {limit} bytes (server.max_request_bytes, "
        "or the API key's own max_request_bytes)",
        code="request_too_large",
    )


async def refuse(send: Send, error: PayloadTooLarge) -> None:
    body = error_json(error)
    await send(
        {
            "type": "http.response.start",
            "status": error.status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class BodyLimit:
    """Pure ASGI middleware: read the whole body up to the limit, then hand it on (or 413)."""

    def __init__(self, app: ASGIApp, *, auth: Authenticator, default: int) -> None:
        self.app = app
        self.auth = auth
        self.default = default

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        authorization = headers.get(b"authorization", b"").decode("latin-1")
        limit = self.auth.body_limit(authorization, self.default)
        declared = headers.get(b"content-length", b"")
        if declared.isdigit() and int(declared) > limit:
            await refuse(send, too_large(limit, int(declared)))
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away mid-body
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await refuse(send, too_large(limit))
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: wait for the disconnect, as Starlette does

        await self.app(scope, replay, send)
