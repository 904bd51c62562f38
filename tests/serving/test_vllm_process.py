"""The vLLM process helper: its command line, failure reports with the log tail, clean stop."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from trainer.serving.vllm_process import (
    VLLMServer,
    VLLMStartError,
    free_port,
    vllm_command,
    vllm_env,
)


def test_vllm_command_has_the_flags_the_cpu_build_needs() -> None:
    argv = vllm_command("/m/tiny", port=8123, lora_modules={"a1": "/ad/a1"})
    assert argv[:3] == [sys.executable, "-m", "vllm.entrypoints.openai.api_server"]
    pairs = {flag: argv[i + 1] for i, flag in enumerate(argv[:-1]) if flag.startswith("--")}
    assert pairs["--model"] == "/m/tiny"
    assert pairs["--served-model-name"] == "tiny"
    assert pairs["--max-lora-rank"] == "16" and pairs["--max-loras"] == "4"
    assert pairs["--dtype"] == "float32" and pairs["--max-model-len"] == "256"
    assert pairs["--host"] == "127.0.0.1" and pairs["--port"] == "8123"
    assert "--enable-lora" in argv
    assert argv[argv.index("--lora-modules") + 1] == "a1=/ad/a1"


@pytest.mark.parametrize(
    ("base", "key", "value"),
    [
        ({}, "VLLM_CPU_KVCACHE_SPACE", "1"),
        ({"VLLM_CPU_KVCACHE_SPACE": "4"}, "VLLM_CPU_KVCACHE_SPACE", "4"),
        ({}, "HF_HUB_OFFLINE", "1"),
        ({"VLLM_ALLOW_RUNTIME_LORA_UPDATING": "False"}, "VLLM_ALLOW_RUNTIME_LORA_UPDATING", "True"),
    ],
)
def test_vllm_env(base: dict[str, str], key: str, value: str) -> None:
    assert vllm_env(base)[key] == value


def _server(code: str, log: Path) -> VLLMServer:
    fh = log.open("wb")
    process = subprocess.Popen(
        [sys.executable, "-c", code], stdout=fh, stderr=subprocess.STDOUT, start_new_session=True
    )
    return VLLMServer(process, "127.0.0.1", free_port(), log, _log_file=fh)


def test_exit_before_ready_reports_the_log_tail(tmp_path: Path) -> None:
    server = _server(
        "print('loading'); print('ValueError: bad model'); raise SystemExit(3)", tmp_path / "l"
    )
    with pytest.raises(VLLMStartError, match=r"(?s)exited with code 3.*ValueError: bad model"):
        server.wait_ready(timeout=30, poll=0.1)
    server.stop()


def test_not_healthy_in_time_is_reported_and_stop_ends_the_group(tmp_path: Path) -> None:
    server = _server(
        "import time; print('still starting', flush=True); time.sleep(60)", tmp_path / "l"
    )
    started = time.monotonic()
    with pytest.raises(VLLMStartError, match=r"(?s)not healthy after 1 s.*still starting"):
        server.wait_ready(timeout=1, poll=0.1)
    assert time.monotonic() - started < 10
    server.stop(timeout=5)
    assert server.process.returncode is not None
