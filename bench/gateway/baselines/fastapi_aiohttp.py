"""A bare FastAPI forwarder over a pooled aiohttp session: no logging, no routing, no metrics.

Run: UPSTREAM_URL=http://127.0.0.1:9000/v1 uvicorn bench.gateway.baselines.fastapi_aiohttp:app
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
from fastapi import FastAPI, Request
from fastapi.responses import Response

UPSTREAM_URL = os.environ.get("UPSTREAM_URL", "http://127.0.0.1:9000/v1")
session: aiohttp.ClientSession | None = None


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    global session
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    yield
    await session.close()


app = FastAPI(lifespan=lifespan)


@app.post("/v1/chat/completions")
async def chat_completions(request: Request) -> Response:
    assert session is not None
    body = await request.body()
    headers = {"Content-Type": "application/json"}
    async with session.post(f"{UPSTREAM_URL}/chat/completions", data=body, headers=headers) as r:
        data = await r.read()
        return Response(data, status_code=r.status, media_type=r.content_type)
