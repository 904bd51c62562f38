"""Keep docs/performance.md's latest-run section (between markers) up to date; the rest is prose."""

from __future__ import annotations

import os
from pathlib import Path

BEGIN, END = "<!-- bench/run: begin -->", "<!-- bench/run: end -->"
SKELETON = f"# Performance\n\n{BEGIN}\n{END}\n"


def latest_section(table: str, env: dict[str, str], notes: list[str]) -> str:
    facts = "\n".join(f"- {k}: {v}" for k, v in env.items())
    trimmed = "\n".join(f"- trimmed: {n}" for n in notes)
    return f"{BEGIN}\n{facts}\n{trimmed}\n\n{table}\n{END}".replace("\n\n\n", "\n\n")


def splice(text: str, section: str) -> str:
    """Replace the marked section of text (or append one when it has none)."""
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        return head + section + rest.split(END, 1)[1]
    return text.rstrip("\n") + "\n\n" + section + "\n"


def write_doc(path: Path, table: str, env: dict[str, str], notes: list[str]) -> None:
    """Write atomically: a reader never sees half a file."""
    text = path.read_text() if path.is_file() else SKELETON
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text(splice(text, latest_section(table, env, notes)))
    os.replace(tmp, path)
