"""The tiny student model builds deterministically and loads with transformers."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from transformers import AutoModelForCausalLM, AutoTokenizer

from distill_demo.teacher import task
from gateway.cli import main
from trainer.tiny import TinyModelSpec, build_tiny_model


def _digests(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in directory.iterdir()}


def test_loads_with_the_shape_vllm_cpu_needs(tiny_model_dir: Path) -> None:
    config = json.loads((tiny_model_dir / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"]
    assert (config["hidden_size"], config["num_attention_heads"]) == (128, 2)
    assert (config["num_key_value_heads"], config["head_dim"]) == (1, 64)
    assert config["num_hidden_layers"] == 2
    assert config["max_position_embeddings"] == 512
    assert (tiny_model_dir / "model.safetensors").is_file()

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    assert model.config.vocab_size == len(tok) <= 512
    assert model.dtype == torch.float32
    ids = tok("Hi, my invoice is wrong.", return_tensors="pt")["input_ids"]
    logits = model(ids).logits
    assert logits.shape == (1, ids.shape[1], len(tok))


@pytest.mark.parametrize(
    "text",
    [
        task.generate_ticket(__import__("random").Random(3))[0],
        "Héllo wörld — unseen characters 😀\n\ttabs and newlines",
        '{"category": "billing", "priority": "high"}',
        "",
    ],
)
def test_tokenizer_round_trips(tiny_model_dir: Path, text: str) -> None:
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    ids = tok.encode(text, add_special_tokens=False)
    assert tok.decode(ids) == text


def test_special_tokens(tiny_model_dir: Path) -> None:
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    assert tok.pad_token == "<|pad|>" and tok.eos_token == "<|end|>"
    assert tok.bos_token == "<|begin|>"
    assert len({tok.pad_token_id, tok.eos_token_id, tok.bos_token_id}) == 3
    for role in ("<|system|>", "<|user|>", "<|assistant|>"):
        assert tok.convert_tokens_to_ids(role) != tok.unk_token_id
        assert len(tok.encode(role, add_special_tokens=False)) == 1


def test_chat_template_renders_turns_and_generation_prompt(tiny_model_dir: Path) -> None:
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    messages = [
        {"role": "system", "content": "S"},
        {"role": "user", "content": "U1"},
        {"role": "assistant", "content": "A1"},
        {"role": "user", "content": "U2"},
    ]
    rendered = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert rendered == (
        "<|begin|><|system|>\nS<|end|>\n<|user|>\nU1<|end|>\n<|assistant|>\nA1<|end|>\n"
        "<|user|>\nU2<|end|>\n<|assistant|>\n"
    )
    without = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=False)
    assert without == rendered.removesuffix("<|assistant|>\n")


def test_chat_template_marks_only_assistant_tokens(tiny_model_dir: Path) -> None:
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    messages = [
        {"role": "user", "content": "my card was charged"},
        {"role": "assistant", "content": "billing"},
    ]
    out = tok.apply_chat_template(
        messages, tokenize=True, return_dict=True, return_assistant_tokens_mask=True
    )
    marked = [i for i, m in zip(out["input_ids"], out["assistant_masks"], strict=True) if m]
    assert tok.decode(marked) == "billing<|end|>"


def test_build_is_deterministic_per_seed(tmp_path: Path) -> None:
    a = build_tiny_model(tmp_path / "a", seed=7)
    b = build_tiny_model(tmp_path / "b", seed=7)
    c = build_tiny_model(tmp_path / "c", seed=8)
    assert _digests(a) == _digests(b)
    assert _digests(a)["model.safetensors"] != _digests(c)["model.safetensors"]


def test_custom_corpus_and_spec_validation(tmp_path: Path) -> None:
    texts = ["the quick brown fox jumps over the lazy dog"] * 20
    out = build_tiny_model(tmp_path / "m", texts=texts)
    tok = AutoTokenizer.from_pretrained(out)
    assert len(tok.encode(" quick", add_special_tokens=False)) == 1
    with pytest.raises(ValueError, match="vocab_size=100"):
        TinyModelSpec(vocab_size=100)
    with pytest.raises(ValueError, match="head_dim=32"):
        TinyModelSpec(head_dim=32)


def test_cli_builds_and_refuses_to_clobber(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "tiny"
    first = runner.invoke(main, ["model", "tiny", "--out", str(out), "--seed", "2"])
    assert first.exit_code == 0, first.output
    assert (out / "config.json").is_file() and (out / "tokenizer.json").is_file()
    again = runner.invoke(main, ["model", "tiny", "--out", str(out)])
    assert again.exit_code != 0
    assert "--overwrite" in again.output
    assert [p.name for p in tmp_path.iterdir()] == ["tiny"]  # no temp dirs left behind
