"""PII in answers (the student's targets): pseudonymized, replaced, kept or dropped, and said."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from tests.trainer.test_dataset_build import ROUTE, Store, read_jsonl, run_build
from trainer.dataset import pii
from trainer.dataset.build import pii_warnings

JSON_SYSTEM = "Extract the customer's email and plan as JSON."


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("jane.doe@corp.io", "email"),
        ("+1 415-555-0132", "phone"),
        ("4111 1111 1111 1111", "card"),
        ("DE89 3704 0044 0532 0130 00", "iban"),
        ("192.168.10.77", "ip"),
        ("fe80::1:2", "ip"),
    ],
)
def test_fakes_keep_kind_and_shape_and_are_stable(text: str, kind: str) -> None:
    fake = pii.Pseudonymizer(seed=0)
    out, found = pii.scrub(f"see {text} now", fake)
    assert found == {kind: 1}
    assert text not in out and out.startswith("see ") and out.endswith(" now")
    replaced = out[4:-4]
    assert pii.scrub(replaced)[1] == {kind: 1}  # still reads as the same kind (checksums too)
    if kind in ("phone", "card", "iban"):
        assert [c.isdigit() for c in replaced] == [c.isdigit() for c in text]  # same layout
    assert pii.scrub(f"again {text}", fake)[0] == f"again {replaced}"  # same value, same fake
    assert pii.scrub(f"see {text} now", pii.Pseudonymizer(seed=1))[0] != out


def test_a_fake_is_never_rescrubbed_as_another_kind() -> None:
    fake = pii.Pseudonymizer(seed=3)
    text = "iban DE89 3704 0044 0532 0130 00 and mail a1@b.io"
    out, found = pii.scrub(text, fake)
    assert found == {"iban": 1, "email": 1}
    assert pii.scrub(out)[1] == {"iban": 1, "email": 1}  # the fakes read as what they replaced


def _json_store(path: Path, n: int = 40) -> Store:
    store = Store(path)
    rng = random.Random(0)
    for i in range(n):
        email = f"customer{i}@shop{i % 7}.com" if i % 2 else None
        plan = rng.choice(["free", "pro", "team"])
        ticket = f"Ticket {i:04d}: upgrade to {plan}." + (f" Reach me at {email}." if email else "")
        answer = json.dumps({"email": email, "plan": plan})
        store.add(ticket, answer, keep=True, system=JSON_SYSTEM, user=f"u{i}")
    store.write()
    return store


@pytest.mark.parametrize("mode", ["pseudonymize", "replace", "keep", "drop"])
def test_pii_in_answers_follows_the_mode_and_the_build_says_so(tmp_path: Path, mode: str) -> None:
    store = _json_store(tmp_path / "store.duckdb")
    out = tmp_path / "ds"
    args = ["--store", str(store.path), "--route", ROUTE, "--out", str(out), "--min-rows", "5"]
    if mode != "pseudonymize":  # the default
        args += ["--pii-answers", mode]
    result = run_build(*args)
    assert result.exit_code == 0, result.output
    card = json.loads((out / "dataset.json").read_text())["pii"]
    rows = read_jsonl(out / "train.jsonl") + read_jsonl(out / "eval.jsonl")
    assert card["answers"] == mode
    text = (out / "train.jsonl").read_text() + (out / "eval.jsonl").read_text()
    answers = [json.loads(r["messages"][-1]["content"]) for r in rows]

    if mode == "pseudonymize":
        assert card["answers_rewritten"] == 20 and "rewrote 20 answers" in result.output
        assert "@shop" not in text
        for row, answer in zip(rows, answers, strict=True):
            if answer["email"]:  # the answer's fake is the prompt's fake: still copyable
                assert answer["email"].endswith("@example.com")
                assert answer["email"] in row["messages"][1]["content"]
    elif mode == "replace":
        assert card["answers_rewritten"] == 20 and "[EMAIL]" in result.output
        assert {a["email"] for a in answers} == {None, "[EMAIL]"}
    elif mode == "keep":
        assert card["answers_kept_with_pii"] == 20 and card["answers_rewritten"] == 0
        assert all(a["email"] is None or "@shop" in a["email"] for a in answers)
        assert all("@shop" not in r["messages"][1]["content"] for r in rows)  # prompts scrubbed
    else:
        assert card["answers_dropped"] == 20 and len(rows) == 20
        assert all(a["email"] is None for a in answers)
        assert "left out 20 rows" in result.output


@pytest.mark.parametrize(
    ("report", "fragments"),
    [
        ({"answers": "keep", "answers_rewritten": 0, "answers_dropped": 0}, []),
        ({"answers": "pseudonymize", "answers_rewritten": 0, "answers_dropped": 0}, []),
        (
            {"answers": "pseudonymize", "answers_rewritten": 5, "answers_dropped": 0},
            ["rewrote 5 answers", "--pii-answers"],
        ),
        ({"answers": "replace", "answers_rewritten": 2, "answers_dropped": 0}, ["[EMAIL]"]),
        ({"answers": "drop", "answers_rewritten": 0, "answers_dropped": 3}, ["left out 3"]),
    ],
)
def test_pii_warnings(report: dict[str, object], fragments: list[str]) -> None:
    warnings = pii_warnings(report)
    assert len(warnings) == (1 if fragments else 0)
    assert all(fragment in " ".join(warnings) for fragment in fragments)
