"""Traffic and admin helpers shared by the console's tests."""

from __future__ import annotations

import random
import time
from typing import Any

import httpx
import openai

from distill_demo.teacher.task import SYSTEM_PROMPT, generate_ticket
from tests.fixtures.servers import GatewayServer

TOKEN = "console-admin-token"
XSS = '<script>window.__xss = 1</script><img src=x onerror="window.__xss = 2"> & refund'


def auth(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def send(server: GatewayServer, n: int, *, start: int = 0) -> list[str]:
    """`n` support tickets from distinct users; returns their request ids."""
    client = openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0)
    rng = random.Random(start)
    ids = []
    for i in range(start, start + n):
        ticket, _ = generate_ticket(rng)
        raw = client.chat.completions.with_raw_response.create(
            model="gpt-4o",
            user=f"user-{i}",
            messages=[
                {"role": "system", "content": SYSTEM_PROMPT},
                {"role": "user", "content": ticket},
            ],
        )
        ids.append(raw.headers["x-distill-request-id"])
    return ids


def send_text(server: GatewayServer, text: str, user: str) -> str:
    client = openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o", user=user, messages=[{"role": "user", "content": text}]
    )
    return raw.headers["x-distill-request-id"]


def rollouts(server: GatewayServer) -> dict[str, Any]:
    response = httpx.get(f"{server.url}/admin/rollouts", headers=auth())
    response.raise_for_status()
    data: dict[str, Any] = response.json()
    return data


def weights(server: GatewayServer) -> dict[str, float]:
    response = httpx.get(f"{server.url}/admin/routes", headers=auth())
    response.raise_for_status()
    found: dict[str, float] = response.json()["routes"][0]["weights"]
    return found


def drive_to_canary(server: GatewayServer, limit_s: float = 60) -> None:
    """Send traffic until the route's rollout reaches its first canary step."""
    deadline = time.monotonic() + limit_s
    i = 1000
    while time.monotonic() < deadline:
        send(server, 5, start=i)
        i += 5
        history = rollouts(server)["history"]
        if history and history[0]["state"] == "canary":
            return
        assert history and history[0]["state"] == "shadow", history
    raise AssertionError(f"no canary step within {limit_s}s: {rollouts(server)}")
