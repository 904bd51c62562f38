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

from distill_demo.teacher.server import TeacherSettings
from tests.deploy.chart import ROOT
from tests.deploy.prometheus import PrometheusServer, QueryError, free_port
from tests.deploy.rollouts import (
    BAD,
    CANARY_ROUTE,
    GOOD,
    ROLLBACK_ROUTE,
    TOKEN,
    RolloutDriver,
    rollout_routes,
)
from tests.fixtures.servers import TeacherServer, start_teacher

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

# Panels and alerts whose series only exist once something besides the traffic below
# happened, with the reason; they must still parse. The test named by a reason covers them.
NEEDS: dict[str, str] = {
    "distill-vllm/*": "vllm",  # test_vllm_panels_return_data
    # absent() returns data only while no gateway is scraped: alerts_test.yml (promtool) has it
    "alert/DistillGatewayAbsent": "promtool",  # test_promtool.test_alerts_fire_on_synthetic_series
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
    boards = {key.split("/")[0] for key in known}
    stale = [k for k in NEEDS if k not in known and k.removesuffix("/*") not in boards]
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


def plain_round(client: openai.OpenAI, r: int) -> None:
    """Streams and non-streams on both routes, client errors, an opt-out."""
    ticket: list[ChatCompletionMessageParam] = [
        {"role": "user", "content": "I was charged twice for my subscription."}
    ]
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


def send_traffic(base_url: str, rollouts: RolloutDriver, rounds: int = 4) -> None:
    """Plain rounds and rollout rounds until the rollouts are settled; spread over seconds so
    that rate() sees the counters move between scrapes."""
    client = openai.OpenAI(base_url=base_url, api_key="test", max_retries=0, timeout=10)
    rollouts.start(CANARY_ROUTE, GOOD)
    rollouts.start(ROLLBACK_ROUTE, BAD)
    for r in range(rounds + 8):
        plain_round(client, r)
        rollouts.round()
        if r + 1 >= rounds and rollouts.settled:
            return
        time.sleep(1.2)
    raise AssertionError(f"rollouts did not settle: {rollouts.describe()}")


@pytest.fixture
def students() -> Iterator[tuple[TeacherServer, TeacherServer]]:
    """The demo teacher as students: one that agrees with the teacher, one that mostly does not."""
    good = start_teacher(TeacherSettings(error_rate=0.0, seed=GOOD, models=(GOOD,)))
    bad = start_teacher(TeacherSettings(error_rate=0.8, seed=BAD, models=(BAD,)))
    yield good, bad
    good.thread.stop()
    bad.thread.stop()


@pytest.fixture
def scraped_gateway(
    make_gateway: Callable[..., Any],
    teacher_server: Any,
    students: tuple[TeacherServer, TeacherServer],
    prometheus: Callable[..., PrometheusServer],
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[PrometheusServer]:
    monkeypatch.setenv("DISTILL_ADMIN_TOKEN", TOKEN)
    dead_port = free_port()  # nothing listens there: student connect errors, vLLM "down"
    plain = gateway_edit(teacher_server.base_url, f"http://127.0.0.1:{dead_port}/v1")
    with_rollouts = rollout_routes(students[0].base_url, students[1].base_url)
    gw = make_gateway(lambda cfg: (plain(cfg), with_rollouts(cfg)))
    prom = prometheus(
        {
            "distill-gateway": [f"127.0.0.1:{gw.port}"],
            "distill-vllm": [f"127.0.0.1:{dead_port}"],
        },
        rule_files=[ALERTS],
    )
    prom.wait_for('up{job="distill-gateway"} == 1')
    rollouts = RolloutDriver(gw.url, prom.wait_for)
    try:
        send_traffic(gw.base_url, rollouts)
    finally:
        rollouts.close()
    # Wait for a scrape that saw all of it: the gateway's own count, read from /metrics.
    text = httpx.get(f"{gw.url}/metrics").text
    total = sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("distill_requests_total{")
    )
    assert total >= 4 * 16
    prom.wait_for(f"sum(distill_requests_total) >= {total}")
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
            if key in NEEDS:
                failures.append(f"{key}: returns data now; remove it from NEEDS")
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
    check_rollouts(prom)


def series(prom: PrometheusServer, expr: str, *labels: str) -> dict[tuple[str, ...], float]:
    return {
        tuple(item["metric"][label] for label in labels): float(item["value"][1])
        for item in prom.query(expr)
    }


def check_rollouts(prom: PrometheusServer) -> None:
    """The rollout traffic did what it is there for: a promotion after two canary steps, two
    rollbacks that fire their alert, scored shadow agreement, feedback of both kinds."""
    # Every (route, decision) series exists from the start at 0; the ones that moved:
    assert series(prom, "distill_rollout_decisions_total > 0", "route", "decision") == {
        (CANARY_ROUTE, "start"): 1,
        (CANARY_ROUTE, "advance"): 2,  # shadow -> 50% -> 100%
        (CANARY_ROUTE, "promote"): 1,
        (ROLLBACK_ROUTE, "start"): 2,
        (ROLLBACK_ROUTE, "rollback"): 2,
    }
    assert series(prom, "distill_rollout_state == 1", "route", "adapter", "state") == {
        (CANARY_ROUTE, GOOD, "promoted"): 1,
        (ROLLBACK_ROUTE, BAD, "rolled_back"): 1,
    }
    assert series(prom, "distill_rollout_step_percent", "route") == {
        (CANARY_ROUTE,): 100,
        (ROLLBACK_ROUTE,): 0,
    }
    mean = series(
        prom,
        "sum by (route) (distill_shadow_agreement_score_sum)"
        " / sum by (route) (distill_shadow_agreement_score_count)",
        "route",
    )
    assert mean[(CANARY_ROUTE,)] >= 0.9 and mean[(ROLLBACK_ROUTE,)] < 0.5, mean
    ok = series(prom, 'distill_shadow_requests_total{outcome="ok"}', "variant")
    assert ok[(GOOD,)] >= 10 and ok[(BAD,)] >= 20, ok
    # The bad student only ever answered mirrors: live traffic (panels, alerts) never saw it.
    mirror = 'sum by (variant) (distill_requests_total{traffic="mirror"})'
    mirrored = series(prom, mirror, "variant")
    assert mirrored[(BAD,)] >= 20, mirrored
    assert not series(prom, f'distill_requests_total{{traffic="live", variant="{BAD}"}}', "variant")
    assert series(prom, "distill_feedback_total", "route", "variant", "sentiment") == {
        (CANARY_ROUTE, variant, sentiment): 1
        for variant in ("teacher", GOOD)
        for sentiment in ("positive", "negative")
    }
    # The rollback alert fires; low agreement is pending (for: 15m), for the bad student only.
    prom.wait_for(
        f'ALERTS{{alertname="DistillRolloutRolledBack", alertstate="firing", '
        f'route="{ROLLBACK_ROUTE}"}}'
    )
    falling = prom.wait_for('ALERTS{alertname="DistillShadowAgreementFalling"}')
    assert [(a["metric"]["route"], a["metric"]["alertstate"]) for a in falling] == [
        (ROLLBACK_ROUTE, "pending")
    ]


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
