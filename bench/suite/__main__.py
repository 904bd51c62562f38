"""`bench/run [--quick]`: measure every figure in one run, print the table, write the doc."""

from __future__ import annotations

import argparse
import datetime
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

from bench.suite.doc import write_doc
from bench.suite.table import Row, render

REPO = Path(__file__).resolve().parents[2]
PARTS = ("gateway", "store", "training", "serving")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench/run", description=__doc__)
    p.add_argument("--quick", action="store_true", help="smoke run (<= 2 min): small sizes")
    p.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated of {PARTS}")
    p.add_argument("--no-litellm", action="store_true", help="skip LiteLLM's proxy")
    p.add_argument("--json", type=Path, help="also write the rows as JSON here")
    p.add_argument(
        "--doc",
        type=Path,
        default=None,
        help="write the Markdown report here (default: docs/performance.md for a full run "
        "of every part; nothing for --quick or a subset)",
    )
    args = p.parse_args(argv)
    args.parts = [x for x in args.parts.split(",") if x]
    unknown = sorted(set(args.parts) - set(PARTS))
    if unknown:
        p.error(f"--parts: unknown {', '.join(unknown)} (choose from {', '.join(PARTS)})")
    if args.doc is None and not args.quick and set(args.parts) == set(PARTS):
        args.doc = REPO / "docs" / "performance.md"
    return args


def load_average() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def run(args: argparse.Namespace) -> tuple[list[Row], list[str]]:
    """Every selected part in order; returns the rows and notes on what was trimmed."""
    rows: list[Row] = []
    notes: list[str] = []
    quick = args.quick
    work = Path(tempfile.mkdtemp(prefix="distill-suite-"))
    if "gateway" in args.parts:
        from bench.suite.gateway_part import GatewayPlan, run_gateway

        plan = (
            GatewayPlan(duration_s=1, warmup_s=1, concurrencies=(32,), ttft_n=30, litellm=False)
            if quick
            else GatewayPlan(litellm=not args.no_litellm)
        )
        rows += run_gateway(plan)
        if quick:
            notes.append("gateway: 1 s runs at c=32 only, 30 TTFT samples, no LiteLLM")
    if "store" in args.parts:
        from bench.suite.store_part import run_dataset_build, run_store

        rows += run_store((10_000,) if quick else (100_000, 300_000))
        rows += run_dataset_build((10_000,) if quick else (100_000, 300_000, 1_000_000))
    adapters: dict[int, Path] = {}
    if "training" in args.parts or "serving" in args.parts:
        from trainer.tiny import build_tiny_model

        base = build_tiny_model(work / "tiny", seed=0)
    if "training" in args.parts:
        from bench.suite.training_part import run_training

        train_rows, adapters[16] = run_training(base, work, (10,) if quick else (30, 90))
        rows += train_rows
    if "serving" in args.parts:
        from bench.suite.serving_part import Flags, run_serving
        from bench.suite.training_part import distill_train
        from tests.fixtures.models import write_triage_dataset

        if quick:
            notes.append("serving: skipped in --quick (vLLM alone takes ~40 s to start)")
        else:
            data = write_triage_dataset(work / "serve-data", n_train=200, n_eval=10, seed=1)
            if 16 not in adapters:
                distill_train(data, base, work / "adapter-r16", 30)
                adapters[16] = work / "adapter-r16"
            distill_train(data, base, work / "adapter-r8", 30, rank=8)
            adapters[8] = work / "adapter-r8"
            flags = [Flags(4, 4, 16), Flags(4, 4, 8)]
            rows += run_serving(base, adapters, flags)
    return rows, notes


def environment() -> dict[str, str]:
    cpu = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    rev = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO
    ).stdout.strip()
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{os.cpu_count()} vCPU ({cpu}), Python {platform.python_version()}",
        "commit": rev or "?",
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    env = environment()
    env["load before"] = load_average()
    t0 = time.perf_counter()
    rows, notes = run(args)
    env["load after"] = load_average()
    env["wall time"] = f"{time.perf_counter() - t0:.0f} s"
    table = render(rows)
    print(table)
    print(f"\n{env}", file=sys.stderr)
    for note in notes:
        print(f"trimmed: {note}", file=sys.stderr)
    if args.json:
        data = {"env": env, "notes": notes, "rows": [r.as_dict() for r in rows]}
        args.json.write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2))  # NaN -> null
    if args.doc:
        write_doc(args.doc, table, env, notes)
    missed = [r for r in rows if r.met is False]
    logged = [r for r in rows if r.figure == "exchanges logged"]
    if any(r.met is False for r in logged) or any(math.isnan(r.value) for r in logged):
        print("FAIL: the gateway answered requests it did not log", file=sys.stderr)
        return 1
    print(f"{len(missed)} target(s) missed", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
