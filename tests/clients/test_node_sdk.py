"""The openai Node SDK (tests/clients/node, installed by scripts/setup.sh with `npm ci`)
through the gateway, compared with the same calls made directly to the teacher."""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.servers import GatewayServer, TeacherServer
from tests.gateway.test_proxy import rows

NODE_DIR = Path(__file__).parent / "node"


# A teacher that gzips its answers, as api.openai.com does.
MODEL = "gpt-4o-gzip"


def run_node(base_url: str, tag: str) -> dict[str, Any]:
    node = shutil.which("node")
    if node is None or not (NODE_DIR / "node_modules" / "openai").is_dir():
        pytest.fail("node or the openai Node SDK is missing: run `bash scripts/setup.sh`")
    done = subprocess.run(
        [node, "run.mjs", base_url, tag, MODEL],
        cwd=NODE_DIR,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def test_node_sdk_through_the_gateway_matches_direct(
    shared_gateway: GatewayServer, teacher_server: TeacherServer
) -> None:
    tag = uuid.uuid4().hex
    via = run_node(shared_gateway.base_url, tag)
    direct = run_node(teacher_server.base_url, tag)
    assert via.pop("distillHeader") is True and direct.pop("distillHeader") is False
    assert via == direct
    assert via["chat"]["choices"][0]["message"]["content"] == "billing"
    assert via["chatStream"] == via["rawContent"] == "billing"
    assert via["chatHelper"]["choices"][0]["logprobs"]["content"]
    assert via["responses"]["output"][0]["content"][0]["text"] == "billing"
    assert via["responseEvents"][-1] == "response.completed"
    assert via["toolCall"]["answer"] == "Tool result: INV-7 paid twice"
    logged = rows(shared_gateway, f"json_extract_string(tags, '$.case') = '{tag}'")
    assert sorted(r["endpoint"] for r in logged) == ["chat", "responses"]
    assert all(r["status"] == 200 for r in logged)
