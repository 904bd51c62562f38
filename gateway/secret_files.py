"""Secrets as files: `NAME_FILE=/run/secrets/x` provides NAME, as Docker and Kubernetes mount them.

distill.yaml names secrets by environment variable (`admin_token_env`, `api_key_env`, ...);
a variable that is unset but has a `_FILE` twin is read from that file at start, so secrets
need never sit in the process environment of the container runtime or in `docker inspect`.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping

SUFFIX = "_FILE"


class SecretFileError(RuntimeError):
    """A `NAME_FILE` variable points at a file that cannot be read."""


def load_secret_files(environ: MutableMapping[str, str] | None = None) -> list[str]:
    """Set NAME from the file NAME_FILE names, for every NAME not already set; return the names.

    One trailing newline is dropped (`echo secret > file` writes one); an explicit NAME wins.
    """
    env = os.environ if environ is None else environ
    loaded = []
    for key, path in sorted(env.items()):
        name = key[: -len(SUFFIX)]
        if not key.endswith(SUFFIX) or not name or name in env:
            continue
        try:
            with open(path, encoding="utf-8") as f:
                value = f.read()
        except OSError as exc:
            raise SecretFileError(
                f"{key}={path}: cannot read the secret file ({exc.strerror}); mount the secret "
                f"there or unset {key}"
            ) from None
        env[name] = value.removesuffix("\n")
        loaded.append(name)
    return loaded
