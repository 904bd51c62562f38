"""Redaction in linear time, off the event loop (issue 15, item 1).

With Python's `re`, the README's e-mail pattern took 46 s over one 120,000-letter message,
the gateway frozen (`/healthz` included). Pure parts table-driven; then a gateway process
redacting the largest bodies it allows while another process times `/healthz`.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from gateway.capture import PendingBody, Redactor, prepared_body, stored_body
from gateway.config import CaptureConfig, ConfigError, parse_config
from gateway.redact import RedactPattern, python_words, redact_text
from tests.fixtures.servers import ServerThread
from tests.reliability.hostile import EMAIL, create_hostile_app
from tests.reliability.procs import GatewayProcess, stored

pytestmark = pytest.mark.reliability

README = r"[\w.+-]+@[\w-]+\.[\w.]+"  # README.md, "Config"
DEPLOY = "[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\\.[A-Za-z]{2,}"  # deploy/distill.yaml
RULES = [{"pattern": README, "replace": "[EMAIL]"}, {"pattern": DEPLOY, "replace": "[EMAIL]"}]
REDACTOR = Redactor.from_config(CaptureConfig.model_validate({"redact": RULES}))
MIB = 1 << 20


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        (r"\w+", r"[\pL\pN_]+"),
        (r"[\w.+-]+@", r"[\pL\pN_.+-]+@"),
        (r"[^\w]\W", r"[^\pL\pN_][^\pL\pN_]"),
        (r"\\w", r"\\w"),  # an escaped backslash, then a plain w
        (r"[]\w]", r"[]\pL\pN_]"),  # a ] first in a class is a literal
        (r"\d{4}\b", r"\d{4}\b"),
    ],
)
def test_word_classes_keep_pythons_meaning(pattern: str, expected: str) -> None:
    assert python_words(pattern) == expected


@pytest.mark.parametrize(
    ("pattern", "words"),
    [
        (r"(\w+)@\1", "backreferences"),
        (r"\w+(?=@)", "lookaround"),
        (r"(?<=mail:)\S+", "lookaround"),
        (r"[a-z", "missing ]"),
        (r"x*", "matches the empty string"),
    ],
)
def test_patterns_re2_cannot_run_are_refused_at_config_load(pattern: str, words: str) -> None:
    data: dict[str, Any] = {
        "upstreams": {"t": {"base_url": "http://127.0.0.1:9/v1"}},
        "capture": {"redact": [{"pattern": pattern}]},
    }
    with pytest.raises(ConfigError, match=r"capture\.redact\.0\.pattern") as info:
        parse_config(data, environ={})
    assert words in str(info.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mail jo.e+x@ex.com now", "mail [EMAIL] now"),
        ("josé@exämple.com", "[EMAIL]"),  # \w as Python means it: any script
        ("a@b", "a@b"),
        (f"{EMAIL},{EMAIL}", "[EMAIL],[EMAIL]"),
        ("", ""),
    ],
)
def test_the_documented_patterns_redact(text: str, expected: str) -> None:
    assert REDACTOR.text(text) == expected


@pytest.mark.parametrize("pattern", [README, DEPLOY])
@pytest.mark.parametrize("text", ["A" * 120_000, "A" * MIB, "a@b.cc " * 20_000])
def test_redaction_time_is_linear(pattern: str, text: str) -> None:
    rules = (RedactPattern(pattern, "[EMAIL]"),)
    started = time.perf_counter()
    redact_text(rules, text)
    elapsed = time.perf_counter() - started
    assert elapsed < 0.5, f"{elapsed:.3f} s for {len(text)} characters"  # `re`: 46 s at 120k


def test_a_cut_body_is_redacted_across_the_cut() -> None:
    value = {"content": "x" * 975 + " " + EMAIL + " " + "y" * 5000}  # the cut is in the address
    head = stored_body(value, None, REDACTOR, 1000)["head"]
    assert len(head) == 1000 and "[EMAIL] yyy" in head and "bob" not in head


def test_large_bodies_are_left_to_a_worker_and_come_out_the_same() -> None:
    value = {"messages": [{"role": "user", "content": f"{EMAIL} " + "A" * 200_000}]}
    raw = orjson.dumps(value)
    pending = stored_body(value, raw, REDACTOR, 16 * MIB)
    assert isinstance(pending, PendingBody)
    prepared = orjson.loads(orjson.dumps(pending.prepared()))
    assert prepared == orjson.loads(orjson.dumps(prepared_body(value, raw, REDACTOR, 16 * MIB)))
    assert prepared["messages"][0]["content"].startswith("[EMAIL] AAA")
    small = {"messages": [{"role": "user", "content": EMAIL}]}
    assert not isinstance(stored_body(small, None, REDACTOR, 16 * MIB), PendingBody)


# -- live: /healthz stays fast while the largest bodies are redacted -----------------------

POLLER = """
import json, sys, time, pathlib, httpx
url, stop = sys.argv[1], pathlib.Path(sys.argv[2])
times = []
with httpx.Client(timeout=10) as http:
    while not stop.exists() or len(times) < 20:
        started = time.perf_counter()
        assert http.get(url).status_code == 200
        times.append(time.perf_counter() - started)
        time.sleep(0.005)
