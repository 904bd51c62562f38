"""The log writer's CPU priority: behind the request path, unless it holds things up.

A DuckDB batch running on the core that serves requests delays them by up to a scheduler
slice (p99 at concurrency 1 went from ~0.6 ms to ~3-4 ms, bench/README.md). At Linux's
SCHED_IDLE a waking request preempts the writer at once; the writer uses what CPU is left.
A saturated core (or a pod at its CPU limit) leaves none, so the writer takes a normal
priority (nice +10):
- for a batch that starts more than MAX_LAG_S late, which bounds how stale the store gets;
- once a batch has held the store file for MAX_HOLD_S, lifted from the event loop (a
  starved thread cannot lift itself; a watchdog thread of its own cost more p99 than it
  saved), so another process waiting for the file's lock (the trainer, the CLI) is not kept
  waiting by a starved writer.
"""

from __future__ import annotations

import contextlib
import os
import threading

MAX_LAG_S = 5.0
MAX_HOLD_S = 5.0
CATCH_UP_NICENESS = 10


def must_catch_up(late_s: float) -> bool:
    """Whether a batch that starts `late_s` after it was due should take normal priority."""
    return late_s > MAX_LAG_S


def must_lift(held_s: float | None) -> bool:
    """Whether a batch that has held the store for `held_s` (None: no batch) must be lifted."""
    return held_s is not None and held_s > MAX_HOLD_S


def set_background(background: bool, tid: int | None = None) -> None:
    """SCHED_IDLE for a thread (this one by default), or back to the normal policy at nice +10.

    Linux only, and neither change needs privileges; elsewhere, or if refused, nothing changes.
    """
    tid = threading.get_native_id() if tid is None else tid
    with contextlib.suppress(OSError, AttributeError):
        if background:
            os.sched_setscheduler(tid, os.SCHED_IDLE, os.sched_param(0))
        else:
            os.sched_setscheduler(tid, os.SCHED_OTHER, os.sched_param(0))
            niceness = os.getpriority(os.PRIO_PROCESS, 0) + CATCH_UP_NICENESS
            os.setpriority(os.PRIO_PROCESS, tid, min(niceness, 19))
