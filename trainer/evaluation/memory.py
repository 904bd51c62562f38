"""Peak resident memory of this process, for training and eval reports."""

from __future__ import annotations

import resource
import sys


def peak_rss_mb() -> float:
    """The most resident memory this process has held so far, in MiB (0 where unknown)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS bytes.
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024
