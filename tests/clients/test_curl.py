"""curl, as a user tries the gateway first: the bytes of an answer (streamed or not, chat and
Responses API) match the same call made directly, apart from the clock fields."""

from __future__ import annotations

import json
import shutil
import subprocess
from typing import Any

import pytest

from tests.fixtures.servers import GatewayServer, TeacherServer

TICKET = "Hi, I was charged twice for my invoice. This is urgent."
CALLS = [
    (
        "/chat/completions",
        {"model": "gpt-4o-gzip", "messages": [{"role": "user", "content": TICKET}]},
    ),
    ("/responses", {"model": "gpt-4o-gzip", "input": TICKET}),
]


def curl(url: str, body: dict[str, Any]) -> tuple[dict[str, str], str]:
    """(response headers, body) of `curl --compressed` POSTing the body as JSON."""
    exe = shutil.which("curl")
    if exe is None:
        pytest.fail("curl is missing (Debian package curl)")
    done = subprocess.run(
        [exe, "-sS", "-N", "--compressed", "-D", "-", "-H", "Content-Type: application/json",
         "-H", "Authorization: Bearer sk-test", "--data-binary", json.dumps(body), url],
        capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    head, _, payload = done.stdout.partition("\n\n")  # text mode reads CRLF as LF
    lines = head.split("\n")[1:]
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    return headers, payload


def unclocked(payload: str) -> list[Any]:
    """Each JSON document (or SSE event's data) without `created`/`created_at`."""

    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k not in ("created", "created_at")}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    if not payload.lstrip().startswith(("data:", "event:")):
        return [strip(json.loads(payload))]
    datas = [line[5:].strip() for line in payload.splitlines() if line.startswith("data:")]
    return [d if d == "[DONE]" else strip(json.loads(d)) for d in datas]


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(("path", "body"), CALLS, ids=["chat", "responses"])
def test_curl_through_the_gateway_matches_direct(
    shared_gateway: GatewayServer,
    teacher_server: TeacherServer,
    path: str,
    body: dict[str, Any],
    stream: bool,
) -> None:
    sent = {**body, "stream": stream}
    via_headers, via = curl(shared_gateway.base_url + path, sent)
    direct_headers, direct = curl(teacher_server.base_url + path, sent)
    assert unclocked(via) == unclocked(direct)
    assert direct_headers.get("content-encoding") == "gzip"  # the teacher compresses
    assert via_headers["x-distill-request-id"].startswith("req_")
    assert via_headers["content-type"].split(";")[0] == direct_headers["content-type"].split(";")[0]
