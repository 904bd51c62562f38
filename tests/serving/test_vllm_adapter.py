"""A trained adapter loads into the real vLLM at runtime and answers as peft does locally."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from tests.fixtures.models import held_out_triage, peft_greedy_answers
from trainer.serving.vllm_process import VLLMServer

pytestmark = pytest.mark.vllm


def _load(server: VLLMServer, name: str, path: Path) -> None:
    response = httpx.post(
        f"{server.base_url}/load_lora_adapter",
        json={"lora_name": name, "lora_path": str(path)},
        timeout=120,
    )
    assert response.status_code == 200, response.text


def _unload(server: VLLMServer, name: str) -> None:
    httpx.post(f"{server.base_url}/unload_lora_adapter", json={"lora_name": name}, timeout=60)


@pytest.fixture
def triage_adapter(vllm_server: VLLMServer, trained_adapter_dir: Path) -> Iterator[str]:
    _load(vllm_server, "triage-good", trained_adapter_dir)
    yield "triage-good"
    _unload(vllm_server, "triage-good")


def test_loaded_adapter_is_listed_under_its_base(
    vllm_server: VLLMServer, triage_adapter: str
) -> None:
    client = openai.OpenAI(base_url=vllm_server.base_url, api_key="unused")
    models = {m.id: m for m in client.models.list().data}
    assert "tiny" in models
    assert triage_adapter in models
    assert getattr(models[triage_adapter], "parent", None) == "tiny"


def test_vllm_answers_like_peft_stream_and_not(
    vllm_server: VLLMServer, triage_adapter: str, tiny_model_dir: Path, trained_adapter_dir: Path
) -> None:
    prompts, labels = held_out_triage(20, seed=2024)
    local = peft_greedy_answers(tiny_model_dir, trained_adapter_dir, prompts)
    client = openai.OpenAI(base_url=vllm_server.base_url, api_key="unused")

    served, streamed = [], []
    for messages in prompts:
        response = client.chat.completions.create(
            model=triage_adapter, messages=messages, temperature=0, max_tokens=8
        )
        assert response.model == triage_adapter
        served.append(response.choices[0].message.content or "")
        chunks = client.chat.completions.create(
            model=triage_adapter,
            messages=messages,
            temperature=0,
            max_tokens=8,
            stream=True,
        )
        streamed.append("".join(c.choices[0].delta.content or "" for c in chunks if c.choices))

    assert served == local
    assert streamed == local
    # The fixture adapter is good at the task, so this comparison is about real answers.
    assert sum(a == y for a, y in zip(served, labels, strict=True)) >= 18


@pytest.mark.slow
def test_bad_adapter_serves_but_disagrees_with_the_teacher(
    vllm_server: VLLMServer, bad_adapter_dir: Path
) -> None:
    _load(vllm_server, "triage-bad", bad_adapter_dir)
    try:
        prompts, labels = held_out_triage(30, seed=77)
        client = openai.OpenAI(base_url=vllm_server.base_url, api_key="unused")
        answers = [
            client.chat.completions.create(
                model="triage-bad", messages=m, temperature=0, max_tokens=8
            )
            .choices[0]
            .message.content
            for m in prompts
        ]
        assert sum(a == y for a, y in zip(answers, labels, strict=True)) < 0.7 * len(labels)
    finally:
        _unload(vllm_server, "triage-bad")


def test_unknown_adapter_path_is_refused(vllm_server: VLLMServer, tmp_path: Path) -> None:
    response = httpx.post(
        f"{vllm_server.base_url}/load_lora_adapter",
        json={"lora_name": "nope", "lora_path": str(tmp_path / "missing")},
        timeout=60,
    )
    assert response.status_code >= 400
