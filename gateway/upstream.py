"""Talking to upstreams (teacher APIs, vLLM): pooled aiohttp sessions, errors mapped once.

aiohttp is the hot-path client by measurement (see bench/README.md): on 2 cores a FastAPI
forwarder reaches ~8x the request rate with it than with httpx. httpx serves the CLI side.

Answers are decoded here (gzip, deflate, br, zstd: aiohttp with Brotli and backports.zstd
installed) so the log always holds JSON and the client gets plain bytes; the encoding and
length headers are recomputed on the way out (gateway/headers.py).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass

import aiohttp

from gateway.config import UpstreamConfig
from gateway.errors import GatewayError, UpstreamTimeout, UpstreamUnavailable


@dataclass
class UpstreamReply:
    status: int
    content_type: str
    response: aiohttp.ClientResponse

    async def read(self) -> bytes:
        try:
            return await self.response.read()
        except Exception as exc:
            raise map_error(exc, "") from exc
        finally:
            self.response.release()

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self.response.content.iter_any():
                yield chunk
        finally:
            self.response.release()


def map_error(exc: BaseException, name: str) -> GatewayError:
    """The one translation of client-library errors into the gateway's own."""
    who = f"upstream {name!r}" if name else "the upstream"
    if isinstance(exc, GatewayError):
        return exc
    if isinstance(exc, asyncio.TimeoutError | aiohttp.ServerTimeoutError):
        return UpstreamTimeout(f"{who} did not answer in time", code="upstream_timeout")
    if isinstance(exc, aiohttp.ClientConnectorError):
        return UpstreamUnavailable(
            f"{who} is unreachable ({exc.os_error}); check upstreams.{name}.base_url",
            code="upstream_unreachable",
        )
    if isinstance(exc, aiohttp.ClientPayloadError | aiohttp.ServerDisconnectedError):
        return UpstreamUnavailable(
            f"{who} closed the connection mid-response", code="upstream_disconnected"
        )
    return UpstreamUnavailable(f"{who} failed: {exc!r}", code="upstream_error")


class Upstream:
    """One configured upstream: its base URL, credentials and connection pool."""

    def __init__(self, name: str, config: UpstreamConfig, environ: Mapping[str, str]) -> None:
        self.name = name
        self.config = config
        self.api_key = environ.get(config.api_key_env) if config.api_key_env else None
        self._session: aiohttp.ClientSession | None = None

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300, keepalive_timeout=30)
            self._session = aiohttp.ClientSession(
                connector=connector, auto_decompress=True, skip_auto_headers=("User-Agent",)
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    def headers(self, client_authorization: str | None) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        # The upstream's own key when configured; otherwise the app's key passes through.
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        elif client_authorization:
            headers["Authorization"] = client_authorization
        return headers

    async def post(
        self, path: str, body: bytes, *, stream: bool, client_authorization: str | None = None
    ) -> UpstreamReply:
        """Send a request; returns once the status line and headers are in."""
        timeout = aiohttp.ClientTimeout(
            total=None if stream else self.config.timeout_s,
            sock_connect=self.config.connect_timeout_s,
            sock_read=self.config.timeout_s,
        )
        try:
            response = await self.session().post(
                f"{self.config.base_url}{path}",
                data=body,
                headers=self.headers(client_authorization),
                timeout=timeout,
            )
        except Exception as exc:
            raise map_error(exc, self.name) from exc
        return UpstreamReply(
            response.status, response.headers.get("Content-Type", "application/json"), response
        )


def build_upstreams(
    configs: Mapping[str, UpstreamConfig], environ: Mapping[str, str] | None = None
) -> dict[str, Upstream]:
    env = os.environ if environ is None else environ
    return {name: Upstream(name, cfg, env) for name, cfg in configs.items()}
