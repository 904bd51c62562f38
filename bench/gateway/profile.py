"""Profile the gateway under wrk load with py-spy; print the functions that cost the most.

    pip install py-spy   # a profiling tool, not a dependency of the project
    python -m bench.gateway.profile --seconds 15 [--stream] [--raw stacks.txt]

The gateway runs as in run.py (nginx upstream, `distill serve`, logging on, pinned to its own
core); py-spy samples it while wrk keeps 32 connections busy. The report lists self time
(where the CPU is) and inclusive time (which calls are expensive) as percent of samples.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import threading
from collections import Counter
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import yaml

from bench.gateway.fixed_upstream import FixedUpstream
from bench.gateway.load import run_wrk
from bench.gateway.run import (
    build_servers,
    gateway_config,
    pin_load,
    request_body,
    session_priority,
)


def top_frames(
    collapsed: str, limit: int
) -> tuple[list[tuple[str, float]], list[tuple[str, float]]]:
    """(self, inclusive) percent per frame from py-spy's raw (collapsed) stacks."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        total += count
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    if not total:
        return [], []

    def pct(counter: Counter[str]) -> list[tuple[str, float]]:
        return [(f, 100 * n / total) for f, n in counter.most_common(limit)]

    return pct(own), pct(inclusive)


def profile(args: argparse.Namespace, pyspy: str) -> tuple[str, str]:
    """Run the gateway under wrk while py-spy samples it; (collapsed stacks, setup line)."""
    server_cpus, pinning = pin_load(args)
    with tempfile.TemporaryDirectory(prefix="distill-profile-") as tmp_name:
        tmp = Path(tmp_name)
        body = tmp / "body.json"
        body.write_bytes(request_body(stream=args.stream))
        raw = tmp / "stacks.txt"
        with FixedUpstream() as upstream:
            config = tmp / "distill.yaml"
            config.write_text(yaml.safe_dump(gateway_config(upstream, tmp / "p.duckdb")))
            gateway = build_servers(upstream, config, server_cpus, only_gateway=True)["gateway"]
            with gateway:
                assert gateway.proc is not None
                load = threading.Thread(
                    target=run_wrk,
                    args=(f"{gateway.url}/v1/chat/completions", body),
                    kwargs={"connections": args.connections, "duration_s": args.seconds + 3},
                )
                load.start()
                cmd = [pyspy, "record", "--pid", str(gateway.proc.pid), "--format", "raw"]
                cmd += ["--duration", str(args.seconds), "--output", str(raw), "--nonblocking"]
                if args.native:
                    cmd.append("--native")
                subprocess.run(cmd, check=True, capture_output=True)
                load.join()
        return raw.read_text(), pinning


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--seconds", type=int, default=15, help="how long py-spy samples")
    p.add_argument("--connections", type=int, default=32)
    p.add_argument("--stream", action="store_true", help="load with streamed requests")
    p.add_argument("--native", action="store_true", help="include C frames (py-spy --native)")
    p.add_argument("--top", type=int, default=30, help="rows per list")
    p.add_argument("--raw", type=Path, help="also keep py-spy's collapsed stacks here")
    p.add_argument("--server-cpus", default="1")
    p.add_argument("--load-cpus", default="0")
    p.add_argument("--no-pin", action="store_true")
    p.add_argument("--nice", type=int, default=0, help="as in run.py")
    args = p.parse_args(argv)
    pyspy = shutil.which("py-spy")
    if pyspy is None:
        p.error("py-spy is not on PATH: `pip install py-spy` (or pip install --target DIR)")
    with session_priority(args.nice):
        stacks, pinning = profile(args, pyspy)
    if args.raw:
        args.raw.write_text(stacks)
    own, inclusive = top_frames(stacks, args.top)
    print(f"py-spy, {args.seconds} s, wrk -c{args.connections}, {pinning}")
    for title, rows in (("self", own), ("inclusive", inclusive)):
        print(f"\n{title} %  function")
        for frame, share in rows:
            print(f"{share:6.1f}  {frame}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
