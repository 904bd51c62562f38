"""The whole safe-replacement loop on real vLLM: a distilled adapter takes the route by itself,
an adapter trained on shuffled labels is rolled back at its first gate; the registry follows."""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from distill_demo.teacher.task import SYSTEM_PROMPT, generate_ticket
from tests.fixtures.servers import GatewayFactory, GatewayServer
from trainer.registry.registry import get_adapter, register_adapter
from trainer.registry.validate import read_adapter
from trainer.registry.vllm import load_adapter, unload_adapter

TOKEN = "vllm-rollout-token"
pytestmark = [pytest.mark.vllm, pytest.mark.slow]


def start(server: GatewayServer, adapter: str) -> None:
    body = {
        "route": "support-triage",
        "adapter": adapter,
        "steps": [25, 100],
        "shadow_rate": 1.0,
        # Gates sized for a tiny CPU model next to an instant teacher: latency is not the
        # question here, agreement and errors are.
        "gates": {
            "min_requests": 12,
            "min_seconds": 0,
            "min_agreement_pairs": 12,
            "latency_slack_ms": 20000,
            "ttft_slack_ms": 20000,
        },
    }
    r = httpx.post(
        f"{server.url}/admin/rollouts", json=body, headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert r.status_code == 201, r.text


def drive_until(server: GatewayServer, state: str, limit_s: float = 240) -> list[str]:
    app = openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0)
    rng = random.Random(7)
    deadline, variants, i = time.monotonic() + limit_s, [], 0
    while time.monotonic() < deadline:
        ticket, _ = generate_ticket(rng)
        raw = app.chat.completions.with_raw_response.create(
            model="gpt-4o",
            user=f"u{i}",
            max_tokens=8,
            temperature=0,
            messages=[
                {"role": "system", "content": SYSTEM_PROMPT},
                {"role": "user", "content": ticket},
            ],
        )
        assert raw.http_response.status_code == 200
        variants.append(raw.headers["x-distill-variant"])
        i += 1
        history = httpx.get(
            f"{server.url}/admin/rollouts", headers={"Authorization": f"Bearer {TOKEN}"}
        ).json()["history"]
        if history and history[0]["state"] == state:
            return variants
    raise AssertionError(f"rollout did not reach {state}: {history[0]}")


def registry_state(store: Path, name: str, expected: str) -> str:
    """The registry follows a decision right after it is taken: give it a moment."""
    deadline = time.monotonic() + 10
    while (state := get_adapter(store, name).state) != expected and time.monotonic() < deadline:
        time.sleep(0.1)
    return state


def test_good_adapter_promoted_bad_rolled_back(
    make_gateway: GatewayFactory,
    vllm_server: Any,
    trained_adapter_dir: Path,
    bad_adapter_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DISTILL_ADMIN_TOKEN", TOKEN)

    def students(cfg: dict[str, Any]) -> None:
        cfg["upstreams"]["vllm"] = {"base_url": vllm_server.base_url, "timeout_s": 60}
        cfg["routes"][0]["student_upstream"] = "vllm"
        cfg["routes"][0]["shadow"] = {"agreement": "label"}
        cfg["rollout"] = {"tick_s": 0.2}

    server = make_gateway(students)
    loaded = [("rollout-good", trained_adapter_dir), ("rollout-bad", bad_adapter_dir)]
    with httpx.Client(timeout=120) as http:
        for name, path in loaded:
            load_adapter(http, vllm_server.base_url, name, read_adapter(path))
            # The bad adapter failed its training check: registered anyway, to be rolled back.
            register_adapter(server.store_path, path, name=name, route="support-triage", force=True)
    try:
        check_rollouts(server)
    finally:  # the vLLM server is shared by the session: leave it as we found it
        with httpx.Client(timeout=120) as http:
            for name, _ in loaded:
                unload_adapter(http, vllm_server.base_url, name)


def check_rollouts(server: GatewayServer) -> None:
    start(server, "rollout-bad")
    assert set(drive_until(server, "rolled_back")) == {"teacher"}
    assert registry_state(server.store_path, "rollout-bad", "candidate") == "candidate"

    start(server, "rollout-good")
    drive_until(server, "promoted")
    assert registry_state(server.store_path, "rollout-good", "stable") == "stable"
    history = httpx.get(
        f"{server.url}/admin/rollouts", headers={"Authorization": f"Bearer {TOKEN}"}
    ).json()["history"]
    good, bad = history
    assert [d["decision"] for d in good["decisions"]] == ["start", "advance", "advance", "promote"]
    assert good["decisions"][1]["numbers"]["student"]["agreement"] >= 0.9
    assert bad["decisions"][-1]["decision"] == "rollback"
    assert bad["decisions"][-1]["numbers"]["student"]["agreement"] < 0.9

    # The student now answers every request, through the gateway, with the teacher's labels.
    app = openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0)
    rng = random.Random(99)
    correct = 0
    for i in range(20):
        ticket, label = generate_ticket(rng)
        raw = app.chat.completions.with_raw_response.create(
            model="gpt-4o",
            user=f"new-{i}",
            max_tokens=8,
            temperature=0,
            messages=[
                {"role": "system", "content": SYSTEM_PROMPT},
                {"role": "user", "content": ticket},
            ],
        )
        assert raw.headers["x-distill-variant"] == "rollout-good"
        correct += (raw.parse().choices[0].message.content or "").strip() == label
    assert correct >= 18
