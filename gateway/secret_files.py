"""Secrets as files: `NAME_FILE=/run/secrets/x` provides NAME, as Docker and Kubernetes mount them.

distill.yaml names secrets by environment variable (`admin_token_env`, `api_key_env`, ...);
each such variable that is unset but has a `_FILE` twin is read from that file at start, so
secrets need never sit in the environment the container runtime shows (`docker inspect`).
Only the variables named as secrets are read: other `*_FILE` variables (SSL_CERT_FILE, ...)
are not secrets and are left alone.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, MutableMapping

from gateway.config import ConfigError, DistillConfig

SUFFIX = "_FILE"
# Read by CLI commands before any config is loaded (rollout/adapters --admin-token, --store;
# DISTILL_STORE: a fleet store URL holds the PostgreSQL password).
CLI_SECRETS = ("DISTILL_ADMIN_TOKEN", "DISTILL_POSTGRES_DSN", "DISTILL_STORE")


class SecretFileError(ConfigError):
    """A `NAME_FILE` variable points at a file that cannot be read."""


def secret_names(config: DistillConfig) -> list[str]:
    """Every environment variable the config names as holding a secret."""
    names = [config.server.admin_token_env, config.server.api_keys_env]
    names.append(config.capture.pseudonym_key_env)
    names += [u.api_key_env for u in config.upstreams.values()]
    if config.store.format == "fleet":
        names.append(config.store.postgres_dsn_env)
    return sorted({n for n in names if n})


def load_secret_files(
    names: Iterable[str], environ: MutableMapping[str, str] | None = None
) -> list[str]:
    """Set each NAME from the file NAME_FILE names, unless NAME is set; return those loaded.

    One trailing newline is dropped (`echo secret > file` writes one); an explicit NAME wins.
    """
    env = os.environ if environ is None else environ
    loaded = []
    for name in names:
        path = env.get(name + SUFFIX)
        if not path or name in env:
            continue
        try:
            with open(path, encoding="utf-8") as f:
                value = f.read()
        except OSError as exc:
            raise SecretFileError(
                f"{name}{SUFFIX}={path}: cannot read the secret file ({exc.strerror}); mount "
                f"the secret there or unset {name}{SUFFIX}"
            ) from None
        env[name] = value.removesuffix("\n")
        loaded.append(name)
    return loaded
