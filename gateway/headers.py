"""Headers: limits checked before anything else runs, and which headers cross the proxy.

uvicorn's httptools parser has no header limits, so `HeaderLimits` applies them. Forwarding
follows RFC 9110 §7.6.1: hop-by-hop headers (and those the `Connection` header lists) stop
here in both directions. Towards the upstream only an allow-list passes (OpenAI's own request
headers and trace context); the app's cookies, host and gateway headers never leave. Back to
the client everything passes except what the gateway recomputes (length, encoding: answers are
decoded) and what belongs to the teacher's host (cookies, HSTS, Alt-Svc, CORS).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

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


HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
# Recomputed by the gateway or its server (the body is decoded; uvicorn sets date/server).
RECOMPUTED = frozenset({"content-length", "content-encoding", "date", "server"})
# The teacher host's own business: meaningless or harmful on the gateway's host.
HOST_BOUND = frozenset({"set-cookie", "strict-transport-security", "alt-svc"})
FORWARDED_REQUEST_HEADERS = (
    "openai-organization",
    "openai-project",
    "openai-beta",
    "idempotency-key",
    "traceparent",
    "tracestate",
    "baggage",
)


_DROPPED = HOP_BY_HOP | RECOMPUTED | HOST_BOUND
_DROPPED_PREFIXES = ("x-distill-", "access-control-")


def _connection_listed(headers: Iterable[tuple[str, str]]) -> set[str]:
    return {
        token.strip().lower()
        for name, value in headers
        if name.lower() == "connection"
        for token in value.split(",")
        if token.strip()
    }


def response_headers(upstream: Iterable[tuple[str, str]]) -> dict[str, str]:
    """The upstream's response headers to pass back (repeated names joined with ", ")."""
    out: dict[str, str] = {}
    listed: list[str] = []  # the Connection header's names: hop-by-hop too
    for name, value in upstream:
        key = name.lower()
        if key in _DROPPED or key.startswith(_DROPPED_PREFIXES):
            if key == "connection":
                listed.append(value)
            continue
        out[key] = f"{out[key]}, {value}" if key in out else value
    for token in _connection_listed(("connection", v) for v in listed):
        out.pop(token, None)
    return out


def request_headers(client: Mapping[str, str], extra: Iterable[str] = ()) -> dict[str, str]:
    """The client's request headers to forward: the allow-list plus `extra` names."""
    names = (*FORWARDED_REQUEST_HEADERS, *(n.lower() for n in extra))
    dropped = HOP_BY_HOP | _connection_listed(client.items())
    return {n: client[n] for n in names if n not in dropped and client.get(n) is not None}
