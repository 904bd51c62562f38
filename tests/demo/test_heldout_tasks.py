"""The held-out tasks' stand-in teachers: deterministic rules, and the chat endpoint."""

from __future__ import annotations

import json
import random

import pytest
from starlette.testclient import TestClient

from distill_demo.heldout import tasks
from distill_demo.heldout.server import create_app
from distill_demo.teacher import task as triage
from gateway.answers import parse_json_object


@pytest.mark.parametrize(
    ("message", "team"),
    [
        ("Where is my desk lamp? I ordered it last week.", "order_status"),
        ("I would like to return the rain jacket, it is the wrong size.", "returns"),
        ("Can you reschedule the delivery of my travel mug to Friday?", "delivery_change"),
        ("Is the bike helmet compatible with the older model?", "product_question"),
        ("Please cancel my order for the phone case.", "cancellation"),
        ("Hello there.", "order_status"),  # nothing matches: the first team, as documented
    ],
)
def test_routing_teacher(message: str, team: str) -> None:
    assert tasks.route(message) == team


def test_routing_covers_every_team_and_differs_from_triage() -> None:
    rng = random.Random(0)
    seen = {tasks.route(tasks.routing_message(rng)) for _ in range(300)}
    assert seen == set(tasks.ROUTING_LABELS)
    assert not set(tasks.ROUTING_LABELS) & set(triage.LABELS)


@pytest.mark.parametrize(
    ("note", "record"),
    [
        (
            "Nina Berg ordered 7 x phone case (ref D-79217). Delivery in Brno.",
            {"name": "Nina Berg", "order_id": "D-79217", "product": "phone case",
             "quantity": 7, "city": "Brno", "date": None},
        ),
        (
            "Customer Arjun Rao called about order E-21598. Due 2025-03-24.",
            {"name": "Arjun Rao", "order_id": "E-21598", "product": None,
             "quantity": None, "city": None, "date": "2025-03-24"},
        ),
        (
            "Ref A-10000 - Tom Reid wants 12 of the wool blanket. Ship to Leeds.",
            {"name": "Tom Reid", "order_id": "A-10000", "product": "wool blanket",
             "quantity": 12, "city": "Leeds", "date": None},
        ),
    ],
)  # fmt: skip
def test_extraction_teacher(note: str, record: dict[str, object]) -> None:
    assert tasks.read_note(note) == record


def test_extraction_teacher_reads_every_generated_note() -> None:
    rng = random.Random(1)
    for _ in range(500):
        text, record = tasks.extract_note(rng)
        assert tasks.read_note(text) == record
        answer = tasks.answer(tasks.EXTRACT_PROMPT, text)
        assert answer is not None and list(json.loads(answer)) == list(tasks.EXTRACT_KEYS)


def test_chat_endpoint_answers_by_system_prompt() -> None:
    client = TestClient(create_app())
    note = "Order B-12345 for Maria Lopez: 2 desk lamp."
    body = {
        "model": "order-extraction",
        "messages": [
            {"role": "system", "content": tasks.EXTRACT_PROMPT},
            {"role": "user", "content": note},
        ],
    }
    response = client.post("/v1/chat/completions", json=body)
    assert response.status_code == 200
    content = response.json()["choices"][0]["message"]["content"]
    assert parse_json_object(content) == tasks.read_note(note)
    assert response.json()["usage"]["completion_tokens"] > 0


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([], "JSON object with a `messages` list"),
        ({"messages": [{"role": "user", "content": "hi"}]}, "send a system message"),
        ({"messages": [{"role": "user", "content": 3}]}, "string `content`"),
        (
            {"messages": [{"role": "system", "content": "x"}, {"role": "user", "content": "y"}]},
            "shop-routing, order-extraction",
        ),
    ],
)
def test_chat_endpoint_refuses_what_it_cannot_answer(body: object, message: str) -> None:
    response = TestClient(create_app()).post("/v1/chat/completions", json=body)
    assert response.status_code == 400 and message in response.json()["error"]["message"]
