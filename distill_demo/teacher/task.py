"""The demo task, support-ticket triage: ticket generation and the teacher's labelling rule."""

from __future__ import annotations

import hashlib
import json
import random

LABELS: tuple[str, ...] = ("billing", "technical", "account")
SYSTEM_PROMPT = (
    "Classify the customer support ticket into exactly one category: "
    "billing, technical or account. Answer with the category only."
)
JSON_SYSTEM_PROMPT = (
    "Classify the customer support ticket. Reply with a JSON object with the keys "
    '"category" (billing, technical or account) and "priority" (high or low).'
)

# Words that identify each category; the teacher's rule counts them.
KEYWORDS: dict[str, tuple[str, ...]] = {
    "billing": ("invoice", "charged", "refund", "payment", "card", "bill", "subscription fee"),
    "technical": ("crash", "error", "bug", "timeout", "loading", "broken", "api"),
    "account": ("password", "login", "email address", "username", "profile", "2fa", "locked"),
}
URGENT = ("urgent", "asap", "immediately", "right now", "today")

_OPENERS = ("Hi,", "Hello team,", "Hey,", "Good morning,", "Dear support,", "")
_CLOSERS = ("Thanks.", "Please help.", "Any idea?", "Regards, a customer.", "Cheers!", "")
_TEMPLATES: dict[str, tuple[str, ...]] = {
    "billing": (
        "I was charged twice for my {w}.",
        "My {w} shows the wrong amount this month.",
        "Can I get a refund on the last {w}?",
        "The {w} failed even though my card is valid.",
        "Why did my subscription fee go up on the {w}?",
    ),
    "technical": (
        "The app shows an error every time I open the {w}.",
        "Your api returns a timeout when I call the {w}.",
        "The {w} page keeps loading forever.",
        "I found a bug: the {w} crashes on save.",
        "Export is broken since the update to the {w}.",
    ),
    "account": (
        "I cannot login to my {w}.",
        "Please reset the password for my {w}.",
        "How do I change the email address on my {w}?",
        "My {w} got locked after the 2fa step.",
        "I want to rename the username of my {w}.",
    ),
}
_SLOTS: dict[str, tuple[str, ...]] = {
    "billing": ("invoice", "payment", "bill", "plan", "order"),
    "technical": ("dashboard", "report", "editor", "sync job", "mobile app"),
    "account": ("account", "profile", "workspace", "team seat", "login"),
}


def generate_ticket(rng: random.Random, label: str | None = None) -> tuple[str, str]:
    """A random ticket and its true category."""
    label = label or rng.choice(LABELS)
    body = rng.choice(_TEMPLATES[label]).format(w=rng.choice(_SLOTS[label]))
    parts = [rng.choice(_OPENERS), body]
    if rng.random() < 0.3:
        parts.append(f"This is {rng.choice(URGENT)}.")
    parts.append(rng.choice(_CLOSERS))
    return " ".join(p for p in parts if p), label


def classify(text: str) -> str:
    """The teacher's rule: the category whose keywords appear most (ties: first in LABELS)."""
    lowered = text.lower()
    scores = {label: sum(lowered.count(k) for k in KEYWORDS[label]) for label in LABELS}
    return max(LABELS, key=lambda label: scores[label])


def priority(text: str) -> str:
    lowered = text.lower()
    return "high" if any(word in lowered for word in URGENT) else "low"


def _unit_hash(*parts: str) -> float:
    digest = hashlib.sha256("\x1f".join(parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def answer(prompt: str, *, json_mode: bool = False, error_rate: float = 0.0, seed: str = "") -> str:
    """The teacher's answer for a ticket; wrong on a deterministic `error_rate` share of prompts."""
    label = classify(prompt)
    if error_rate > 0 and _unit_hash(seed, prompt) < error_rate:
        others = [x for x in LABELS if x != label]
        label = others[int(_unit_hash(seed, "pick", prompt) * len(others))]
    if json_mode:
        return json.dumps({"category": label, "priority": priority(prompt)})
    return label
