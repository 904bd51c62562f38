"""Every dashboard panel and alert expression, run on a real Prometheus scraping a live gateway."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import openai
import pytest
import yaml
from openai.types.chat import ChatCompletionMessageParam

from tests.deploy.chart import ROOT
from tests.deploy.prometheus import PrometheusServer, QueryError, free_port

pytestmark = pytest.mark.prometheus

DASHBOARDS = sorted((ROOT / "deploy/grafana/dashboards").glob("*.json"))
ALERTS = ROOT / "deploy/prometheus/alerts.yml"

# What Grafana puts in place of its variables (All selected, default prices).
GRAFANA_VARIABLES = {
    "$__rate_interval": "1m",
    "$__range": "5m",
    "$route": ".*",
    "$variant": ".*",
    "$teacher_prompt_per_1k": "0.0025",
    "$teacher_completion_per_1k": "0.01",
}

# Panels and alerts whose series only exist once something besides plain traffic happened.
# They must still parse; they are covered with data by the test named after each reason
# where one exists. Shadow traffic, feedback and the rollout controller have no gateway
# code yet: move their entries out as soon as they land.
NEEDS: dict[str, str] = {
    "distill-vllm/*": "vllm",  # test_vllm_panels_return_data
    "distill-rollouts/Rollout step (canary percent)": "rollout controller",
    "distill-rollouts/Rollout state": "rollout controller",
    "distill-rollouts/Rollout decisions": "rollout controller",
    "distill-rollouts/Shadow agreement with the teacher (mean)": "shadow traffic",
    "distill-rollouts/Shadow requests by outcome": "shadow traffic",
    "distill-rollouts/Agreement score distribution over the range": "shadow traffic",
    "distill-overview/Feedback by variant and sentiment": "feedback endpoint",
    "alert/DistillRolloutRolledBack": "rollout controller",
    "alert/DistillShadowAgreementFalling": "shadow traffic",
}


def grafana_to_promql(expr: str) -> str:
    for name in sorted(GRAFANA_VARIABLES, key=len, reverse=True):
        expr = expr.replace(name, GRAFANA_VARIABLES[name])
    assert "$" not in expr, f"unknown Grafana variable left in {expr}"
    return expr


def panel_queries() -> list[tuple[str, str]]:
    """(dashboard-uid/panel title, PromQL) for every target of every panel."""
    out = []
    for path in DASHBOARDS:
        board = json.loads(path.read_text())
        for panel in board["panels"]:
            for target in panel.get("targets", []):
                out.append((f"{board['uid']}/{panel['title']}", grafana_to_promql(target["expr"])))
    return out


def alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


# A threshold comparison against a number, at the end of the expression or before and/or/).
THRESHOLD = re.compile(r"(==|!=|>=|<=|>|<)\s*-?[0-9.]+(?=\s*(?:$|\)|\band\b|\bor\b|\bunless\b))")


def without_thresholds(expr: str) -> str:
    """The alert's signal: each `OP number` threshold becomes `> -Inf`, so every series the
    expression selects comes back, firing or not."""
    return THRESHOLD.sub("> -Inf", expr.strip())


def needs(key: str) -> str | None:
    return NEEDS.get(key) or NEEDS.get(key.split("/")[0] + "/*")


def test_threshold_stripping() -> None:
    assert without_thresholds('up{job="x"} == 0') == 'up{job="x"} > -Inf'
    assert without_thresholds("a / b > 0.05") == "a / b > -Inf"
    assert without_thresholds("deriv(x[5m]) > 0 and x > 0") == "deriv(x[5m]) > -Inf and x > -Inf"
    assert without_thresholds("(a) < 0.8\nor\n(a) < 0.9 * (b)") == "(a) > -Inf\nor\n(a) < 0.9 * (b)"


def test_every_panel_and_alert_is_listed() -> None:
    panels = panel_queries()
    assert len(DASHBOARDS) == 4 and len(panels) >= 35
    assert len(alert_rules()) >= 8
    known = {key for key, _ in panels} | {f"alert/{r['alert']}" for r in alert_rules()}
    stale = [k for k in NEEDS if not k.endswith("/*") and k not in known]
    assert not stale, f"NEEDS names panels or alerts that no longer exist: {stale}"


def gateway_edit(students_url: str, dead_url: str) -> Callable[[dict[str, Any]], None]:
    """Two routes: one with a healthy and a failing student, one whose teacher fails."""

    def edit(cfg: dict[str, Any]) -> None:
        cfg["upstreams"]["students"] = {"base_url": students_url, "timeout_s": 5}
        cfg["upstreams"]["dead"] = {"base_url": dead_url, "timeout_s": 2}
        route = cfg["routes"][0]
        route["students"] = [
            # The demo teacher answers any model name; "-error" makes it answer 500.
            {"name": "triage-v1", "upstream": "students", "model": "triage-v1", "weight": 40},
            {"name": "triage-v2", "upstream": "students", "model": "triage-v2-error", "weight": 20},
        ]
        cfg["routes"].append(
            {
                "name": "faq",
                "match": ["faq-model"],
                "teacher": {"upstream": "students", "model": "faq-error"},
                "students": [
                    {"name": "faq-v1", "upstream": "dead", "model": "faq-v1", "weight": 50}
                ],
            }
        )
        cfg["pricing"]["triage-v1"] = {"prompt_per_1k": 0.0001, "completion_per_1k": 0.0002}

    return edit


def send_traffic(base_url: str, rounds: int = 4) -> None:
    """Streams and non-streams on both routes, client errors, opt-outs; spread over seconds
    so that rate() sees the counters move between scrapes."""
    client = openai.OpenAI(base_url=base_url, api_key="test", max_retries=0, timeout=10)
    ticket: list[ChatCompletionMessageParam] = [
        {"role": "user", "content": "I was charged twice for my subscription."}
    ]
    for r in range(rounds):
        for i in range(12):
            user = f"user-{r}-{i}"
            if i % 3 == 0:
                stream = client.chat.completions.create(
                    model="gpt-4o", messages=ticket, user=user, stream=True
                )
                assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
            else:
                reply = client.chat.completions.create(model="gpt-4o", messages=ticket, user=user)
                assert reply.choices[0].message.content
        for i in range(3):
            with pytest.raises(openai.APIStatusError):
                client.chat.completions.create(model="faq-model", messages=ticket, user=f"f{i}")
        with pytest.raises(openai.NotFoundError):
            client.chat.completions.create(model="no-such-model", messages=ticket)
        client.with_options(default_headers={"x-distill-no-log": "1"}).chat.completions.create(
            model="gpt-4o", messages=ticket
        )
        time.sleep(1.2)


@pytest.fixture
def scraped_gateway(
    make_gateway: Callable[..., Any],
    teacher_server: Any,
    prometheus: Callable[..., PrometheusServer],
) -> Iterator[PrometheusServer]:
    dead_port = free_port()  # nothing listens there: student connect errors, vLLM "down"
    gw = make_gateway(gateway_edit(teacher_server.base_url, f"http://127.0.0.1:{dead_port}/v1"))
    prom = prometheus(
        {
            "distill-gateway": [f"127.0.0.1:{gw.port}"],
            "distill-vllm": [f"127.0.0.1:{dead_port}"],
        },
        rule_files=[ALERTS],
    )
    prom.wait_for('up{job="distill-gateway"} == 1')
    send_traffic(gw.base_url)
    # Wait for a scrape that saw all of it: the gateway's own count, read from /metrics.
    text = httpx.get(f"{gw.url}/metrics").text
    total = sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("distill_requests_total{")
    )
    assert total >= 4 * 16
    prom.wait_for(f"sum(distill_requests_total) == {total}")
    yield prom


@pytest.mark.slow
def test_every_panel_and_alert_queries_real_series(scraped_gateway: PrometheusServer) -> None:
    """Panels and alert signals return data; Prometheus evaluates every rule cleanly."""
    prom = scraped_gateway
    failures: list[str] = []
    covered = 0
    checks = [(key, expr) for key, expr in panel_queries()]
    checks += [(f"alert/{r['alert']}", without_thresholds(r["expr"])) for r in alert_rules()]
    for key, expr in checks:
        try:
            result = prom.query(expr)
        except QueryError as exc:
            failures.append(f"{key}: does not parse/evaluate: {exc}")
            continue
        if result:
            covered += 1
        elif needs(key) is None:
            failures.append(f"{key}: no data although traffic was sent\n  {expr}")
    # The real alert expressions (with thresholds) must be valid PromQL as well.
    for rule in alert_rules():
        try:
            prom.query(rule["expr"])
        except QueryError as exc:
            failures.append(f"alert/{rule['alert']}: {exc}")
    assert not failures, "\n".join(failures)
    assert covered >= sum(1 for key, _ in checks if needs(key) is None) >= 35

    # Prometheus itself evaluates every rule against the live series, without an error.
    deadline = time.monotonic() + 10
    while True:
        rules = prom.rules()
        if all(r.get("lastEvaluation", "").startswith("20") for r in rules):
            break
        assert time.monotonic() < deadline, rules
        time.sleep(0.5)
    assert {r["name"] for r in rules} == {r["alert"] for r in alert_rules()}
    bad = [(r["name"], r.get("lastError")) for r in rules if r["health"] != "ok"]
    assert not bad
    # The vLLM target is down on purpose: its alert is pending (for: 3m), not silent.
    states = {r["name"]: r["state"] for r in rules}
    assert states["DistillVLLMDown"] == "pending"
    assert states["DistillLogRowsDropped"] == "inactive"


@pytest.mark.vllm
@pytest.mark.slow
def test_vllm_panels_return_data(
    vllm_server: Any, prometheus: Callable[..., PrometheusServer]
) -> None:
    port = int(vllm_server.port)
    prom = prometheus({"distill-vllm": [f"{vllm_server.host}:{port}"]}, rule_files=[ALERTS])
    prom.wait_for('up{job="distill-vllm"} == 1', timeout=60)
    client = openai.OpenAI(base_url=vllm_server.base_url, api_key="x", max_retries=0)
    for round_ in range(3):
        for i in range(4):
            client.completions.create(
                model=vllm_server.served_model_name, prompt=f"ticket {round_} {i}", max_tokens=4
            )
        time.sleep(1.2)
    prom.wait_for("sum(vllm:e2e_request_latency_seconds_count) >= 12", timeout=30)
    empty = [
        f"{key}\n  {expr}"
        for key, expr in panel_queries()
        if key.startswith("distill-vllm/") and not prom.query(expr)
    ]
    assert not empty, "vLLM panels without data:\n" + "\n".join(empty)
    assert prom.query(
        without_thresholds(
            next(r["expr"] for r in alert_rules() if r["alert"] == "DistillVLLMDown")
        )
    )
