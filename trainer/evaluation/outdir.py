"""Write a result directory completely or not at all: build it beside the target, then rename."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_output_dir(target: str | Path) -> Iterator[Path]:
    """Yield a scratch directory that replaces `target` only if the block finishes.

    On error the scratch directory is removed and an existing `target` is left as it was, so a
    half-written report never sits where a finished one is expected.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    scratch.chmod(0o755)  # mkdtemp makes it private; results are meant to be shared
    try:
        yield scratch
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    old = None
    if target.exists():
        old = target.parent / f".{target.name}.old-{scratch.name.rsplit('-', 1)[-1]}"
        target.rename(old)
    scratch.rename(target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
