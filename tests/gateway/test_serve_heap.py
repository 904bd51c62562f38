"""`distill serve` settles its heap before serving: start-up objects frozen, rarer young GCs."""

from __future__ import annotations

import subprocess
import sys

# In a child process: freezing the heap of the test session itself would change its GC.
PROBE = """
import gc
import gateway.app  # the gateway's long-lived objects, as `distill serve` has them
from gateway.serve_cli import GC_GEN0_THRESHOLD, settle_heap
before = gc.get_freeze_count()
settle_heap()
print(before, gc.get_freeze_count(), gc.get_threshold()[0], GC_GEN0_THRESHOLD)
"""


def test_settle_heap_freezes_startup_objects_and_raises_gen0_threshold() -> None:
    out = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, timeout=120
    ).stdout.split()
    before, frozen, gen0, wanted = map(int, out)
    assert before == 0
    assert frozen > 10_000  # FastAPI, pydantic, DuckDB, Prometheus: tens of thousands
    assert gen0 == wanted > 700
