"""Upstream faults against a gateway process: each is answered as documented and logged once."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.fixtures.servers import TeacherServer, free_port
from tests.reliability.procs import GatewayProcess, TeacherProcess, stored

pytestmark = pytest.mark.reliability

TIMEOUT_S = 1.0  # the teacher upstream's read timeout in these tests
TECHNICAL = "The api returns a timeout"  # answered "technical": three 4-character chunks

# client model -> (upstream, teacher model): one route per fault, all in one gateway process.
FAULT_ROUTES = {
    "f-error": ("teacher", "gpt-4o-error"),
    "f-overloaded": ("teacher", "gpt-4o-overloaded"),
    "f-timeout": ("teacher", "gpt-4o-slow-3"),
    "f-slow-ok": ("teacher", "gpt-4o-slow-0.3"),
    "f-refused": ("dead", "gpt-4o"),
    "f-cut": ("teacher", "gpt-4o-cut"),
    "f-drip-over": ("teacher", "gpt-4o-drip-2"),
    "f-drip-ok": ("teacher", "gpt-4o-drip-0.45"),
}


@dataclass
class Outcome:
    status: int
    request_id: str
    error: dict[str, Any] | None  # the OpenAI error object, from the body or an SSE event
    text: str  # the answer's text (streams: the deltas joined)
    done: bool  # streams: [DONE] arrived
    elapsed_s: float


def call(url: str, model: str, *, stream: bool, content: str = "my invoice is wrong") -> Outcome:
    body = {"model": model, "messages": [{"role": "user", "content": content}], "stream": stream}
    started = time.monotonic()
    with (
        httpx.Client(timeout=30) as http,
        http.stream("POST", f"{url}/v1/chat/completions", json=body) as response,
    ):
        request_id = response.headers["x-distill-request-id"]
        if not (stream and response.status_code == 200):
            payload = orjson.loads(response.read())
            error = payload.get("error")
            text = "" if error else payload["choices"][0]["message"]["content"]
            return Outcome(
                response.status_code, request_id, error, text, False, time.monotonic() - started
            )
        error, text, done = None, "", False
        for line in response.iter_lines():
            if not line.startswith("data: "):
                continue
            if line == "data: [DONE]":
                done = True
                continue
            event = orjson.loads(line[6:])
            if "error" in event:
                error = event["error"]
            else:
                text += "".join(c["delta"].get("content") or "" for c in event["choices"])
        return Outcome(200, request_id, error, text, done, time.monotonic() - started)


def assert_openai_error(error: dict[str, Any] | None, type_: str) -> None:
    assert error is not None and set(error) == {"message", "type", "param", "code"}, error
    assert error["type"] == type_ and error["message"], error


def row_of(gateway: GatewayProcess, request_id: str) -> tuple[int, str | None]:
    gateway.wait_drained()
    rows = [r for r in stored(gateway.store, "id, status, error") if r[0] == request_id]
    assert len(rows) == 1, f"{request_id} stored {len(rows)} times"
    return rows[0][1], rows[0][2]


def still_serves(gateway: GatewayProcess) -> None:
    ok = call(gateway.url, "gpt-4o", stream=False)
    assert (ok.status, ok.text) == (200, "billing")
    assert gateway.alive()


@pytest.fixture(scope="module")
def fault_gateway(
    tmp_path_factory: pytest.TempPathFactory, teacher_server: TeacherServer
) -> Iterator[GatewayProcess]:
    def faults(cfg: dict[str, Any]) -> None:
        cfg["upstreams"]["teacher"]["timeout_s"] = TIMEOUT_S
        cfg["upstreams"]["dead"] = {"base_url": f"http://127.0.0.1:{free_port()}/v1"}
        for model, (upstream, teacher_model) in FAULT_ROUTES.items():
            cfg["routes"].append(
                {
                    "name": model,
                    "match": [model],
                    "teacher": {"upstream": upstream, "model": teacher_model},
                }
            )

    gateway = GatewayProcess(tmp_path_factory.mktemp("faults"), teacher_server.base_url, faults)
    yield gateway
    gateway.close()


# (model, stream, HTTP status, error type or None, stored status, text, [DONE] expected)
FAULTS = [
    ("f-error", False, 500, "server_error", 500, "", False),  # the teacher's own 5xx body
    ("f-error", True, 500, "server_error", 500, "", False),
    ("f-overloaded", False, 429, "rate_limit_error", 429, "", False),
    ("f-overloaded", True, 429, "rate_limit_error", 429, "", False),
    ("f-timeout", False, 504, "timeout_error", 504, "", False),
    ("f-timeout", True, 504, "timeout_error", 504, "", False),  # no header before the timeout
    ("f-slow-ok", False, 200, None, 200, "technical", False),
    ("f-slow-ok", True, 200, None, 200, "technical", True),
    ("f-refused", False, 502, "upstream_error", 502, "", False),
    ("f-refused", True, 502, "upstream_error", 502, "", False),
    ("f-cut", True, 200, "upstream_error", 502, "tech", False),  # cut after the first chunk
    ("f-drip-over", True, 200, "timeout_error", 504, "", False),  # a gap > read timeout
    ("f-drip-ok", True, 200, None, 200, "technical", True),  # gaps < timeout, total > it
]


@pytest.mark.parametrize(
    ("model", "stream", "status", "error_type", "row_status", "text", "done"), FAULTS
)
def test_fault_is_answered_as_documented_and_logged_once(
    fault_gateway: GatewayProcess,
    model: str,
    stream: bool,
    status: int,
    error_type: str | None,
    row_status: int,
    text: str,
    done: bool,
) -> None:
    outcome = call(fault_gateway.url, model, stream=stream, content=TECHNICAL)
    assert outcome.status == status
    if error_type is None:
        assert outcome.error is None
    else:
        assert_openai_error(outcome.error, error_type)
    assert (outcome.text, outcome.done) == (text, done)
    if model == "f-drip-ok":
        assert outcome.elapsed_s > TIMEOUT_S  # longer than the timeout in total, yet complete
    if model == "f-timeout":
        assert outcome.elapsed_s < 3  # the gateway gave up at its timeout, not the teacher's 3 s
    stored_status, stored_error = row_of(fault_gateway, outcome.request_id)
    assert stored_status == row_status
    assert (stored_error is None) == (row_status == 200), stored_error
    still_serves(fault_gateway)


def test_teacher_process_killed_mid_request_then_restarted(tmp_path: Path) -> None:
    """SIGKILL of the teacher with requests in flight: 502s logged, then service resumes."""
    teacher = TeacherProcess(tmp_path)

    def routes(cfg: dict[str, Any]) -> None:
        for model, teacher_model in (("k-slow", "gpt-4o-slow-5"), ("k-drip", "gpt-4o-drip-0.5")):
            cfg["routes"].append(
                {
                    "name": model,
                    "match": [model],
                    "teacher": {"upstream": "teacher", "model": teacher_model},
                }
            )

    gateway = GatewayProcess(tmp_path, teacher.base_url, routes)
    try:
        still_serves(gateway)  # leaves a pooled keep-alive connection to the teacher
        outcomes: dict[str, Outcome] = {}

        def send(model: str, stream: bool) -> None:
            outcomes[model] = call(gateway.url, model, stream=stream, content=TECHNICAL)

        threads = [
            threading.Thread(target=send, args=("k-slow", False)),
            threading.Thread(target=send, args=("k-drip", True)),
        ]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 10
        # The gauge counts a stream only until its headers are sent: wait for the slow one.
        while gateway.metrics()["distill_requests_in_flight"] < 1:
            assert time.monotonic() < deadline, "requests never reached the gateway"
            time.sleep(0.05)
        time.sleep(0.7)  # the stream has relayed its first chunks
        teacher.kill()
        for t in threads:
            t.join(15)

        slow, drip = outcomes["k-slow"], outcomes["k-drip"]
        assert slow.status == 502
        assert_openai_error(slow.error, "upstream_error")
        assert drip.status == 200 and drip.text and not drip.done  # cut after some chunks
        assert_openai_error(drip.error, "upstream_error")
        assert row_of(gateway, slow.request_id)[0] == 502
        assert row_of(gateway, drip.request_id)[0] == 502

        down = call(gateway.url, "gpt-4o", stream=False)
        assert down.status == 502 and down.error and down.error["code"] == "upstream_unreachable"

        # The teacher comes back on the same port: the next request must not hit a dead
        # pooled connection.
        teacher = TeacherProcess(tmp_path, port=teacher.port)
        for _ in range(5):
            still_serves(gateway)
    finally:
        gateway.close()
        teacher.kill()
