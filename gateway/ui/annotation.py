"""Write what people say about logged exchanges (corrections, exclusions, labels) to the store."""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gateway.store.db import connect
from gateway.ui import queries
from gateway.ui.source import control_file, open_store

KINDS = ("correction", "exclude", "include", "label")
MAX_TEXT = 100_000
_AUTHOR = re.compile(r"^[\w .@+-]{1,64}$")


class UnknownRequestError(LookupError):
    """The request id names no logged exchange."""


@dataclass(frozen=True)
class Annotation:
    """One statement about one exchange; the newest per (request_id, kind) is the one in force."""

    request_id: str
    kind: str
    author: str
    answer: str | None = None  # kind correction: the gold assistant answer
    label: str | None = None  # kind label
    note: str | None = None

    def __post_init__(self) -> None:
        if not self.request_id.strip():
            raise ValueError("request_id is empty: give the exchange's x-distill-request-id")
        if self.kind not in KINDS:
            raise ValueError(f"kind={self.kind!r}: use one of {', '.join(KINDS)}")
        if self.kind == "correction" and not (self.answer or "").strip():
            raise ValueError("a correction needs the gold answer (answer / --answer)")
        if self.kind == "label" and not (self.label or "").strip():
            raise ValueError("a label annotation needs the label (label / --label)")
        if self.kind != "correction" and self.answer is not None:
            raise ValueError(f"answer is only for kind correction, not {self.kind}")
        if self.kind != "label" and self.label is not None:
            raise ValueError(f"label is only for kind label, not {self.kind}")
        if not _AUTHOR.match(self.author):
            raise ValueError(
                f"author={self.author!r}: use 1-64 letters, digits, spaces or . @ + - _"
            )
        for name in ("answer", "label", "note"):
            value = getattr(self, name)
            if value is not None and len(value) > MAX_TEXT:
                raise ValueError(f"{name} is {len(value)} characters; the limit is {MAX_TEXT}")


def new_id() -> str:
    return f"ann_{os.urandom(8).hex()}"


def add(store: Path, annotation: Annotation) -> dict[str, Any]:
    """Record `annotation` (after checking the exchange exists) and return the stored row."""
    with open_store(store) as conn:
        found = conn.execute(
            "SELECT count(*) FROM requests WHERE id = ?", [annotation.request_id]
        ).fetchone()
    if not found or not found[0]:
        raise UnknownRequestError(
            f"no logged exchange with id {annotation.request_id!r}: copy the id from the "
            "console or the x-distill-request-id response header"
        )
    row = {"id": new_id(), "ts": datetime.now(UTC), **asdict(annotation)}
    with connect(control_file(store)) as conn:
        conn.execute(
            "INSERT INTO annotations (id, ts, request_id, kind, answer, label, author, note) "
            "VALUES ($id, $ts, $request_id, $kind, $answer, $label, $author, $note)",
            row,
        )
    return row


def list_for(store: Path, request_id: str) -> list[dict[str, Any]]:
    with open_store(store) as conn:
        return queries.annotations_of(conn, request_id)
