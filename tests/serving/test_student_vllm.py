"""vLLM (CPU) serves the real student, and a LoRA adapter trained on it loads at runtime."""

from __future__ import annotations

from pathlib import Path

import httpx
import openai
import pytest

from tests.fixtures.models import held_out_triage
from trainer.serving.vllm_process import VLLMServer

pytestmark = pytest.mark.vllm


def test_serves_the_real_student(student_vllm_server: VLLMServer) -> None:
    client = openai.OpenAI(base_url=student_vllm_server.base_url, api_key="unused")
    response = client.chat.completions.create(
        model="smollm2",
        messages=[{"role": "user", "content": "What is the capital of France?"}],
        temperature=0,
        max_tokens=12,
    )
    assert "Paris" in (response.choices[0].message.content or "")


def test_adapter_trained_on_the_student_loads_and_answers(
    student_vllm_server: VLLMServer,
    student_model_dir: Path,
    triage_dataset_dir: Path,
    tmp_path: Path,
) -> None:
    from trainer.training import TrainConfig, train_adapter

    # Two steps: this checks the adapter's shapes and names fit vLLM, not its quality.
    config = TrainConfig(max_steps=2, batch_size=4, save_steps=0, min_steps=0)
    adapter = train_adapter(
        triage_dataset_dir, str(student_model_dir), tmp_path / "a", config, progress=False
    ).adapter_dir
    response = httpx.post(
        f"{student_vllm_server.base_url}/load_lora_adapter",
        json={"lora_name": "s-triage", "lora_path": str(adapter)},
        timeout=120,
    )
    assert response.status_code == 200, response.text
    try:
        client = openai.OpenAI(base_url=student_vllm_server.base_url, api_key="unused")
        models = {m.id: m for m in client.models.list().data}
        assert getattr(models["s-triage"], "parent", None) == "smollm2"
        prompts, _ = held_out_triage(2)
        for messages in prompts:
            answer = client.chat.completions.create(
                model="s-triage",
                messages=messages,
                temperature=0,
                max_tokens=8,  # type: ignore[arg-type]
            )
            assert answer.model == "s-triage" and answer.choices[0].message.content
    finally:
        httpx.post(
            f"{student_vllm_server.base_url}/unload_lora_adapter",
            json={"lora_name": "s-triage"},
            timeout=60,
        )


def test_agent_requests_are_rendered_as_training_rendered_them(
    student_vllm_server: VLLMServer, student_model_dir: Path
) -> None:
    """SmolLM2's template has no tool format: vLLM serves it with the wrapper template and
    the hermes parser, so an agent request's prompt is the one `distill train` trained on."""
    from transformers import AutoTokenizer

    from tests.trainer.test_training_tool_rows import CONVERSATIONS, TOOLS
    from trainer.training.tool_template import FILE_NAME
    from trainer.training.tool_turns import prompt_text, turn

    argv = [str(a) for a in student_vllm_server.process.args]  # type: ignore[union-attr]
    assert argv[argv.index("--chat-template") + 1].endswith(FILE_NAME)
    assert argv[argv.index("--tool-call-parser") + 1] == "hermes"
    tok = AutoTokenizer.from_pretrained(student_model_dir)
    root = student_vllm_server.root_url
    for name in ("after-result", "parallel"):
        messages = CONVERSATIONS[name][0][:-1]  # as the gateway forwards them: JSON arguments
        expected = prompt_text(tok, [turn(m) for m in messages], TOOLS)
        assert "<tool_response>" in expected and "<tools>" in expected
        tokens = httpx.post(
            f"{root}/tokenize",
            json={"model": "smollm2", "messages": messages, "tools": TOOLS},
            timeout=60,
        )
        assert tokens.status_code == 200, tokens.text
        assert tokens.json()["tokens"] == tok(expected, add_special_tokens=False)["input_ids"]
        reply = httpx.post(
            f"{student_vllm_server.base_url}/chat/completions",
            json={
                "model": "smollm2",
                "messages": messages,
                "tools": TOOLS,
                "max_tokens": 4,
                "temperature": 0,
                "return_prompt_text": True,
            },
            timeout=120,
        )
        assert reply.status_code == 200, reply.text
        assert reply.json()["prompt_text"] == expected
    # Without tools the student's own template renders the request, unchanged.
    plain = [{"role": "user", "content": "What is the capital of France?"}]
    tokens = httpx.post(
        f"{root}/tokenize", json={"model": "smollm2", "messages": plain}, timeout=60
    ).json()["tokens"]
    original = tok.apply_chat_template(plain, add_generation_prompt=True, tokenize=False)
    assert tokens == tok(original, add_special_tokens=False)["input_ids"]
