"""Builds Distill's Grafana dashboards (JSON) from the short panel lists below.

Run `python deploy/grafana/build_dashboards.py` after editing a panel: it writes
deploy/grafana/dashboards/*.json and the Helm chart's copies (helm/distill/files/dashboards/).
tests/deploy checks that both are up to date and runs every panel's PromQL against a real
Prometheus. Grafana's own variables in the queries: $route, $variant (label filters),
$__rate_interval, $__range, and the teacher's list prices $teacher_prompt_per_1k and
$teacher_completion_per_1k (editable text boxes) used for "cost saved".

Traffic series carry `traffic="live"` (answers clients received) or `traffic="mirror"`
(shadow students and secondary teachers, never seen by a client): traffic, errors, latency,
share and cost saved read live traffic only; spend shows both, since mirrors are paid for too.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
OUTPUTS = (ROOT / "deploy/grafana/dashboards", ROOT / "helm/distill/files/dashboards")

RV = 'route=~"$route", variant=~"$variant"'
R = 'route=~"$route"'
RI = "[$__rate_interval]"
STUDENTS = 'variant!="teacher"'
LIVE = 'traffic="live"'
RVL = f"{RV}, {LIVE}"
RL = f"{R}, {LIVE}"
MIRROR = f'{RV}, traffic="mirror"'

# Teacher list prices (USD per 1k tokens) used for "cost saved"; defaults match the sample
# config's gpt-4o pricing. Grafana shows them as editable boxes at the top of the dashboard.
DEFAULT_PROMPT_PRICE = "0.0025"
DEFAULT_COMPLETION_PRICE = "0.01"


@dataclass(frozen=True)
class Query:
    """One PromQL target; `instant` for tables and stats computed at the range's end."""

    expr: str
    legend: str = ""
    instant: bool = False


@dataclass(frozen=True)
class Panel:
    """A panel: its queries, unit and kind; `width` in Grafana's 24-column grid."""

    title: str
    queries: tuple[Query, ...]
    unit: str = "short"
    kind: str = "timeseries"
    width: int = 12
    description: str = ""


@dataclass(frozen=True)
class Row:
    title: str
    panels: tuple[Panel, ...]


@dataclass(frozen=True)
class Dashboard:
    uid: str
    title: str
    description: str
    rows: tuple[Row, ...]
    variables: tuple[str, ...] = ("route", "variant")
    extra_variables: tuple[dict[str, Any], ...] = field(default=())


def quantiles(metric: str, by: str, selector: str) -> tuple[Query, ...]:
    """p50/p95/p99 of a histogram, one series per `by` group."""
    return tuple(
        Query(
            f"histogram_quantile({q}, sum by ({by}, le) (rate({metric}_bucket{{{selector}}}{RI})))",
            f"p{round(q * 100)} " + " ".join(f"{{{{{b.strip()}}}}}" for b in by.split(",")),
        )
        for q in (0.5, 0.95, 0.99)
    )


def ratio_or_zero(num: str, den: str, by: str) -> str:
    """num/den per group, reading 0 (not "no data") for groups whose numerator is absent."""
    return f"(sum by ({by}) ({num}) or sum by ({by}) ({den}) * 0) / sum by ({by}) ({den})"


# PromQL for "estimated cost saved": what the student traffic would have cost at the teacher's
# list price, minus what the students cost (their own configured price, often 0).
SAVED_OVER_RANGE = (
    f'sum(increase(distill_tokens_total{{{RL}, {STUDENTS}, kind="prompt"}}[$__range]))'
    " * $teacher_prompt_per_1k / 1000"
    f' + sum(increase(distill_tokens_total{{{RL}, {STUDENTS}, kind="completion"}}[$__range]))'
    " * $teacher_completion_per_1k / 1000"
    f" - sum(increase(distill_cost_usd_total{{{RL}, {STUDENTS}}}[$__range])"
    f" or increase(distill_tokens_total{{{RL}, {STUDENTS}}}[$__range]) * 0)"
)
SAVED_PER_HOUR = (
    f'(sum by (variant) (rate(distill_tokens_total{{{RL}, {STUDENTS}, kind="prompt"}}{RI}))'
    " * $teacher_prompt_per_1k / 1000"
    f' + sum by (variant) (rate(distill_tokens_total{{{RL}, {STUDENTS}, kind="completion"}}{RI}))'
    " * $teacher_completion_per_1k / 1000"
    f" - (sum by (variant) (rate(distill_cost_usd_total{{{RL}, {STUDENTS}}}{RI}))"
    f" or sum by (variant) (rate(distill_tokens_total{{{RL}, {STUDENTS}}}{RI})) * 0)) * 3600"
)

