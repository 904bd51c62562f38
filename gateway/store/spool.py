"""The append-only on-disk spool: every record lands here before its response completes.

Records are JSON lines in segment files, one stream per table
(`requests-<boot>-000000001.jsonl`: the boot id makes names unique per process life, so a
restarted gateway never reuses a name that may already name a written Parquet part).
The event loop appends with one `write()` per record (it survives `kill -9` of the process
once `write` returns); the writer thread rotates segments and ingests closed ones.
"""

from __future__ import annotations

import fcntl
import os
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path

_SEGMENT = re.compile(r"^(?P<table>[a-z_]+)-(?:(?P<boot>[0-9a-f]{20})-)?(?P<seq>\d{9})\.jsonl$")


@dataclass(frozen=True, order=True)
class Segment:
    seq: int
    table: str
    path: Path
    boot: str = ""  # the writing process's boot id ("" in names from before boot ids)

    @property
    def key(self) -> str:
        """Unique for this segment across restarts: `<boot>-<seq>`."""
        return f"{self.boot}-{self.seq:09d}" if self.boot else f"{self.seq:09d}"


def new_boot_id() -> str:
    """Unique per process life and ordered by start time (like a ULID): ms clock + random."""
    return f"{time.time_ns() // 1_000_000:012x}{os.urandom(4).hex()}"


class SpoolBusyError(RuntimeError):
    """Another live process owns this spool directory."""


def claim(directory: Path) -> int | None:
    """Take the directory's lock (held until the fd closes or the process dies); None if held."""
    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(directory / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


class Spool:
    """Segmented JSONL files in one directory, owned by one gateway process (flock)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        lock = claim(directory)
        if lock is None:
            raise SpoolBusyError(
                f"spool {directory} is in use by another gateway process; give each replica "
                "its own store.spool_dir"
            )
        self._lock_fd = lock
        self._lock = threading.Lock()
        self.boot = new_boot_id()
        existing = list_segments(directory)
        self._seq = max((s.seq for s in existing), default=0) + 1
        self._open: dict[str, tuple[int, Path]] = {}  # table -> (fd, path)
        self._records_in_open = 0

    def append(self, table: str, line: bytes) -> None:
        """Append one JSON line (must end with a newline) to the table's open segment."""
        with self._lock:
            fd, _ = self._open.get(table) or self._open_segment(table)
            written = os.write(fd, line)
            if written != len(line):  # a short write means a full disk; don't leave half a line
                os.ftruncate(fd, os.lseek(fd, 0, os.SEEK_CUR) - written)
                raise OSError(f"short write to spool ({written} of {len(line)} bytes)")
            self._records_in_open += 1

    @property
    def records_in_open(self) -> int:
        return self._records_in_open

    def rotate(self) -> None:
        """Close the open segments so the writer can ingest them; new appends start new ones."""
        with self._lock:
            for fd, _ in self._open.values():
                os.close(fd)
            self._open.clear()
            self._records_in_open = 0

    def closed_segments(self, *, include_open: bool = False) -> list[Segment]:
        """Segments no append can reach any more (or all, with include_open).

        Under the lock: a segment opened between scanning the directory and reading the open
        set would otherwise count as closed, be ingested and deleted while still appended to.
        """
        with self._lock:
            segments = list_segments(self.directory)
            if include_open:
                return segments
            open_paths = {path for _, path in self._open.values()}
        return [s for s in segments if s.path not in open_paths]

    def close(self) -> None:
        self.rotate()
        os.close(self._lock_fd)

    def pending_bytes(self) -> int:
        return sum(s.path.stat().st_size for s in self.closed_segments(include_open=True))

    def _open_segment(self, table: str) -> tuple[int, Path]:
        path = self.directory / f"{table}-{self.boot}-{self._seq:09d}.jsonl"
        self._seq += 1
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._open[table] = (fd, path)
        return fd, path


def list_segments(directory: Path) -> list[Segment]:
    segments = []
    for entry in os.scandir(directory):
        match = _SEGMENT.match(entry.name)
        if match:
            segments.append(
                Segment(int(match["seq"]), match["table"], Path(entry.path), match["boot"] or "")
            )
    return sorted(segments)
