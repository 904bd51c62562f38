"""Streaming time to first byte: sequential streamed requests, direct and through the gateway.

The two targets are measured alternately, request by request, so that the noise of a shared
machine falls on both alike. TTFT is from just before the request is written to the first
body byte that carries an SSE `data:` line.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass

import aiohttp


@dataclass(frozen=True)
class TTFTResult:
    samples_ms: list[float]
    errors: int

    @property
    def count(self) -> int:
        return len(self.samples_ms)

    def percentile(self, q: float) -> float:
        return percentile(self.samples_ms, q)


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of values; NaN for none."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(q / 100 * len(ordered))))
    return ordered[rank - 1]


async def _first_data(
    session: aiohttp.ClientSession, url: str, body: bytes, auth: str | None = None
) -> float:
    headers = {"Content-Type": "application/json"}
    if auth:  # LiteLLM's proxy refuses requests without its master key
        headers["Authorization"] = f"Bearer {auth}"
    start = time.perf_counter()
    async with session.post(url, data=body, headers=headers) as resp:
        if resp.status != 200:
            raise RuntimeError(f"{url} answered {resp.status}: {await resp.text()}")
        seen = b""
        while b"data:" not in seen:
            chunk = await resp.content.readany()
            if not chunk:
                raise RuntimeError(f"{url} ended its stream before any data: line")
            seen += chunk
        elapsed = (time.perf_counter() - start) * 1000
        await resp.read()  # drain the stream so the connection is reused
    return elapsed


async def _measure(
    urls: list[str], body: bytes, n: int, warmup: int, auth: str | None = None
) -> list[TTFTResult]:
    samples: list[list[float]] = [[] for _ in urls]
    errors = [0 for _ in urls]
    sessions = [
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1), auto_decompress=False)
        for _ in urls
    ]
    try:
        for i in range(warmup + n):
            for j, (session, url) in enumerate(zip(sessions, urls, strict=True)):
                try:
                    ms = await _first_data(session, url, body, auth)
                except (aiohttp.ClientError, RuntimeError):
                    errors[j] += 1
                    continue
                if i >= warmup:
                    samples[j].append(ms)
    finally:
        for session in sessions:
            await session.close()
    return [TTFTResult(s, e) for s, e in zip(samples, errors, strict=True)]


def measure_ttft(
    urls: list[str], body: bytes, *, n: int, warmup: int = 20, auth: str | None = None
) -> list[TTFTResult]:
    """TTFT samples for each url: n sequential streamed requests each, interleaved.

    `auth` is sent as a bearer token to every url (servers that do not check it ignore it).
    """
    return asyncio.run(_measure(urls, body, n, warmup, auth))