REQ = f"rate(distill_requests_total{{{RVL}}}{RI})"
REQ_5XX = f'rate(distill_requests_total{{{RVL}, status=~"5.."}}{RI})'
AGREE_MEAN = (
    f"sum by (route, variant) (rate(distill_shadow_agreement_score_sum{{{RV}}}{RI}))"
    f" / sum by (route, variant) (rate(distill_shadow_agreement_score_count{{{RV}}}{RI}))"
)

OVERVIEW = Dashboard(
    uid="distill-overview",
    title="Distill / Overview",
    description="Traffic, errors, latency and cost of the Distill gateway, per route and variant.",
    extra_variables=(
        {
            "name": "teacher_prompt_per_1k",
            "label": "Teacher $/1k prompt tokens",
            "default": DEFAULT_PROMPT_PRICE,
        },
        {
            "name": "teacher_completion_per_1k",
            "label": "Teacher $/1k completion tokens",
            "default": DEFAULT_COMPLETION_PRICE,
        },
    ),
    rows=(
        Row(
            "Traffic",
            (
                Panel(
                    "Requests per second by route and variant",
                    (Query(f"sum by (route, variant) ({REQ})", "{{route}} {{variant}}"),),
                    "reqps",
                ),
                Panel(
                    "Error ratio (5xx) by route and variant",
                    (
                        Query(
                            ratio_or_zero(REQ_5XX, REQ, "route, variant"), "{{route}} {{variant}}"
                        ),
                    ),
                    "percentunit",
                ),
                Panel(
                    "Answers by HTTP status",
                    (Query(f"sum by (status) ({REQ})", "{{status}}"),),
                    "reqps",
                    width=8,
                ),
                Panel(
                    "Requests refused by the gateway, by code",
                    (Query(f"sum by (code) (rate(distill_gateway_errors_total{RI}))", "{{code}}"),),
                    "reqps",
                    width=8,
                    description="Bad requests, auth failures, unknown models: refused before any "
                    "upstream was called.",
                ),
                Panel(
                    "Requests in flight",
                    (Query("sum by (instance) (distill_requests_in_flight)", "{{instance}}"),),
                    width=8,
                ),
            ),
        ),
        Row(
            "Latency",
            (
                Panel(
                    "Latency p50 / p95 / p99 by route and variant",
                    quantiles("distill_request_duration_seconds", "route, variant", RVL),
                    "s",
                ),
                Panel(
                    "Time to first token p50 / p95 / p99 (streams)",
                    quantiles("distill_ttft_seconds", "route, variant", RVL),
                    "s",
                ),
                Panel(
                    "Upstream wait p95 vs gateway total p95",
                    (
                        Query(
                            "histogram_quantile(0.95, sum by (variant, le) (rate("
                            f"distill_upstream_duration_seconds_bucket{{{RVL}}}{RI})))",
                            "upstream {{variant}}",
                        ),
                        Query(
                            "histogram_quantile(0.95, sum by (variant, le) (rate("
                            f"distill_request_duration_seconds_bucket{{{RVL}}}{RI})))",
                            "gateway {{variant}}",
                        ),
                    ),
                    "s",
                    width=24,
                    description="The gap between the two lines is the gateway's own overhead.",
                ),
            ),
        ),
        Row(
            "Teacher vs student",
            (
                Panel(
                    "p95 latency: teacher vs students",
                    (
                        Query(
                            "histogram_quantile(0.95, sum by (variant, le) (rate("
                            f"distill_request_duration_seconds_bucket{{{RL}}}{RI})))",
                            "{{variant}}",
                        ),
                    ),
                    "s",
                    width=8,
                ),
                Panel(
                    "p95 time to first token: teacher vs students",
                    (
                        Query(
                            "histogram_quantile(0.95, sum by (variant, le) (rate("
                            f"distill_ttft_seconds_bucket{{{RL}}}{RI})))",
                            "{{variant}}",
                        ),
                    ),
                    "s",
                    width=8,
                ),
                Panel(
                    "Share of traffic by variant",
                    (
                        Query(
                            f"sum by (variant) (rate(distill_requests_total{{{RL}}}{RI}))"
                            f" / scalar(sum(rate(distill_requests_total{{{RL}}}{RI})))",
                            "{{variant}}",
                        ),
                    ),
                    "percentunit",
                    width=8,
                ),
                Panel(
                    "Error ratio (5xx): teacher vs students",
                    (
                        Query(
                            ratio_or_zero(
                                f'rate(distill_requests_total{{{RL}, status=~"5.."}}{RI})',
                                f"rate(distill_requests_total{{{RL}}}{RI})",
                                "variant",
                            ),
                            "{{variant}}",
                        ),
                    ),
                    "percentunit",
                    width=8,
                ),
                Panel(
                    "Student fallbacks to the teacher, by reason",
                    (
                        Query(
                            "sum by (route, variant, reason) "
                            f"(rate(distill_fallbacks_total{{{RV}}}{RI}))",
                            "{{route}} {{variant}} {{reason}}",
                        ),
                    ),
                    "reqps",
                    width=8,
                    description="Student attempts that failed before the first byte and were "
                    "answered by the teacher.",
                ),
                Panel(
                    "Feedback by variant and sentiment",
                    (
                        Query(
                            "sum by (variant, sentiment) "
                            f"(rate(distill_feedback_total{{{RV}}}{RI}))",
                            "{{variant}} {{sentiment}}",
                        ),
                    ),
                    "reqps",
                    width=8,
                ),
            ),
        ),
        Row(
            "Tokens and cost",
            (
                Panel(
                    "Tokens per second by variant, kind and traffic",
                    (
                        Query(
                            "sum by (variant, kind, traffic) "
                            f"(rate(distill_tokens_total{{{RV}}}{RI}))",
                            "{{variant}} {{kind}} {{traffic}}",
                        ),
                    ),
                    "short",
                    width=8,
                ),
                Panel(
                    "Spend per hour by variant and traffic (configured prices)",
                    (
                        Query(
                            "sum by (variant, traffic) "
                            f"(rate(distill_cost_usd_total{{{RV}}}{RI})) * 3600",
                            "{{variant}} {{traffic}}",
                        ),
                    ),
                    "currencyUSD",
                    width=8,
                    description="Mirrored requests (shadow students, second opinions) are paid "
                    "for too: traffic=mirror.",
                ),
                Panel(
                    "Estimated saved per hour by student",
                    (Query(SAVED_PER_HOUR, "{{variant}}"),),
                    "currencyUSD",
                    width=8,
                    description="Teacher list price x student tokens - student cost. Prices: the "
                    "text boxes at the top (USD per 1k tokens).",
                ),
                Panel(
                    "Estimated saved over the selected range",
                    (Query(SAVED_OVER_RANGE, "saved", instant=True),),
                    "currencyUSD",
                    kind="stat",
                    width=24,
                    description="sum(increase(student prompt tokens)) x teacher prompt price/1k + "
                    "sum(increase(student completion tokens)) x teacher completion price/1k - "
                    "sum(increase(distill_cost_usd_total of students)).",
                ),
            ),
        ),
    ),
)

