"""Decide whether a --base-model string is a local directory or a Hugging Face hub id."""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from trainer.training.data import TrainingInputError

# owner/name as the hub spells it: no leading dot or slash, exactly one slash.
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$|^[A-Za-z0-9][\w.-]*$")


def base_model_kind(spec: str) -> str:
    """'path' for an existing directory, 'hub' for a plausible hub id, else 'missing'."""
    if Path(spec).expanduser().is_dir():
        return "path"
    if spec.startswith((".", "/", "~")) or "\\" in spec or ".." in spec:
        return "missing"
    return "hub" if _HUB_ID.match(spec) else "missing"


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hugging Face hub (or HF_ENDPOINT) answers a TCP connect within `timeout`."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        return False
    host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname
    try:
        with socket.create_connection((host or "huggingface.co", 443), timeout=timeout):
            return True
    except OSError:
        return False


def hub_cached(repo_id: str) -> bool:
    """Whether the model's config.json is in the local Hugging Face cache."""
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(repo_id, "config.json"), str)


@dataclass(frozen=True)
class BaseModelSource:
    """What to pass to from_pretrained, and whether to stay off the network."""

    name: str
    local_files_only: bool


def resolve_base_model(
    spec: str,
    *,
    reachable: Callable[[], bool] = hub_reachable,
    cached: Callable[[str], bool] = hub_cached,
) -> BaseModelSource:
    """A local directory (absolute) or hub id to load; TrainingInputError says what is wrong."""
    kind = base_model_kind(spec)
    if kind == "path":
        path = Path(spec).expanduser().resolve()
        if not (path / "config.json").is_file():
            raise TrainingInputError(
                f"base model directory {path} has no config.json; point --base-model at a "
                "directory written by save_pretrained (e.g. `distill model tiny --out DIR`)"
            )
        return BaseModelSource(str(path), local_files_only=True)
    if kind == "missing":
        raise TrainingInputError(
            f"base model path {spec} does not exist; pass an existing model directory "
            "(build one offline with `distill model tiny --out DIR`) or a hub id like org/name"
        )
    # A hub id: fail fast when offline instead of waiting on a minute of retries.
    if reachable():
        return BaseModelSource(spec, local_files_only=False)
    if cached(spec):
        return BaseModelSource(spec, local_files_only=True)
    raise TrainingInputError(offline_hint(spec))


def offline_hint(spec: str) -> str:
    """The message for a hub id that could not be loaded."""
    return (
        f"base model {spec!r} is not a local directory and is not in the Hugging Face cache, "
        "and the hub cannot be reached (this machine is offline): download the model where "
        "there is network (huggingface-cli download) and pass its local directory, or build "
        "the tiny model with `distill model tiny --out DIR`"
    )
