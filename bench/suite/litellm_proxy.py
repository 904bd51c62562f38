"""LiteLLM's proxy as a comparison target: installed on first use into its own venv, then run.

Its own environment (`.cache/bench-litellm`, gitignored) keeps its pins (pydantic, fastapi,
openai, ...) away from Distill's. It forwards to the same nginx upstream as an
OpenAI-compatible model.
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

import yaml

from bench.gateway.procs import Server, free_port

REPO = Path(__file__).resolve().parents[2]
VENV = REPO / ".cache" / "bench-litellm"
MASTER_KEY = "sk-distill-bench"  # LiteLLM refuses to start its proxy without one
PACKAGE = "litellm[proxy]"


def litellm_binary(venv_dir: Path = VENV) -> Path:
    return venv_dir / "bin" / "litellm"


def ensure_installed(venv_dir: Path = VENV) -> Path:
    """Create the venv and `pip install litellm[proxy]` unless done already; the CLI's path."""
    binary = litellm_binary(venv_dir)
    if binary.is_file():
        return binary
    print(f"installing {PACKAGE} into {venv_dir} (first use, ~2 min) ...", file=sys.stderr)
    venv.create(venv_dir, with_pip=True)
    subprocess.run(
        [str(venv_dir / "bin" / "pip"), "install", "--quiet", PACKAGE],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    if not binary.is_file():
        raise RuntimeError(f"{PACKAGE} installed but {binary} is missing")
    return binary


def proxy_config(models: dict[str, str]) -> dict[str, object]:
    """LiteLLM config: each public model name forwards to an OpenAI-compatible base URL."""
    return {
        "model_list": [
            {
                "model_name": name,
                "litellm_params": {"model": "openai/gpt-4o", "api_base": base, "api_key": "none"},
            }
            for name, base in models.items()
        ],
        "general_settings": {"master_key": MASTER_KEY},
        "litellm_settings": {"drop_params": True, "telemetry": False},
    }


def litellm_server(models: dict[str, str], workdir: Path, cpus: str | None) -> Server:
    """The proxy (one worker, as the other targets) on a free port; `with` starts it."""
    binary = ensure_installed()
    config = workdir / "litellm.yaml"
    config.write_text(yaml.safe_dump(proxy_config(models)))
    port = free_port()
    env = {
        "LITELLM_MASTER_KEY": MASTER_KEY,
        "LITELLM_LOG": "ERROR",
        "LITELLM_TELEMETRY": "False",
        "NO_DOCS": "True",
        "PATH": f"{binary.parent}:{os.environ.get('PATH', '')}",
    }
    cmd = [str(binary), "--config", str(config), "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--num_workers", "1"]
    server = Server(cmd, port=port, ready_path="/health/liveliness", cpus=cpus, env=env)
    return server