ROLLOUTS = Dashboard(
    uid="distill-rollouts",
    title="Distill / Rollouts",
    description="Shadow agreement, canary steps, route weights and rollout decisions.",
    variables=("route", "variant"),
    rows=(
        Row(
            "Canary",
            (
                Panel(
                    "Rollout step (canary percent)",
                    (
                        Query(
                            f"max by (route, adapter) (distill_rollout_step_percent{{{R}}})",
                            "{{route}} {{adapter}}",
                        ),
                    ),
                    "percent",
                ),
                Panel(
                    "Route weights by variant",
                    (
                        Query(
                            f"max by (route, variant) (distill_route_weight{{{RV}}})",
                            "{{route}} {{variant}}",
                        ),
                    ),
                    "percentunit",
                ),
                Panel(
                    "Rollout state",
                    (
                        Query(
                            f"max by (route, adapter, state) (distill_rollout_state{{{R}}}) == 1",
                            "{{route}} {{adapter}} {{state}}",
                            instant=True,
                        ),
                    ),
                    kind="table",
                ),
                Panel(
                    "Rollout decisions",
                    (
                        Query(
                            f"sum by (route, decision) "
                            f"(increase(distill_rollout_decisions_total{{{R}}}{RI}))",
                            "{{route}} {{decision}}",
                        ),
                    ),
                    kind="timeseries",
                ),
            ),
        ),
        Row(
            "Shadow",
            (
                Panel(
                    "Shadow agreement with the teacher (mean)",
                    (Query(AGREE_MEAN, "{{route}} {{variant}}"),),
                    "percentunit",
                ),
                Panel(
                    "Shadow requests by outcome",
                    (
                        Query(
                            f"sum by (variant, outcome) "
                            f"(rate(distill_shadow_requests_total{{{RV}}}{RI}))",
                            "{{variant}} {{outcome}}",
                        ),
                    ),
                    "reqps",
                ),
                Panel(
                    "Shadow answers: 5xx ratio and p95 latency (mirrors, never sent to clients)",
                    (
                        Query(
                            ratio_or_zero(
                                f'rate(distill_requests_total{{{MIRROR}, status=~"5.."}}{RI})',
                                f"rate(distill_requests_total{{{MIRROR}}}{RI})",
                                "variant",
                            ),
                            "5xx {{variant}}",
                        ),
                        Query(
                            "histogram_quantile(0.95, sum by (variant, le) (rate("
                            f"distill_request_duration_seconds_bucket{{{MIRROR}}}{RI})))",
                            "p95 s {{variant}}",
                        ),
                    ),
                    width=24,
                    description="A failing shadow student shows here, not in the live error "
                    "ratio or alerts: clients got the teacher's answer.",
                ),
                Panel(
                    "Agreement score distribution over the range",
                    (
                        Query(
                            f"sum by (le) (increase(distill_shadow_agreement_score_bucket{{{RV}}}"
                            "[$__range]))",
                            "{{le}}",
                            instant=True,
                        ),
                    ),
                    kind="bargauge",
                    width=24,
                ),
            ),
        ),
    ),
)

