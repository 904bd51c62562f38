"""The demo teacher's answers to the trainer's data-tool prompts: explain, write, judge.

The trainer sends these through the gateway like any app (so they are logged); each prompt is
recognised by the start of its system message:

    "Explain ..."                       one-sentence rationale naming the keywords found
    "Write a new input like these ..."  a new ticket, seeded by the request's `seed` + examples
    "Judge the candidate answers ..."   the number of the candidate the teacher agrees with
"""

from __future__ import annotations

import hashlib
import random
import re

from distill_demo.teacher import task

EXPLAIN_PREFIX = "Explain"
WRITE_PREFIX = "Write a new input like these"
JUDGE_PREFIX = "Judge the candidate answers"

_SECTION = re.compile(r"^(Instructions|Input|Answer|Candidates):\n", re.MULTILINE)


def sections(text: str) -> dict[str, str]:
    """`Name:\\n...` blocks of a data-tool user message, by name."""
    found = list(_SECTION.finditer(text))
    out = {}
    for i, match in enumerate(found):
        end = found[i + 1].start() if i + 1 < len(found) else len(text)
        out[match.group(1)] = text[match.end() : end].strip()
    return out


def rationale(ticket: str, label: str) -> str:
    """Why `label` fits `ticket`, naming the label's keywords the ticket contains."""
    lowered = ticket.lower()
    words = [k for k in task.KEYWORDS.get(label.strip().lower(), ()) if k in lowered]
    if not words:
        return f"The ticket names no {label} keyword, so {label} is the closest category."
    named = ", ".join(f"'{w}'" for w in words)
    return f"The ticket mentions {named}, which point to {label}."


def new_ticket(examples: str, seed: int | None) -> str:
    """A fresh ticket, the same for the same examples and seed."""
    digest = hashlib.sha256(f"{seed}\x1f{examples}".encode()).digest()
    return task.generate_ticket(random.Random(int.from_bytes(digest[:8], "big")))[0]


def verdict(user: str, *, error_rate: float, seed: str) -> str:
    """The 1-based number of the candidate equal to this teacher's own answer (else 1)."""
    parts = sections(user)
    mine = task.answer(parts.get("Input", ""), error_rate=error_rate, seed=seed)
    candidates = [
        re.sub(r"^\d+\.\s*", "", line).strip()
        for line in parts.get("Candidates", "").splitlines()
        if line.strip()
    ]
    for i, candidate in enumerate(candidates):
        if candidate.casefold().rstrip(".") == mine:
            return str(i + 1)
    return "1"


def data_tool_answer(
    system: str, user: str, *, request_seed: int | None, error_rate: float, seed: str
) -> str | None:
    """The answer to a data-tool prompt, or None when the prompt is not one of them."""
    if system.startswith(EXPLAIN_PREFIX):
        parts = sections(user)
        return rationale(parts.get("Input", user), parts.get("Answer", ""))
    if system.startswith(WRITE_PREFIX):
        return new_ticket(user, request_seed)
    if system.startswith(JUDGE_PREFIX):
        return verdict(user, error_rate=error_rate, seed=seed)
    return None
