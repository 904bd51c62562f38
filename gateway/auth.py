"""Client API keys: who may call the gateway, how fast, and with how large a body.

Keys are configured by their SHA-256 (never in plain text at rest), or read from an
environment variable and hashed at start; a presented key is hashed and compared with every
configured digest in constant time. Each key has its own token bucket.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from gateway.config import ConfigError, ServerConfig
from gateway.errors import AuthenticationFailed, RateLimited


def key_digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def env_keys(value: str) -> list[str]:
    """The usable keys in a comma-separated variable: blanks and padding dropped."""
    return [k for k in (part.strip() for part in value.split(",")) if k]


@dataclass
class TokenBucket:
    """`rate` tokens a second, at most `burst` saved up (pure: the clock is passed in)."""

    rate: float
    burst: float
    tokens: float = -1.0
    updated: float = 0.0

    def take(self, now: float) -> float:
        """0 when a request may pass now, else the seconds until one may."""
        if self.tokens < 0:
            self.tokens, self.updated = self.burst, now
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate


@dataclass
class ClientKey:
    name: str
    digest: str
    max_request_bytes: int | None = None
    bucket: TokenBucket | None = None


@dataclass
class Authenticator:
    """Checks `Authorization: Bearer <key>`; with no keys configured, everyone is let in."""

    keys: list[ClientKey] = field(default_factory=list)
    clock: Callable[[], float] = time.monotonic

    @classmethod
    def from_config(
        cls, server: ServerConfig, environ: Mapping[str, str] | None = None
    ) -> Authenticator:
        env = os.environ if environ is None else environ
        keys = []
        for spec in server.api_keys:
            bucket = (
                TokenBucket(spec.rate_per_s, spec.burst or max(1.0, spec.rate_per_s))
                if spec.rate_per_s
                else None
            )
            keys.append(ClientKey(spec.name, spec.sha256.lower(), spec.max_request_bytes, bucket))
        if server.api_keys_env and server.api_keys_env in env:
            name = server.api_keys_env
            plain = env_keys(env[name])
            if not plain:
                # A set but blank variable would otherwise switch client auth off.
                raise ConfigError(
                    f"server.api_keys_env: ${name} is set but holds no key "
                    f"({env[name]!r}); put comma-separated client keys in it (see "
                    f"`distill keys new`), or unset it and remove server.api_keys_env"
                )
            keys += [ClientKey(f"{name.lower()}-{i}", key_digest(k)) for i, k in enumerate(plain)]
        return cls(keys)

    @property
    def enabled(self) -> bool:
        return bool(self.keys)

    def find(self, token: str) -> ClientKey | None:
        """The configured key matching a presented one, or None (no side effects)."""
        presented = key_digest(token.strip())
        found = None
        for key in self.keys:  # compare with every key, so timing says nothing about which
            if hmac.compare_digest(presented, key.digest):
                found = key
        return found

    def body_limit(self, authorization: str | None, default: int) -> int:
        """The request body limit for a caller: its key's own, else the server's."""
        scheme, _, token = (authorization or "").partition(" ")
        key = self.find(token) if self.keys and scheme.lower() == "bearer" and token else None
        return (key and key.max_request_bytes) or default

    def check(self, authorization: str | None) -> ClientKey | None:
        """The caller's key (None when auth is off); raises 401 or 429."""
        if not self.keys:
            return None
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise AuthenticationFailed(
                "Missing API key: send 'Authorization: Bearer <key>' (the key your gateway "
                "operator issued)",
                code="missing_api_key",
            )
        found = self.find(token)
        if found is None:
            raise AuthenticationFailed("Incorrect API key provided", code="invalid_api_key")
        if found.bucket is not None:
            wait = found.bucket.take(self.clock())
            if wait > 0:
                raise RateLimited(
                    f"Rate limit reached for key {found.name!r}; retry in {wait:.2f}s",
                    code="rate_limit_exceeded",
                    retry_after=math.ceil(wait),
                )
        return found
