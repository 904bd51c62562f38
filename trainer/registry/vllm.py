"""Load and unload adapters on a running vLLM server through its runtime LoRA API.

Errors from the layer below are translated once, here, into `ServingError` with advice:
server unreachable, runtime updates disabled, rank too large, wrong base model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from trainer.registry.validate import AdapterInfo


class ServingError(RuntimeError):
    """vLLM refused or could not be asked; the message says what to do."""


def api_root(server: str) -> str:
    """The server's base URL without a trailing `/v1`, so both spellings work."""
    root = server.rstrip("/")
    return root[: -len("/v1")] if root.endswith("/v1") else root


def _request(client: httpx.Client, method: str, url: str, **kwargs: Any) -> httpx.Response:
    try:
        return client.request(method, url, **kwargs)
    except httpx.TransportError as exc:
        raise ServingError(
            f"cannot reach vLLM at {url} ({exc.__class__.__name__}: {exc}); check --server and "
            "that the server is running"
        ) from exc


def _error_message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text.strip() or response.reason_phrase
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict) and "message" in error:
            return str(error["message"])
        if isinstance(body.get("detail"), str):
            return str(body["detail"])
    return str(body)


def list_models(client: httpx.Client, server: str) -> list[dict[str, Any]]:
    response = _request(client, "GET", f"{api_root(server)}/v1/models")
    if response.status_code != 200:
        raise ServingError(
            f"GET /v1/models on {server} failed ({response.status_code}): "
            + _error_message(response)
        )
    data = response.json().get("data", [])
    return [m for m in data if isinstance(m, dict)]


def _same_model(a: str, b: str) -> bool:
    if a == b:
        return True
    path_a, path_b = Path(a).expanduser(), Path(b).expanduser()
    if path_a.exists() and path_b.exists():
        return path_a.resolve() == path_b.resolve()
    return a.rstrip("/") == b.rstrip("/")


def base_model_mismatch(adapter_base: str, served: list[dict[str, Any]]) -> str | None:
    """Why the adapter's base is not the server's model; None when it matches or is unknown."""
    bases = [m for m in served if not m.get("parent")]
    if not bases:
        return None
    names = [str(m.get(key)) for m in bases for key in ("id", "root") if m.get(key)]
    if any(_same_model(adapter_base, name) for name in names):
        return None
    return (
        f"the adapter was trained on {adapter_base} but the server serves "
        f"{', '.join(sorted(set(names)))}; load it on a server started with that base model"
    )


def _advice(message: str) -> str:
    lowered = message.lower()
    if "rank" in lowered:
        return (
            " — the adapter's LoRA rank is above the server's --max-lora-rank: retrain with a "
            "smaller r or restart vLLM with a larger --max-lora-rank"
        )
    if "already" in lowered:
        return " — unload it first or load it under another name"
    return ""


def load_adapter(
    client: httpx.Client, server: str, name: str, adapter: AdapterInfo
) -> dict[str, Any]:
    """Load `adapter` as `name`, then return its `/v1/models` entry as confirmation."""
    mismatch = base_model_mismatch(adapter.base_model, list_models(client, server))
    if mismatch:
        raise ServingError(f"not loading {name}: {mismatch}")
    response = _request(
        client,
        "POST",
        f"{api_root(server)}/v1/load_lora_adapter",
        json={"lora_name": name, "lora_path": str(adapter.path)},
    )
    if response.status_code == 404 and "lora" not in response.text.lower():
        raise ServingError(
            f"{server} has no runtime LoRA API: start vLLM with --enable-lora and the environment "
            "variable VLLM_ALLOW_RUNTIME_LORA_UPDATING=True"
        )
    if response.status_code != 200:
        message = _error_message(response)
        raise ServingError(
            f"vLLM refused to load {name} ({response.status_code}): {message}{_advice(message)}"
        )
    for model in list_models(client, server):
        if model.get("id") == name and model.get("parent"):
            return model
    raise ServingError(
        f"vLLM accepted {name} but does not list it in /v1/models; check the server's log"
    )


def unload_adapter(client: httpx.Client, server: str, name: str) -> None:
    """Unload `name` and confirm `/v1/models` no longer lists it."""
    response = _request(
        client, "POST", f"{api_root(server)}/v1/unload_lora_adapter", json={"lora_name": name}
    )
    if response.status_code != 200:
        message = _error_message(response)
        raise ServingError(f"vLLM refused to unload {name} ({response.status_code}): {message}")
    if any(model.get("id") == name for model in list_models(client, server)):
        raise ServingError(f"vLLM still lists {name} after unloading it; check the server's log")