print(json.dumps(times))
"""


def poll_healthz(gateway: GatewayProcess, stop: Path, during: Callable[[], None]) -> list[float]:
    """/healthz response times, polled from another process while `during` runs."""
    poller = subprocess.Popen(
        [sys.executable, "-c", POLLER, f"{gateway.url}/healthz", str(stop)],
        stdout=subprocess.PIPE,
    )
    try:
        during()
    finally:
        stop.touch()
    out, _ = poller.communicate(timeout=30)
    times: list[float] = json.loads(out)
    return times


@pytest.fixture
def hostile_upstream() -> Iterator[ServerThread]:
    server = ServerThread(create_hostile_app()).start()
    yield server
    server.stop()


def test_healthz_answers_while_the_largest_bodies_are_redacted(
    tmp_path: Path, hostile_upstream: ServerThread
) -> None:
    def largest(cfg: dict[str, Any]) -> None:
        cfg["server"] = {"max_request_bytes": MIB}
        cfg["capture"] = {"redact": RULES, "max_body_bytes": 16 * MIB}  # redact all of it

    gateway = GatewayProcess(tmp_path, f"{hostile_upstream.url}/v1", largest)
    idle = poll_healthz(gateway, tmp_path / "idle", lambda: time.sleep(1.5))
    stop = tmp_path / "stop"
    poller = subprocess.Popen(
        [sys.executable, "-c", POLLER, f"{gateway.url}/healthz", str(stop)],
        stdout=subprocess.PIPE,
    )
    try:
        time.sleep(0.3)
        ids = []
        with httpx.Client(timeout=60) as http:
            for stream in (False, True):
                body = {
                    "model": "gpt-4o",
                    "stream": stream,
                    "messages": [{"role": "user", "content": "A" * (MIB - 200)}],  # 1 MiB
                    "x_answer_bytes": 10_000_000,  # a 10 MB teacher answer
                }
                url = f"{gateway.url}/v1/chat/completions"
                with http.stream("POST", url, json=body) as response:
                    assert response.status_code == 200
                    size = sum(len(part) for part in response.iter_raw())  # read, not decoded
                assert size > 10_000_000
                ids.append(response.headers["x-distill-request-id"])
        time.sleep(0.2)
        stop.touch()
        out, _ = poller.communicate(timeout=30)
        gateway.wait_drained(60)
        rows = {
            rid: orjson.loads(response)
            for rid, response in stored(gateway.store, "id, response::VARCHAR")
        }
    finally:
        stop.touch()
        poller.kill()
        gateway.close()
    times = sorted(json.loads(out))
    p90 = times[int(len(times) * 0.9)]
    print(
        f"/healthz: {len(times)} polls, p50 {times[len(times) // 2] * 1000:.1f} ms, "
        f"p90 {p90 * 1000:.1f} ms, max {times[-1] * 1000:.1f} ms "
        f"(idle: max {max(idle) * 1000:.1f} ms)"
    )
    assert len(times) > 20
    # No freeze (the old gateway stopped for 46 s), and 9 polls in 10 within 50 ms. A strict
    # maximum of 50 ms is what a quiet machine gives; on 2 shared cores the poller and the
    # gateway also wait for a CPU (docs/reliability.md has the figures).
    assert times[-1] < 1.0, f"/healthz took {times[-1] * 1000:.0f} ms"
    assert p90 < 0.05, f"/healthz p90 {p90 * 1000:.0f} ms"
    for rid in ids:
        answer = json.dumps(rows[rid])
        assert EMAIL not in answer
        assert answer.count("[EMAIL]") > 2400  # every address in the 10 MB