LOG_PIPELINE = Dashboard(
    uid="distill-log-pipeline",
    title="Distill / Log pipeline",
    description="How exchanges reach the log store: written, spooled, dropped, queue and spool.",
    variables=(),
    rows=(
        Row(
            "Rows",
            (
                Panel(
                    "Log rows per second: written / spooled / dropped",
                    (
                        Query(f"sum(rate(distill_log_rows_written_total{RI}))", "written"),
                        Query(f"sum(rate(distill_log_rows_spooled_total{RI}))", "spooled"),
                        Query(f"sum(rate(distill_log_rows_dropped_total{RI}))", "dropped"),
                    ),
                    "short",
                ),
                Panel(
                    "Rows dropped over the range (should be 0)",
                    (
                        Query(
                            "sum(increase(distill_log_rows_dropped_total[$__range]))",
                            "dropped",
                            instant=True,
                        ),
                    ),
                    kind="stat",
                ),
                Panel(
                    "Exchanges not captured, by reason",
                    (
                        Query(
                            f"sum by (reason) (rate(distill_log_rows_skipped_total{RI}))",
                            "{{reason}}",
                        ),
                    ),
                    "short",
                ),
                Panel(
                    "Store write errors per second",
                    (
                        Query(
                            f"sum by (instance) (rate(distill_log_write_errors_total{RI}))",
                            "{{instance}}",
                        ),
                    ),
                    "short",
                ),
            ),
        ),
        Row(
            "Backlog",
            (
                Panel(
                    "Queue depth (records not yet in the store)",
                    (Query("sum by (instance) (distill_log_queue_depth)", "{{instance}}"),),
                ),
                Panel(
                    "Spool bytes",
                    (Query("sum by (instance) (distill_log_spool_bytes)", "{{instance}}"),),
                    "bytes",
                ),
                Panel(
                    "Records held in memory (spool unwritable; lost if the process dies)",
                    (Query("sum by (instance) (distill_log_backlog_records)", "{{instance}}"),),
                    width=24,
                ),
            ),
        ),
    ),
)

VLLM = Dashboard(
    uid="distill-vllm",
    title="Distill / vLLM students",
    description="vLLM's own series: load, latency, tokens and the LoRA adapters it serves.",
    variables=(),
    rows=(
        Row(
            "Load",
            (
                Panel(
                    "Requests running / waiting",
                    (
                        Query(
                            "sum by (instance) (vllm:num_requests_running)", "running {{instance}}"
                        ),
                        Query(
                            "sum by (instance) (vllm:num_requests_waiting)", "waiting {{instance}}"
                        ),
                    ),
                ),
                Panel(
                    "KV cache usage",
                    (Query("max by (instance) (vllm:kv_cache_usage_perc)", "{{instance}}"),),
                    "percentunit",
                ),
                Panel(
                    "LoRA adapters running / waiting",
                    (
                        Query(
                            "max by (instance, max_lora, running_lora_adapters, "
                            "waiting_lora_adapters) (vllm:lora_requests_info)",
                            "",
                            instant=True,
                        ),
                    ),
                    kind="table",
                    width=24,
                    description="Adapter names vLLM is running and queueing now, and --max-loras.",
                ),
            ),
        ),
        Row(
            "Latency and tokens",
            (
                Panel(
                    "End-to-end latency p50 / p95 / p99",
                    quantiles("vllm:e2e_request_latency_seconds", "model_name", ""),
                    "s",
                    width=8,
                ),
                Panel(
                    "Time to first token p50 / p95 / p99",
                    quantiles("vllm:time_to_first_token_seconds", "model_name", ""),
                    "s",
                    width=8,
                ),
                Panel(
                    "Tokens per second (prompt / generated)",
                    (
                        Query(
                            f"sum by (model_name) (rate(vllm:prompt_tokens_total{RI}))",
                            "prompt {{model_name}}",
                        ),
                        Query(
                            f"sum by (model_name) (rate(vllm:generation_tokens_total{RI}))",
                            "generated {{model_name}}",
                        ),
                    ),
                    width=8,
                ),
            ),
        ),
    ),
)

