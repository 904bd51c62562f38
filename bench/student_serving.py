"""vLLM (CPU) serving the real student: req/s and p50 latency on the base model and with two
LoRA adapters in use, and the adapter/base ratio.

    python bench/student_serving.py --adapter A1_DIR --adapter A2_DIR [--seconds 30]

Starts vLLM on SmolLM2-135M-Instruct (the cached `distill model smollm2` build) with runtime
LoRA (max 2 loras, rank 16), loads the two adapters, then keeps --concurrency chat requests in
flight (triage prompts, 8 output tokens, temperature 0) for --seconds per set after a warm-up:
first the base model, then both adapters (requests alternate between them), then the base
again; the base figure is the mean of its two rounds. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import httpx

from bench.suite.serving_part import bodies


async def load(url: str, payloads: list[bytes], concurrency: int, seconds: float) -> dict[str, Any]:
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds

    async def client(session: aiohttp.ClientSession, offset: int) -> None:
        nonlocal errors
        i = offset
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            body = payloads[i % len(payloads)]
            async with session.post(
                url, data=body, headers={"content-type": "application/json"}
            ) as r:
                await r.read()
                if r.status != 200:
                    errors += 1
            latencies.append((time.perf_counter() - t0) * 1000)
            i += concurrency

    started = time.perf_counter()
    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(client(session, k) for k in range(concurrency)))
    wall = time.perf_counter() - started
    return {
        "requests": len(latencies),
        "errors": errors,
        "req_per_s": round(len(latencies) / wall, 2),
        "p50_ms": round(statistics.median(latencies), 1) if latencies else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--adapter", action="append", type=Path, required=True)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    if len(args.adapter) != 2:
        parser.error("give exactly two --adapter directories")
    from trainer.models.smollm2 import build_smollm2
    from trainer.serving.vllm_process import start_vllm

    base, _ = build_smollm2()
    log = Path(tempfile.mkdtemp(prefix="distill-student-serving-")) / "vllm.log"
    with start_vllm(
        base,
        log_path=log,
        served_model_name="student",
        max_lora_rank=16,
        max_loras=2,
        max_model_len=512,
        ready_timeout=900,
    ) as server:
        for name, path in zip(("a1", "a2"), args.adapter, strict=True):
            response = httpx.post(
                f"{server.base_url}/load_lora_adapter",
                json={"lora_name": name, "lora_path": str(path.resolve())},
                timeout=300,
            )
            response.raise_for_status()
        url = f"{server.base_url}/chat/completions"
        sets = {"base": ["student"], "2 adapters": ["a1", "a2"]}
        results: dict[str, list[dict[str, Any]]] = {name: [] for name in sets}
        for name in ("base", "2 adapters", "base"):
            payloads = bodies(sets[name])
            asyncio.run(load(url, payloads, args.concurrency, 5))  # warm-up
            results[name].append(asyncio.run(load(url, payloads, args.concurrency, args.seconds)))
    base_rps = statistics.mean(r["req_per_s"] for r in results["base"])
    base_p50 = statistics.mean(r["p50_ms"] for r in results["base"])
    adapters = results["2 adapters"][0]
    print(
        json.dumps(
            {
                "concurrency": args.concurrency,
                "seconds": args.seconds,
                "load_average": os.getloadavg()[0],
                "base": {"req_per_s": round(base_rps, 2), "p50_ms": round(base_p50, 1)},
                "2 adapters": adapters,
                "adapter_vs_base_req_per_s": round(adapters["req_per_s"] / base_rps, 3),
                "rounds": results,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
