"""Gateway figures: req/s (c=32, 128; JSON and streaming), added latency at c=1, TTFT added.

Reuses bench/gateway (nginx fixed upstream, `distill serve` with logging on, the bare
Starlette+aiohttp forwarder, wrk, the TTFT client) and adds LiteLLM's proxy as a target.
Servers run on CPU 1, load on CPU 0 (bench/README.md, "Pinning").
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import yaml

from bench.gateway.fixed_upstream import FixedUpstream
from bench.gateway.load import WrkResult, run_wrk
from bench.gateway.procs import Server, free_port
from bench.gateway.run import (
    count_rows,
    gateway_config,
    gateway_server,
    request_body,
    scrape_answered,
    uvicorn_cmd,
)
from bench.gateway.ttft import measure_ttft
from bench.suite.litellm_proxy import MASTER_KEY, litellm_server
from bench.suite.table import Row

PART = "gateway"
DIRECT, GATEWAY, STARLETTE, LITELLM = "direct", "gateway", "starlette", "litellm"
BASELINE_LABELS = {
    DIRECT: "direct (nginx)",
    STARLETTE: "bare Starlette+aiohttp",
    LITELLM: "LiteLLM proxy",
}
TARGETS = {STARLETTE: "ratio >= 0.7", LITELLM: "ratio >= 40"}


@dataclass(frozen=True)
class GatewayPlan:
    duration_s: float = 5.0
    warmup_s: float = 1.0
    concurrencies: tuple[int, ...] = (32, 128)
    ttft_n: int = 300
    litellm: bool = True
    server_cpus: str | None = "1"
    load_cpus: str = "0"

    def __post_init__(self) -> None:
        if self.duration_s <= 0 or self.ttft_n <= 0 or not self.concurrencies:
            raise ValueError(f"bad gateway plan: {self}")


def bare_forwarder(upstream_base: str, cpus: str | None) -> Server:
    """The bare Starlette+aiohttp forwarder (bench/gateway/baselines) in front of upstream_base."""
    port = free_port()
    return Server(
        uvicorn_cmd("bench.gateway.baselines.starlette_aiohttp:app", port),
        port=port,
        ready_path="/v1/chat/completions",
        ready_method="POST",
        cpus=cpus,
        env={"UPSTREAM_URL": upstream_base},
        cwd=Path(__file__).resolve().parents[2],
    )


def run_gateway(plan: GatewayPlan) -> list[Row]:
    """Measure every target in one go; rows compare the gateway with each baseline."""
    everything = os.sched_getaffinity(0)
    try:
        return _run_gateway(plan)
    finally:
        # The load side pinned this process to its CPUs; the parts after this one (training,
        # serving with its own pinning) need the whole machine back.
        os.sched_setaffinity(0, everything)


def _run_gateway(plan: GatewayPlan) -> list[Row]:
    if plan.server_cpus is not None and (os.cpu_count() or 1) >= 2:
        os.sched_setaffinity(0, {int(c) for c in plan.load_cpus.split(",")})
    else:
        plan = GatewayPlan(**{**plan.__dict__, "server_cpus": None})
    os.environ["WRK_AUTH"] = MASTER_KEY  # every target gets it; only LiteLLM checks it
    with tempfile.TemporaryDirectory(prefix="distill-suite-gw-") as tmp_name:
        tmp = Path(tmp_name)
        bodies = {False: tmp / "body.json", True: tmp / "stream.json"}
        for stream, path in bodies.items():
            path.write_bytes(request_body(stream=stream))
        store = tmp / "bench.duckdb"
        with FixedUpstream() as up, contextlib.ExitStack() as stack:
            (tmp / "distill.yaml").write_text(yaml.safe_dump(gateway_config(up, store)))
            gw = stack.enter_context(gateway_server(tmp / "distill.yaml", plan.server_cpus))
            urls: dict[bool, dict[str, str]] = {
                False: {
                    DIRECT: f"{up.base_url}/chat/completions",
                    GATEWAY: f"{gw.url}/v1/chat/completions",
                },
                True: {
                    DIRECT: f"{up.stream_base_url}/chat/completions",
                    GATEWAY: f"{gw.url}/v1/chat/completions",
                },
            }
            pids = {DIRECT: up.pid, GATEWAY: gw.pid}
            for stream, base in ((False, up.base_url), (True, up.stream_base_url)):
                server = stack.enter_context(bare_forwarder(base, plan.server_cpus))
                urls[stream][STARLETTE] = f"{server.url}/v1/chat/completions"
                pids[f"{STARLETTE}-{stream}"] = server.pid
            if plan.litellm:
                print("starting LiteLLM's proxy ...", file=sys.stderr)
                models = {"gpt-4o": up.base_url, "gpt-4o-stream": up.stream_base_url}
                lite = stack.enter_context(litellm_server(models, tmp, plan.server_cpus))
                for stream in (False, True):
                    urls[stream][LITELLM] = f"{lite.url}/v1/chat/completions"
                pids[LITELLM] = lite.pid
            rows = _measure(plan, urls, bodies, pids)
            answered = scrape_answered(gw.url)
        logged = count_rows(store)  # the gateway stopped gracefully: its log is flushed
    rows.append(
        Row(
            PART,
            "exchanges logged",
            "whole run",
            logged,
            "rows",
            "answered (distill_requests_total)",
            answered,
            "ratio >= 1",
        )
    )
    return rows


def _pid(pids: dict[str, int], target: str, stream: bool) -> int:
    return pids.get(target) or pids[f"{target}-{stream}"]


def _measure(
    plan: GatewayPlan,
    urls: dict[bool, dict[str, str]],
    bodies: dict[bool, Path],
    pids: dict[str, int],
) -> list[Row]:
    rows: list[Row] = []

    def wrk(target: str, stream: bool, connections: int, latency: bool = False) -> WrkResult:
        url, body = urls[stream][target], bodies[stream]
        run_wrk(url, body, connections=connections, duration_s=plan.warmup_s)
        run = run_wrk(
            url,
            body,
            connections=connections,
            duration_s=plan.duration_s,
            latency=latency,
            server_pid=_pid(pids, target, stream),
        )
        return run

    for stream in (False, True):
        kind = "streaming" if stream else "JSON"
        for c in plan.concurrencies:
            results: dict[str, WrkResult] = {}
            for target in urls[stream]:
                print(f"req/s {kind} c={c}: {target} ...", file=sys.stderr)
                results[target] = wrk(target, stream, c)
            gw = results[GATEWAY]
            rows.append(
                Row(
                    PART,
                    f"req/s, {kind}, logging on",
                    f"c={c}",
                    gw.rps,
                    "req/s",
                    target="" if stream else ">= 3000",
                )
            )
            for target, result in results.items():
                if target == GATEWAY:
                    continue
                rows.append(
                    Row(
                        PART,
                        f"req/s, {kind}",
                        f"c={c}",
                        gw.rps,
                        "req/s",
                        BASELINE_LABELS[target],
                        result.rps,
                        TARGETS.get(target, ""),
                    )
                )
            rows.append(
                Row(
                    PART,
                    f"server CPU per request, {kind}",
                    f"c={c}",
                    gw.cpu_us_per_request,
                    "µs",
                    BASELINE_LABELS[STARLETTE],
                    results[STARLETTE].cpu_us_per_request,
                    higher_is_better=False,
                )
            )
    lat: dict[str, WrkResult] = {}
    for target in urls[False]:
        print(f"latency c=1: {target} ...", file=sys.stderr)
        lat[target] = wrk(target, False, 1, latency=True)
    for q, goal in (("p50", "<= 0.3"), ("p99", "<= 3")):
        attr = f"{q}_ms"
        added = {t: getattr(r, attr) - getattr(lat[DIRECT], attr) for t, r in lat.items()}
        rows += added_rows(f"added latency {q}, c=1", "c=1", added, goal)
    print("streaming TTFT ...", file=sys.stderr)
    names = list(urls[True])
    warm = 20
    ttft = dict(
        zip(
            names,
            measure_ttft(
                [urls[True][t] for t in names],
                request_body(stream=True),
                n=plan.ttft_n,
                warmup=warm,
                auth=MASTER_KEY,
            ),
            strict=True,
        )
    )
    for pct, goal in ((50, "<= 0.5"), (99, "")):
        added = {t: r.percentile(pct) - ttft[DIRECT].percentile(pct) for t, r in ttft.items()}
        rows += added_rows(f"TTFT added p{pct}, streaming", f"n={plan.ttft_n}", added, goal)
    return rows


def added_rows(figure: str, size: str, added: dict[str, float], goal: str) -> list[Row]:
    """Time the gateway adds over direct: alone (with its target), then beside each baseline's."""
    ours = added[GATEWAY]
    rows = [Row(PART, figure, size, ours, "ms", target=goal, higher_is_better=False)]
    rows += [
        Row(PART, figure, size, ours, "ms", BASELINE_LABELS[t], added[t], higher_is_better=False)
        for t in (STARLETTE, LITELLM)
        if t in added
    ]
    return rows