DASHBOARDS = (OVERVIEW, ROLLOUTS, LOG_PIPELINE, VLLM)

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}


def _variables(d: Dashboard) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [
        {
            "name": "datasource",
            "label": "Data source",
            "type": "datasource",
            "query": "prometheus",
            "current": {},
            "hide": 0,
            "refresh": 1,
            "options": [],
            "regex": "",
            "skipUrlSync": False,
        }
    ]
    for name in d.variables:
        query = f"label_values(distill_requests_total, {name})"
        out.append(
            {
                "name": name,
                "label": name.capitalize(),
                "type": "query",
                "datasource": DATASOURCE,
                "definition": query,
                "query": {"query": query, "refId": f"{name}-values"},
                "includeAll": True,
                "multi": True,
                "allValue": ".*",
                "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
                "refresh": 2,
                "sort": 1,
                "hide": 0,
                "options": [],
                "regex": "",
                "skipUrlSync": False,
            }
        )
    for var in d.extra_variables:
        out.append(
            {
                "name": var["name"],
                "label": var["label"],
                "type": "textbox",
                "query": var["default"],
                "hide": 0,
                "skipUrlSync": False,
                "current": {"text": var["default"], "value": var["default"]},
                "options": [{"selected": True, "text": var["default"], "value": var["default"]}],
            }
        )
    return out


def _panel(p: Panel, panel_id: int, x: int, y: int) -> dict[str, Any]:
    targets = [
        {
            "refId": chr(ord("A") + i),
            "datasource": DATASOURCE,
            "expr": q.expr,
            "legendFormat": q.legend or "__auto",
            "range": not q.instant,
            "instant": q.instant,
            **({"format": "table"} if p.kind == "table" else {}),
        }
        for i, q in enumerate(p.queries)
    ]
    options: dict[str, Any] = {}
    if p.kind == "timeseries":
        options = {
            "legend": {
                "displayMode": "table",
                "placement": "bottom",
                "calcs": ["mean", "max", "lastNotNull"],
            },
            "tooltip": {"mode": "multi", "sort": "desc"},
        }
    elif p.kind in ("stat", "bargauge"):
        options = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}}
    return {
        "id": panel_id,
        "type": p.kind,
        "title": p.title,
        "description": p.description,
        "datasource": DATASOURCE,
        "gridPos": {"h": 8, "w": p.width, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": p.unit}, "overrides": []},
        "options": options,
        "targets": targets,
    }


def build(d: Dashboard) -> dict[str, Any]:
    """The Grafana dashboard model (schemaVersion 39) for one dashboard."""
    panels: list[dict[str, Any]] = []
    y = 0
    next_id = 1
    for row in d.rows:
        panels.append(
            {
                "id": next_id,
                "type": "row",
                "title": row.title,
                "collapsed": False,
                "gridPos": {"h": 1, "w": 24, "x": 0, "y": y},
                "panels": [],
            }
        )
        next_id += 1
        y += 1
        x = 0
        for p in row.panels:
            if x + p.width > 24:
                x, y = 0, y + 8
            panels.append(_panel(p, next_id, x, y))
            next_id += 1
            x += p.width
        y += 8
    return {
        "uid": d.uid,
        "title": d.title,
        "description": d.description,
        "tags": ["distill"],
        "timezone": "browser",
        "editable": True,
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "graphTooltip": 1,
        "annotations": {"list": []},
        "links": [],
        "templating": {"list": _variables(d)},
        "panels": panels,
    }


def render_all() -> dict[str, str]:
    """File name -> JSON text, exactly as written to disk."""
    return {f"{d.uid}.json": json.dumps(build(d), indent=2) + "\n" for d in DASHBOARDS}


def main() -> int:
    files = render_all()
    for out in OUTPUTS:
        out.mkdir(parents=True, exist_ok=True)
        for stale in set(p.name for p in out.glob("*.json")) - set(files):
            (out / stale).unlink()
        for name, text in files.items():
            (out / name).write_text(text)
    print(
        f"wrote {len(files)} dashboards to " + ", ".join(str(o.relative_to(ROOT)) for o in OUTPUTS)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
