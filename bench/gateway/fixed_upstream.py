"""A fast fixed-answer OpenAI upstream: nginx returning one canned chat completion (JSON or SSE).

nginx answers from its config (`return 200 '...'`), so the upstream costs a few microseconds per
request and every figure measured through it is the gateway's own cost. It runs in the
foreground (no daemon, no master process) with its own temporary prefix, and is killed at the
end. `/v1/...` answers JSON; `/stream/v1/...` answers the same completion as server-sent events.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType
from typing import IO

import orjson

from bench.gateway.procs import free_port, wait_http

ANSWER = "billing"
COMPLETION_ID = "chatcmpl-bench0000000000000000000000"
USAGE = {"prompt_tokens": 61, "completion_tokens": 1, "total_tokens": 62}


def completion_json() -> bytes:
    """The non-streaming answer, shaped as OpenAI's chat.completion."""
    return orjson.dumps(
        {
            "id": COMPLETION_ID,
            "object": "chat.completion",
            "created": 1767225600,
            "model": "gpt-4o-2024-08-06",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": ANSWER, "refusal": None},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": USAGE,
            "system_fingerprint": "fp_bench",
        }
    )


def completion_sse() -> bytes:
    """The same answer streamed: role, two content deltas, finish, usage chunk, [DONE]."""
    base = {
        "id": COMPLETION_ID,
        "object": "chat.completion.chunk",
        "created": 1767225600,
        "model": "gpt-4o-2024-08-06",
        "system_fingerprint": "fp_bench",
    }
    deltas: list[tuple[dict[str, str], str | None]] = [
        ({"role": "assistant", "content": ""}, None),
        ({"content": ANSWER[:4]}, None),
        ({"content": ANSWER[4:]}, None),
        ({}, "stop"),
    ]
    events = [
        {**base, "choices": [{"index": 0, "delta": d, "logprobs": None, "finish_reason": f}]}
        for d, f in deltas
    ]
    events.append({**base, "choices": [], "usage": USAGE})
    out = b"".join(b"data: " + orjson.dumps(e) + b"\n\n" for e in events)
    return out + b"data: [DONE]\n\n"


def _nginx_string(body: bytes) -> str:
    """A single-quoted nginx string literal for body (nginx unescapes \\n, \\' and \\\\)."""
    text = body.decode()
    escaped = text.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n")
    return f"'{escaped}'"


def nginx_conf(prefix: Path, port: int) -> str:
    """One worker, no access log, long keep-alive (wrk and the gateway reuse connections)."""
    temp = prefix / "tmp"
    temps = " ".join(
        f"{kind}_temp_path {temp};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return f"""daemon off;
master_process off;
worker_processes 1;
pid {prefix / "nginx.pid"};
error_log {prefix / "error.log"} warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  {temps}
  keepalive_requests 100000000;
  keepalive_timeout 600s;
  client_body_buffer_size 64k;
  server {{
    listen 127.0.0.1:{port} backlog=4096;
    location = /v1/chat/completions {{
      default_type application/json;
      return 200 {_nginx_string(completion_json())};
    }}
    location = /stream/v1/chat/completions {{
      default_type text/event-stream;
      return 200 {_nginx_string(completion_sse())};
    }}
    location / {{ return 404; }}
  }}
}}
"""


class FixedUpstream:
    """`with FixedUpstream() as up:` nginx on a free loopback port, gone after the block."""

    def __init__(self, nginx: str = "nginx") -> None:
        binary = shutil.which(nginx)
        if binary is None:
            raise RuntimeError(
                "nginx is not installed: `apt-get install -y nginx-light` "
                "(scripts/setup.sh does it when run as root)"
            )
        self.binary = binary
        self.port = free_port()
        self._prefix: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def pid(self) -> int:
        assert self._proc is not None, "nginx not started"
        return self._proc.pid

    @property
    def stream_base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/stream/v1"

    def __enter__(self) -> FixedUpstream:
        self._prefix = Path(tempfile.mkdtemp(prefix="distill-bench-nginx-"))
        (self._prefix / "tmp").mkdir()
        conf = self._prefix / "nginx.conf"
        conf.write_text(nginx_conf(self._prefix, self.port))
        errors = self._prefix / "error.log"
        cmd = [self.binary, "-p", str(self._prefix), "-c", str(conf), "-e", str(errors)]
        self._log = (self._prefix / "stderr.log").open("w+b")
        self._proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT)
        try:
            wait_http(f"{self.base_url}/chat/completions", self._proc, self._log, method="POST")
        except Exception:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGQUIT)  # nginx's graceful stop
            try:
                self._proc.wait(5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        if self._log is not None:
            self._log.close()
        if self._prefix is not None:
            shutil.rmtree(self._prefix, ignore_errors=True)
