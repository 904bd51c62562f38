"""Write the dataset into a temporary directory and rename it into place only when complete."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import orjson

CARD = "dataset.json"
SPLITS: tuple[str, ...] = ("train.jsonl", "eval.jsonl")


@dataclass(frozen=True)
class FileInfo:
    rows: int
    sha256: str


def example_line(
    messages: list[dict[str, Any]], weight: float | None = None, **extra: Any
) -> bytes:
    """One line of OpenAI's fine-tuning chat format; `weight` only when balancing by weights.

    `extra` keys (e.g. `disagreement` for a curriculum) are written when not None.
    """
    record: dict[str, Any] = {"messages": messages}
    if weight is not None:
        record["weight"] = weight
    record.update({k: v for k, v in extra.items() if v is not None})
    return orjson.dumps(record) + b"\n"


def content_hash(files: dict[str, FileInfo]) -> str:
    """sha256 over each data file's name and sha256, in name order: one id for the content."""
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(f"{name}\0{files[name].sha256}\n".encode())
    return digest.hexdigest()


def check_out_dir(out: Path) -> None:
    """Refuse to overwrite: an existing non-empty --out may be a dataset someone trained on."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(
            f"output {out} already exists and is not empty: pass a new --out or remove it"
        )


class DatasetWriter:
    """Files go to a hidden sibling of `out`; `commit` renames it, any error removes it."""

    def __init__(self, out: Path) -> None:
        check_out_dir(out)
        self.out = out
        out.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
        self.files: dict[str, FileInfo] = {}

    def __enter__(self) -> DatasetWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.tmp.exists():
            shutil.rmtree(self.tmp, ignore_errors=True)

    def write_jsonl(self, name: str, lines: Iterable[bytes]) -> FileInfo:
        digest = hashlib.sha256()
        rows = 0
        with open(self.tmp / name, "wb") as fh:
            for line in lines:
                fh.write(line)
                digest.update(line)
                rows += 1
        info = self.files[name] = FileInfo(rows=rows, sha256=digest.hexdigest())
        return info

    def commit(self, card: dict[str, Any]) -> Path:
        """Write the card last, then move the whole directory into place in one rename."""
        (self.tmp / CARD).write_bytes(orjson.dumps(card, option=orjson.OPT_INDENT_2) + b"\n")
        os.chmod(self.tmp, 0o755)  # mkdtemp makes it private; a dataset is meant to be shared
        check_out_dir(self.out)
        if self.out.exists():
            self.out.rmdir()  # empty, as just checked: rename cannot replace a directory
        self.tmp.rename(self.out)
        return self.out
