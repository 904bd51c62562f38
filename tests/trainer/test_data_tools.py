"""Synthetic bootstrap and rationales through a real gateway; the rationale student on vLLM."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import duckdb
import openai
import pytest
from click.testing import CliRunner

from distill_demo.teacher import task
from tests.fixtures.models import held_out_triage
from tests.fixtures.servers import GatewayServer
from trainer.dataset.cli import dataset
from trainer.dataset.synth import fresh

ROUTE = "support-triage"


def _cli(*args: str) -> str:
    result = CliRunner().invoke(dataset, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def _log_real_traffic(gateway: GatewayServer, n: int, seed: int = 5) -> list[str]:
    client = openai.OpenAI(base_url=gateway.base_url, api_key="none", max_retries=0)
    rng = random.Random(seed)
    tickets = []
    for i in range(n):
        ticket = task.generate_ticket(rng)[0]
        tickets.append(ticket)
        client.chat.completions.create(
            model="gpt-4o",
            messages=[
                {"role": "system", "content": task.SYSTEM_PROMPT},
                {"role": "user", "content": ticket},
            ],
            user=f"user-{i % 7}",
        )
    gateway.flush()
    return tickets


def _synth(gateway: GatewayServer, n: int, seed: int, out: Path) -> dict[str, Any]:
    _cli(
        "synth",
        "--store",
        str(gateway.store_path),
        "--route",
        ROUTE,
        "--n",
        str(n),
        "--seed",
        str(seed),
        "--base-url",
        gateway.base_url,
        "--model",
        "gpt-4o",
        "--out",
        str(out),
    )
    gateway.flush()
    return {"rows": [json.loads(line) for line in out.read_text().splitlines()]}


def _build(store: Path, out: Path, *args: str) -> dict[str, Any]:
    _cli("build", "--store", str(store), "--route", ROUTE, "--out", str(out), *args)
    return json.loads((out / "dataset.json").read_text())


@pytest.mark.parametrize(
    ("candidates", "seen", "kept", "dropped"),
    [
        (["a new ticket about my invoice"], ["an old ticket about login"], 1, 0),
        (["An old ticket, about LOGIN!"], ["an old ticket about login"], 0, 1),  # normalised
        (["same one here", "same one here"], [], 1, 1),  # repeated among the new
        (
            ["hi the api returns a timeout when i call the sync job please help now"],
            ["hi the api returns a timeout when i call the sync job please help"],
            0,
            1,
        ),  # near duplicate
    ],
)
def test_fresh_drops_exact_and_near_duplicates(
    candidates: list[str], seen: list[str], kept: int, dropped: int
) -> None:
    keep, n = fresh(candidates, seen, threshold=0.8)
    assert (len(keep), n) == (kept, dropped)


@pytest.mark.slow
def test_synth_marks_rows_synthetic_and_dedups(
    gateway_server: GatewayServer, tmp_path: Path
) -> None:
    real = _log_real_traffic(gateway_server, 30)
    first = _synth(gateway_server, 20, 1, tmp_path / "synth1.jsonl")["rows"]
    assert len(first) == 20
    real_norm = {t.casefold().strip() for t in real}
    assert not {r["input"].casefold().strip() for r in first} & real_norm
    assert all(r["answer"] == task.classify(r["input"]) for r in first)
    # The same seed again: its first candidates repeat the first run's, so they are dropped.
    second = _synth(gateway_server, 5, 1, tmp_path / "synth2.jsonl")["rows"]
    assert not {r["input"] for r in second} & {r["input"] for r in first}

    with duckdb.connect(str(gateway_server.store_path), read_only=True) as conn:
        tagged = conn.execute(
            "SELECT count(*) FILTER (WHERE tags->>'synthetic' = 'true'), "
            "count(*) FILTER (WHERE tags->>'distill_tool' = 'synth-write') FROM requests"
        ).fetchone()
    assert tagged is not None and tagged[0] == 25 and tagged[1] >= 25

    card = _build(gateway_server.store_path, tmp_path / "ds", "--min-rows", "5")
    assert card["sources"]["kept"] == {"real": 30, "synthetic": 25}
    assert card["filters"]["data_tool"]["removed"] == tagged[1]
    split = card["sources"]["train"]["real"] + card["sources"]["eval"]["real"]
    assert split == 30


@pytest.mark.slow
@pytest.mark.vllm
def test_rationales_end_to_end_student_answers_labels_only_on_vllm(
    gateway_server: GatewayServer,
    tiny_model_dir: Path,
    vllm_server: Any,
    tmp_path: Path,
) -> None:
    from trainer.training import TrainConfig, train_adapter

    _log_real_traffic(gateway_server, 160, seed=11)
    data = tmp_path / "ds"
    _build(gateway_server.store_path, data)
    enriched = tmp_path / "ds-rationales"
    _cli(
        "enrich",
        "--dataset",
        str(data),
        "--rationales",
        "--base-url",
        gateway_server.base_url,
        "--model",
        "gpt-4o",
    )
    gateway_server.flush()
    lines = [json.loads(x) for x in (enriched / "train.jsonl").read_text().splitlines()]
    for line in lines:
        ticket, label = line["messages"][1]["content"], line["messages"][-1]["content"]
        assert line["rationale"].endswith(f"point to {label}.") or "no" in line["rationale"]
        assert all(
            f"'{w}'" in line["rationale"] for w in task.KEYWORDS[label] if w in ticket.lower()
        )
    card = json.loads((enriched / "dataset.json").read_text())
    assert card["rationales"]["rows"] == len(lines)
    # The explain calls are logged, and a rebuild leaves them out.
    rebuilt = _build(gateway_server.store_path, tmp_path / "rebuilt")
    assert rebuilt["filters"]["data_tool"]["removed"] == card["rationales"]["requests"]
    assert rebuilt["rows_kept"] == 160

    adapter = train_adapter(
        enriched,
        str(tiny_model_dir),
        tmp_path / "adapter",
        TrainConfig(max_steps=150, save_steps=0, rationales=True, max_seq_len=256),
        progress=False,
    )
    assert adapter.metrics["train_examples"] == 2 * len(lines)

    client = openai.OpenAI(base_url=vllm_server.base_url, api_key="x")
    import httpx

    loaded = httpx.post(
        vllm_server.base_url.removesuffix("/v1") + "/v1/load_lora_adapter",
        json={"lora_name": "t8-rationales", "lora_path": str(adapter.adapter_dir)},
        timeout=120,
    )
    assert loaded.status_code == 200, loaded.text
    prompts, labels = held_out_triage(30, seed=99)
    answers = [
        client.chat.completions.create(
            model="t8-rationales",
            messages=p,
            max_tokens=24,
            temperature=0,  # type: ignore[arg-type]
        )
        .choices[0]
        .message.content
        or ""
        for p in prompts
    ]
    print("served answers:", answers[:5])
    assert all(a.strip() in task.LABELS for a in answers), answers
    accuracy = sum(a.strip() == y for a, y in zip(answers, labels, strict=True)) / len(labels)
    assert accuracy >= 0.8, accuracy
    # The second task is there too: with the prefix, the student explains.
    explained = (
        client.chat.completions.create(
            model="t8-rationales",
            messages=[
                {"role": "system", "content": f"[rationale] {task.SYSTEM_PROMPT}"},
                prompts[0][1],
            ],  # type: ignore[list-item]
            max_tokens=40,
            temperature=0,
        )
        .choices[0]
        .message.content
        or ""
    )
    print("rationale:", explained)
    assert explained.startswith("The ticket")
