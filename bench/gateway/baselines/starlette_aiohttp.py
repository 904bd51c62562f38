"""A bare Starlette forwarder over a pooled aiohttp session: no logging, no routing, no metrics.

Run: UPSTREAM_URL=http://127.0.0.1:9000/v1 uvicorn bench.gateway.baselines.starlette_aiohttp:app

An event stream is relayed chunk by chunk with Starlette's `StreamingResponse`, as a
streaming forwarder must (buffering it would hold every token until the last); anything
else is read whole and returned.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

UPSTREAM_URL = os.environ.get("UPSTREAM_URL", "http://127.0.0.1:9000/v1")
session: aiohttp.ClientSession | None = None


async def chat_completions(request: Request) -> Response:
    assert session is not None
    body = await request.body()
    headers = {"Content-Type": "application/json"}
    r = await session.post(f"{UPSTREAM_URL}/chat/completions", data=body, headers=headers)
    if r.content_type == "text/event-stream":

        async def relay() -> AsyncIterator[bytes]:
            try:
                async for chunk in r.content.iter_any():
                    yield chunk
            finally:
                r.release()

        return StreamingResponse(relay(), status_code=r.status, media_type=r.content_type)
    try:
        data = await r.read()
    finally:
        r.release()
    return Response(data, status_code=r.status, media_type=r.content_type)


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    global session
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    yield
    await session.close()


app = Starlette(
    routes=[Route("/v1/chat/completions", chat_completions, methods=["POST"])], lifespan=lifespan
)
