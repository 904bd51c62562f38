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
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass

import aiohttp

from gateway.config import UpstreamConfig
from gateway.errors import GatewayError, UpstreamTimeout, UpstreamUnavailable
from gateway.headers import request_headers, response_headers


@dataclass
class UpstreamReply:
    status: int
    content_type: str
    response: aiohttp.ClientResponse
    name: str = ""
    idle_s: float | None = None  # streams: the longest wait between two chunks
    max_bytes: int = 256 * 1024 * 1024  # `read()`: the largest body held in memory

    @property
    def headers(self) -> dict[str, str]:
        """The upstream's response headers the client gets back (see gateway/headers.py)."""
        return response_headers(self.response.headers.items())

    async def read(self) -> bytes:
        """The whole (decoded) body, up to `max_bytes`: a larger one is a 502, not a full heap."""
        declared = self.response.content_length
        try:
            if declared is not None and declared > self.max_bytes:
                raise self._too_large()
            chunks, size = [], 0
            async for chunk in self.response.content.iter_any():
                size += len(chunk)
                if size > self.max_bytes:
                    raise self._too_large()
                chunks.append(chunk)
            return b"".join(chunks)
        except Exception as exc:
            raise map_error(exc, self.name) from exc
        finally:
            self.response.release()

    def _too_large(self) -> UpstreamUnavailable:
        return UpstreamUnavailable(
            f"upstream {self.name!r} answered more than {self.max_bytes} bytes "
            f"(upstreams.{self.name}.max_response_bytes)",
            code="upstream_response_too_large",
        )

    async def iter_chunks(self) -> AsyncGenerator[bytes]:
        """The body as it comes, within the idle timeout and the deadline (UpstreamTimeout).

        Both are aiohttp's own timers (sock_read, total), set in `Upstream.send`: a timer per
        chunk of our own (`asyncio.timeout`) cost ~18 µs a chunk on this machine.
        """
        try:
            async for chunk in self.response.content.iter_any():
                yield chunk
        except aiohttp.ServerTimeoutError:
            raise self._timeout(by_deadline=False) from None
        except TimeoutError:  # the total timer: the stream's deadline
            raise self._timeout(by_deadline=True) from None
        except Exception as exc:
            raise map_error(exc, self.name) from exc
        finally:
            self.response.release()

    def _timeout(self, by_deadline: bool) -> UpstreamTimeout:
        who = f"upstream {self.name!r}"
        if by_deadline:
            return UpstreamTimeout(
                f"{who}: the stream ran past its deadline "
                f"(upstreams.{self.name}.stream_deadline_s)",
                code="upstream_stream_deadline",
            )
        return UpstreamTimeout(
            f"{who} sent nothing for {self.idle_s:g} s mid-stream "
            f"(upstreams.{self.name}.stream_idle_timeout_s)",
            code="upstream_stream_idle",
        )


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

    def headers(
        self,
        client_authorization: str | None,
        client_headers: Mapping[str, str] | None = None,
        content_type: str | None = "application/json",
    ) -> dict[str, str]:
        headers = request_headers(client_headers or {}, self.config.forward_headers)
        if content_type:
            headers["Content-Type"] = content_type
        # The upstream's own key when configured; otherwise the app's key passes through.
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        elif client_authorization:
            headers["Authorization"] = client_authorization
        return headers

    async def post(
        self,
        path: str,
        body: bytes,
        *,
        stream: bool,
        client_authorization: str | None = None,
        client_headers: Mapping[str, str] | None = None,
    ) -> UpstreamReply:
        """Send a JSON request; returns once the status line and headers are in."""
        headers = self.headers(client_authorization, client_headers)
        return await self.send("POST", path, body, headers=headers, stream=stream)

    async def send(
        self,
        method: str,
        path: str,
        body: bytes | None,
        *,
        headers: Mapping[str, str],
        stream: bool,
        query: str = "",
    ) -> UpstreamReply:
        """Any request to `base_url + path`; a stream's body is read with `iter_chunks`."""
        config = self.config
        timeout = aiohttp.ClientTimeout(
            total=config.stream_deadline_s if stream else config.timeout_s,
            sock_connect=config.connect_timeout_s,
            # a stream's headers and each gap between its chunks
            sock_read=config.stream_idle_s if stream else config.timeout_s,
        )
        url = f"{config.base_url}{path}" + (f"?{query}" if query else "")
        try:
            response = await self.session().request(
                method, url, data=body, headers=headers, timeout=timeout
            )
        except Exception as exc:
            raise map_error(exc, self.name) from exc
        return UpstreamReply(
            response.status,
            response.headers.get("Content-Type", "application/json"),
            response,
            self.name,
            idle_s=config.stream_idle_s if stream else None,
            max_bytes=config.max_response_bytes,
        )


def build_upstreams(
    configs: Mapping[str, UpstreamConfig], environ: Mapping[str, str] | None = None
) -> dict[str, Upstream]:
    env = os.environ if environ is None else environ
    return {name: Upstream(name, cfg, env) for name, cfg in configs.items()}
