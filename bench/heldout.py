"""Held-out quality of the CLI defaults on the real student, on tasks never tuned on.

    python bench/heldout.py --exchanges 1500 [--tasks shop-routing,order-extraction]

For each task of distill_demo/heldout (5-way routing; JSON extraction with six keys): logged
exchanges through the gateway from a stand-in teacher → `distill dataset build` → `distill
train` → `distill eval`, every step the CLI with its defaults, against the SmolLM2 student
(`distill model smollm2`). Prints and writes (--out, JSON) agreement, field F1 and JSON
validity on the held-out split (held out by user), wall times, training tokens/s and the peak
RSS of each step. Targets (issue 18): >= 0.95 agreement (routing), >= 0.90 field F1 with
>= 0.98 valid JSON (extraction), from <= 2,000 exchanges.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import openai
import yaml

from distill_demo.heldout import tasks
from distill_demo.services import distill_argv, start_service
from trainer.serving.vllm_process import free_port


def step(*args: str) -> dict[str, float]:
    """Run a distill command; its wall time, the peak RSS (MiB) of the largest child so far and
    the 1-minute load average before and after (the machine is shared: say how busy it was)."""
    load_before = os.getloadavg()[0]
    t0 = time.perf_counter()
    subprocess.run(distill_argv(*args), check=True, stdout=subprocess.DEVNULL)
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {
        "seconds": round(time.perf_counter() - t0, 1),
        "peak_rss_mib": round(peak),
        "load_before": round(load_before, 2),
        "load_after": round(os.getloadavg()[0], 2),
    }


def gateway_config(store: Path, teacher_url: str) -> dict[str, Any]:
    return {
        "store": {"path": str(store)},
        "upstreams": {"teacher": {"base_url": teacher_url}},
        "routes": [
            {"name": t.name, "match": [t.name], "teacher": {"upstream": "teacher", "model": t.name}}
            for t in tasks.TASKS.values()
        ],
    }


def send_traffic(base_url: str, task: tasks.HeldOutTask, n: int, seed: int) -> None:
    client = openai.OpenAI(base_url=base_url, api_key="bench", max_retries=2)
    rng = random.Random(seed)
    messages = [tasks.sample(task, rng) for _ in range(n)]

    def one(i: int) -> None:
        client.chat.completions.create(
            model=task.name,
            user=f"user-{i % 200}",
            messages=[
                {"role": "system", "content": task.system_prompt},
                {"role": "user", "content": messages[i]},
            ],
        )

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one, range(n)))


def log_exchanges(work: Path, names: list[str], n: int, seed: int) -> dict[str, float]:
    """Send `n` requests per task through a real gateway to the stand-in teacher."""
    teacher_port, gateway_port = free_port(), free_port()
    config = gateway_config(work / "store.duckdb", f"http://127.0.0.1:{teacher_port}/v1")
    (work / "distill.yaml").write_text(yaml.safe_dump(config))
    teacher_argv = [sys.executable, "-m", "distill_demo.heldout.server", "--port"]
    services = [
        start_service(
            "teacher",
            [*teacher_argv, str(teacher_port)],
            url=f"http://127.0.0.1:{teacher_port}",
            health_path="/health",
            log_path=work / "teacher.log",
        ),
        start_service(
            "gateway",
            distill_argv(
                "serve", "--config", str(work / "distill.yaml"), "--port", str(gateway_port)
            ),
            url=f"http://127.0.0.1:{gateway_port}",
            health_path="/readyz",
            log_path=work / "gateway.log",
        ),
    ]
    times = {}
    try:
        for service in services:
            service.wait_healthy()
        for name in names:
            t0 = time.perf_counter()
            send_traffic(f"http://127.0.0.1:{gateway_port}/v1", tasks.TASKS[name], n, seed)
            times[name] = round(time.perf_counter() - t0, 1)
    finally:
        for service in services:
            service.stop()  # graceful: the spool is flushed into the store
    return times


def run_task(work: Path, name: str, base: Path, seed: int) -> dict[str, Any]:
    data, adapter, evaluation = (
        work / f"data-{name}",
        work / f"adapter-{name}",
        work / f"eval-{name}",
    )
    steps = {
        "dataset build": step(
            "dataset", "build", "--store", str(work / "store.duckdb"), "--route", name,
            "--out", str(data), "--seed", str(seed),
        ),
        "train": step(
            "train", "--dataset", str(data), "--base-model", str(base), "--out", str(adapter),
            "--quiet",
        ),
        "eval": step(
            "eval", "--adapter", str(adapter), "--dataset", str(data), "--out", str(evaluation),
        ),
    }  # fmt: skip
    card = json.loads((data / "dataset.json").read_text())
    lineage = json.loads((adapter / "distill.json").read_text())
    report = json.loads((evaluation / "eval.json").read_text())
    metrics = report.get("metrics", report)
    return {
        "task": name,
        "kind": tasks.TASKS[name].kind,
        "rows_in": card["rows_in"],
        "train": card["split"]["train"],
        "eval": card["split"]["eval"],
        "agreement": metrics.get("agreement"),
        "field_f1": metrics.get("field_f1"),
        "json_valid": metrics.get("json_valid"),
        "train_steps": lineage.get("steps"),
        "train_tokens_per_s": lineage.get("metrics", {}).get("tokens_per_second"),
        "train_threads": lineage.get("metrics", {}).get("threads"),
        "preset": lineage.get("config", {}).get("preset"),
        "learning_rate": lineage.get("config", {}).get("learning_rate"),
        "steps": steps,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--exchanges", type=int, default=1500, help="logged requests per task")
    parser.add_argument("--tasks", default=",".join(tasks.TASKS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("heldout.json"))
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument(
        "--build-only",
        action="store_true",
        help="log the traffic and build each task's dataset, then stop (and keep them): "
        "for bench/lr_grid.py",
    )
    args = parser.parse_args()
    names = [n.strip() for n in args.tasks.split(",") if n.strip()]
    unknown = sorted(set(names) - set(tasks.TASKS))
    if unknown:
        parser.error(f"unknown task(s) {unknown}: choose from {sorted(tasks.TASKS)}")
    if args.exchanges > 2000:
        parser.error("the target is about <= 2,000 exchanges per task")
    from trainer.models.smollm2 import build_smollm2

    base, _ = build_smollm2()
    work = Path(tempfile.mkdtemp(prefix="distill-bench-heldout-"))
    started = time.perf_counter()
    try:
        traffic = log_exchanges(work, names, args.exchanges, args.seed)
        if args.build_only:
            args.keep = True
            for name in names:
                data = work / f"data-{name}"
                built = step(
                    "dataset", "build", "--store", str(work / "store.duckdb"), "--route", name,
                    "--out", str(data), "--seed", str(args.seed),
                )  # fmt: skip
                print(json.dumps({"task": name, "dataset": str(data), "traffic_s": traffic[name],
                                  "dataset build": built}))  # fmt: skip
            return
        results = []
        for name in names:
            row = run_task(work, name, base, args.seed)
            row["traffic_s"] = traffic[name]
            print(json.dumps(row), flush=True)
            results.append(row)
        summary = {"exchanges": args.exchanges, "results": results}
        summary["wall_s"] = round(time.perf_counter() - started, 1)
        args.out.write_text(json.dumps(summary, indent=2) + "\n")
        print(f"wrote {args.out} ({summary['wall_s']} s); work dir {work}")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
