"""Write what people say about logged exchanges (corrections, exclusions, labels) to the store."""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from gateway.store.backend import StoreRef
from gateway.ui import queries
from gateway.ui.source import open_store

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


class RefusedAnnotationError(ValueError):
    """The annotation would not mean anything for that exchange (the message says why)."""


def check_correction(logged: dict[str, Any], answer: str) -> None:
    """Refuse a correction the dataset build would never use, or one that changes nothing.

    `dataset build` learns from the teacher's answers to live traffic, so a correction is an
    answer for an exchange users got from the teacher. A shadow row is the student's mirrored
    answer: its prompt is its primary exchange's, and that is where a gold answer belongs.
    """
    if logged["kind"] == "shadow":
        target = f" {logged['primary_id']}" if logged.get("primary_id") else ""
        raise RefusedAnnotationError(
            f"{logged['id']} is a shadow row (the student's mirrored answer, never trained on): "
            f"correct its primary exchange{target} instead, whose answer users got"
        )
    if logged.get("variant") != "teacher":
        raise RefusedAnnotationError(
            f"{logged['id']} was answered by {logged.get('variant')!r}, not the teacher: "
            "`distill dataset build` learns only from teacher answers, so a correction here "
            "would never be used (exclude or label it instead)"
        )
    if (logged.get("answer") or "").strip() == answer.strip():
        raise RefusedAnnotationError(
            "the gold answer is the logged answer unchanged: nothing to correct "
            "(edit the answer first; the teacher's answer is already what training uses)"
        )


def new_id() -> str:
    return f"ann_{os.urandom(8).hex()}"


def add(store: StoreRef, annotation: Annotation) -> dict[str, Any]:
    """Record `annotation` (after checking the exchange exists and, for a correction, that it
    means something: see check_correction) and return the stored row."""
    with open_store(store) as conn:
        logged = queries.annotation_target(conn, annotation.request_id)
    if logged is None:
        raise UnknownRequestError(
            f"no logged exchange with id {annotation.request_id!r}: copy the id from the "
            "console or the x-distill-request-id response header"
        )
    if annotation.kind == "correction":
        check_correction(logged, annotation.answer or "")
    row = {"id": new_id(), "ts": datetime.now(UTC), **asdict(annotation)}
    with open_store(store) as conn:
        conn.execute(
            "INSERT INTO annotations (id, ts, request_id, kind, answer, label, author, note) "
            "VALUES ($id, $ts, $request_id, $kind, $answer, $label, $author, $note)",
            row,
        )
    return row


def list_for(store: StoreRef, request_id: str) -> list[dict[str, Any]]:
    with open_store(store) as conn:
        return queries.annotations_of(conn, request_id)
