"""Word-level differences between the teacher's and the student's answers, as plain segments."""

from __future__ import annotations

import difflib
import re
from typing import Literal

Op = Literal["equal", "delete", "insert"]

_TOKENS = re.compile(r"\s+|\w+|[^\w\s]")


def diff_segments(teacher: str, student: str) -> list[tuple[Op, str]]:
    """Segments that rebuild both texts: `delete` only in the teacher's, `insert` only in the
    student's. Plain text, so the report's template escapes it like any other user text."""
    a = _TOKENS.findall(teacher)
    b = _TOKENS.findall(student)
    segments: list[tuple[Op, str]] = []
    matcher = difflib.SequenceMatcher(a=a, b=b, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            segments.append(("equal", "".join(a[i1:i2])))
            continue
        if i2 > i1:
            segments.append(("delete", "".join(a[i1:i2])))
        if j2 > j1:
            segments.append(("insert", "".join(b[j1:j2])))
    return segments
