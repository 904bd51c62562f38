"""Two held-out tasks with deterministic teachers: 5-way message routing and JSON extraction.

Neither shares a label, a prompt or a template with the demo's ticket triage; the training
defaults were chosen on triage only (bench/student_recipe.py), then measured on these.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass

# --- routing: an online shop's incoming messages, five teams ------------------------------------

ROUTING_LABELS: tuple[str, ...] = (
    "order_status",
    "returns",
    "delivery_change",
    "product_question",
    "cancellation",
)
ROUTING_PROMPT = (
    "Route the shop customer's message to one team: order_status, returns, delivery_change, "
    "product_question or cancellation. Reply with the team name only."
)
_ROUTING_KEYWORDS: dict[str, tuple[str, ...]] = {
    "order_status": ("where is", "tracking", "not arrived", "status", "still waiting"),
    "returns": ("return", "send back", "exchange", "wrong size", "damaged"),
    "delivery_change": ("new address", "deliver to", "reschedule", "neighbour", "pick-up point"),
    "product_question": ("does it", "compatible", "made of", "dimensions", "in stock"),
    "cancellation": ("cancel", "don't want", "changed my mind", "stop the order", "undo"),
}
_ROUTING_TEMPLATES: dict[str, tuple[str, ...]] = {
    "order_status": (
        "Where is my {p}? I ordered it last week.",
        "The tracking for my {p} has not moved in days.",
        "My {p} has not arrived yet, what is the status?",
        "I am still waiting for the {p} I paid for.",
    ),
    "returns": (
        "I would like to return the {p}, it is the wrong size.",
        "The {p} came damaged, can I send back it for an exchange?",
        "How do I return a {p} I bought as a gift?",
        "Can I exchange the {p} for another colour?",
    ),
    "delivery_change": (
        "Please deliver to my new address instead, the {p} order is not shipped yet.",
        "Can you reschedule the delivery of my {p} to Friday?",
        "Leave the {p} with my neighbour if I am out.",
        "I would rather collect the {p} at a pick-up point.",
    ),
    "product_question": (
        "Is the {p} compatible with the older model?",
        "What is the {p} made of? I have allergies.",
        "What are the dimensions of the {p}?",
        "Is the {p} in stock in large?",
    ),
    "cancellation": (
        "Please cancel my order for the {p}.",
        "I changed my mind about the {p}, stop the order.",
        "I don't want the {p} anymore, can you undo the purchase?",
        "Cancel the {p} before it ships, please.",
    ),
}
_PRODUCTS: tuple[str, ...] = (
    "rain jacket",
    "coffee grinder",
    "desk lamp",
    "running shoes",
    "phone case",
    "wool blanket",
    "travel mug",
    "bike helmet",
)
_GREETINGS = ("Hi,", "Hello,", "Good afternoon,", "Hey there,", "")
_SIGN_OFFS = ("Thank you!", "Best, Sam", "Cheers", "Kind regards.", "")


def routing_message(rng: random.Random) -> str:
    label = rng.choice(ROUTING_LABELS)
    body = rng.choice(_ROUTING_TEMPLATES[label]).format(p=rng.choice(_PRODUCTS))
    parts = [rng.choice(_GREETINGS), body]
    if rng.random() < 0.25:
        parts.append(f"Order {rng.randint(10000, 99999)}.")
    parts.append(rng.choice(_SIGN_OFFS))
    return " ".join(p for p in parts if p)


def route(message: str) -> str:
    """The teacher: the team whose phrases appear most (ties: the first team listed)."""
    lowered = message.lower()
    scores = {
        label: sum(lowered.count(k) for k in _ROUTING_KEYWORDS[label]) for label in ROUTING_LABELS
    }
    return max(ROUTING_LABELS, key=lambda label: scores[label])


# --- extraction: order notes to a JSON record with six keys -------------------------------------

EXTRACT_KEYS: tuple[str, ...] = ("name", "order_id", "product", "quantity", "city", "date")
EXTRACT_PROMPT = (
    "Extract the order details from the note. Reply with a JSON object with exactly the keys "
    '"name", "order_id", "product", "quantity" (a number), "city" and "date" (YYYY-MM-DD); '
    "use null for anything the note does not say."
)
_FIRST = ("Maria", "Jonas", "Aiko", "Liam", "Fatima", "Pedro", "Chloe", "Arjun", "Nina", "Tom")
_LAST = ("Lopez", "Berg", "Tanaka", "Walsh", "Haddad", "Silva", "Martin", "Rao", "Novak", "Reid")
_CITIES = ("Lisbon", "Oslo", "Osaka", "Dublin", "Cairo", "Porto", "Lyon", "Pune", "Brno", "Leeds")
# Note openings; the first one names neither the product nor the quantity.
_OPENINGS: tuple[str, ...] = (
    "Customer {name} called about order {order_id}.",
    "{name} ordered {quantity} x {product} (ref {order_id}).",
    "Order {order_id} for {name}: {quantity} {product}.",
    "Ref {order_id} - {name} wants {quantity} of the {product}.",
)
_CITY_PARTS = ("Ship to {city}.", "Delivery in {city}.", "Customer based in {city}.")
_DATE_PARTS = ("Wanted by {date}.", "Due {date}.", "Deliver on {date}.")


def extract_note(rng: random.Random) -> tuple[str, dict[str, object]]:
    """A free-text order note and the record it states (what it leaves out is null)."""
    record: dict[str, object] = {
        "name": f"{rng.choice(_FIRST)} {rng.choice(_LAST)}",
        "order_id": f"{rng.choice('ABCDEFGHJK')}-{rng.randint(10000, 99999)}",
        "product": rng.choice(_PRODUCTS),
        "quantity": rng.randint(1, 12),
        "city": rng.choice(_CITIES),
        "date": f"2025-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
    }
    opening = rng.choice(_OPENINGS)
    if "{product}" not in opening:
        record["product"] = record["quantity"] = None
    extras = []
    for key, parts in (("city", _CITY_PARTS), ("date", _DATE_PARTS)):
        if rng.random() < 0.8:
            extras.append(rng.choice(parts))
        else:
            record[key] = None
    rng.shuffle(extras)
    return " ".join(p.format(**record) for p in (opening, *extras)), record


def read_note(text: str) -> dict[str, object]:
    """The extraction teacher: reads a note's fields (null when the note does not say)."""
    name = re.search(rf"\b(?:{'|'.join(_FIRST)}) (?:{'|'.join(_LAST)})\b", text)
    order = re.search(r"\b[A-K]-\d{5}\b", text)
    product = next((p for p in _PRODUCTS if p in text), None)
    quantity = re.search(rf"\b(\d{{1,2}})(?: x| of the)? (?:{'|'.join(_PRODUCTS)})\b", text)
    city = next((c for c in _CITIES if c in text), None)
    date = re.search(r"\b\d{4}-\d{2}-\d{2}\b", text)
    return {
        "name": name.group(0) if name else None,
        "order_id": order.group(0) if order else None,
        "product": product,
        "quantity": int(quantity.group(1)) if quantity else None,
        "city": city,
        "date": date.group(0) if date else None,
    }


# --- both tasks behind one interface -------------------------------------------------------------


@dataclass(frozen=True)
class HeldOutTask:
    name: str  # also the gateway route and the teacher's model name
    system_prompt: str
    kind: str  # "label" or "json"


ROUTING = HeldOutTask("shop-routing", ROUTING_PROMPT, "label")
EXTRACTION = HeldOutTask("order-extraction", EXTRACT_PROMPT, "json")
TASKS: dict[str, HeldOutTask] = {t.name: t for t in (ROUTING, EXTRACTION)}


def answer(system_prompt: str, user: str) -> str | None:
    """The teacher's answer to a request, known by its system prompt; None for other prompts."""
    if system_prompt == ROUTING_PROMPT:
        return route(user)
    if system_prompt == EXTRACT_PROMPT:
        return json.dumps(read_note(user))
    return None


def sample(task: HeldOutTask, rng: random.Random) -> str:
    """One user message for `task`."""
    return routing_message(rng) if task is ROUTING else extract_note(rng)[0]
