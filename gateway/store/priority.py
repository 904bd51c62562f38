"""The log writer's CPU priority: behind the request path, unless it falls too far behind.

A DuckDB batch running on the core that serves requests delays them by up to a scheduler
slice (p99 at concurrency 1 went from ~0.6 ms to ~3-4 ms, bench/README.md). At Linux's
SCHED_IDLE a waking request preempts the writer at once; the writer uses what CPU is left.
A saturated core leaves none, so a writer that starts a batch more than MAX_LAG_S late runs
that batch at a normal (nice +10) priority: records are on disk in the spool either way, and
this bounds how stale the store gets.
"""

from __future__ import annotations

import contextlib
import os
import threading

MAX_LAG_S = 5.0
CATCH_UP_NICENESS = 10


def must_catch_up(late_s: float) -> bool:
    """Whether a batch that starts `late_s` after it was due should take normal priority."""
    return late_s > MAX_LAG_S


def set_background(background: bool) -> None:
    """SCHED_IDLE for this thread, or back to the normal policy at nice +10 (Linux only).

    Neither change needs privileges; elsewhere, or if refused, priorities stay as they are.
    """
    tid = threading.get_native_id()
    with contextlib.suppress(OSError, AttributeError):
        if background:
            os.sched_setscheduler(tid, os.SCHED_IDLE, os.sched_param(0))
        else:
            os.sched_setscheduler(tid, os.SCHED_OTHER, os.sched_param(0))
            niceness = os.getpriority(os.PRIO_PROCESS, 0) + CATCH_UP_NICENESS
            os.setpriority(os.PRIO_PROCESS, tid, min(niceness, 19))
