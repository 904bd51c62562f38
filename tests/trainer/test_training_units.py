"""Pure parts of training: settings, steps, threads, base-model kinds, JSONL parsing, loss masks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from trainer.tiny.chat_template import CHAT_TEMPLATE
from trainer.training import TrainConfig, TrainingInputError, load_train_config
from trainer.training.base_model import base_model_kind, resolve_base_model
from trainer.training.config import planned_steps
from trainer.training.data import (
    IGNORE_INDEX,
    ChatExample,
    PadCollator,
    encode,
    encode_all,
    parse_example,
)
from trainer.training.lineage import servability_problems
from trainer.training.sft import threads_for


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"rank": 1024}, "rank=1024 is above 512, the largest LoRA rank vLLM serves"),
        ({"rank": 0}, "rank=0 must be at least 1"),
        ({"learning_rate": 0.0}, "learning_rate=0.0"),
        ({"epochs": -1.0}, "epochs=-1.0"),
        ({"max_steps": 0}, "max_steps=0"),
        ({"dropout": 1.0}, "dropout=1.0"),
        ({"lr_scheduler": "warp"}, "lr_scheduler='warp'"),
        ({"target_modules": []}, "target_modules=[]"),
        ({"warmup_ratio": 1.5}, "warmup_ratio=1.5"),
        ({"min_steps": -3}, "min_steps=-3"),
    ],
)
def test_config_rejects_bad_values_naming_them(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        TrainConfig(**overrides)


def test_config_defaults_serve_on_vllm_and_target_all_linear_layers() -> None:
    config = TrainConfig()
    assert config.rank <= config.max_serving_rank == 16
    assert set(config.target_modules) == {
        "q_proj",
        "k_proj",
        "v_proj",
        "o_proj",
        "gate_proj",
        "up_proj",
        "down_proj",
    }
    assert TrainConfig(rank=32, max_serving_rank=64).rank == 32
    assert TrainConfig(rank=32, max_serving_rank=64).serving_note() is None
    # Above the serving limit: trained, with how to serve it instead of a refusal.
    note = TrainConfig(rank=64).serving_note()
    assert note is not None and "--max-lora-rank >= 64" in note and "--max-rank 64" in note


def test_load_config_from_yaml_with_overrides(tmp_path: Path) -> None:
    path = tmp_path / "train.yaml"
    # YAML 1.1 reads 3e-3 as a string: the loader must still make it a float.
    path.write_text("rank: 8\nlearning_rate: 3e-3\ntarget_modules: [q_proj, v_proj]\nepochs: 2\n")
    config = load_train_config(path, rank=4, epochs=None, max_steps="50")
    assert config.rank == 4  # override wins
    assert config.learning_rate == pytest.approx(3e-3)
    assert config.epochs == 2.0  # None override ignored
    assert config.max_steps == 50
    assert config.target_modules == ["q_proj", "v_proj"]
    assert load_train_config(None, target_modules="q_proj, k_proj").target_modules == [
        "q_proj",
        "k_proj",
    ]


@pytest.mark.parametrize(
    ("text", "overrides", "message"),
    [
        ("rnak: 8\n", {}, "unknown setting.*rnak"),
        ("- 1\n- 2\n", {}, "must hold a mapping"),
        ("rank: [\n", {}, "not valid YAML"),
        ("", {"rank": "eight"}, "rank='eight' is not a valid int"),
        ("", {"rank": 2.5}, "rank=2.5 is not a valid int"),
    ],
)
def test_load_config_errors(
    tmp_path: Path, text: str, overrides: dict[str, Any], message: str
) -> None:
    path = tmp_path / "train.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        load_train_config(path, **overrides)


def test_load_config_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        load_train_config(tmp_path / "nope.yaml")


@pytest.mark.parametrize(
    ("settings", "n_examples", "world", "steps"),
    [
        ({}, 600, 1, 300),  # 3 epochs = 3 x 38 steps < min_steps
        ({"min_steps": 0}, 600, 1, 114),
        ({"min_steps": 0, "epochs": 1.0}, 17, 1, 2),
        ({"min_steps": 0}, 6400, 4, 300),  # 4 processes share each epoch
        ({"max_steps": 7}, 600, 1, 7),
        ({"min_steps": 0, "batch_size": 8, "gradient_accumulation_steps": 2}, 320, 1, 60),
    ],
)
def test_planned_steps(settings: dict[str, Any], n_examples: int, world: int, steps: int) -> None:
    assert planned_steps(TrainConfig(**settings), n_examples, world) == steps


@pytest.mark.parametrize(
    ("cores", "local_world", "load", "threads"),
    [
        (2, 1, 0.0, 2),
        (2, 1, 1.2, 1),
        (2, 1, 4.0, 1),
        (16, 4, 0.5, 4),
        (16, 1, 10.0, 6),
        (1, 2, 0, 1),
    ],
)
def test_threads_for(cores: int, local_world: int, load: float, threads: int) -> None:
    assert threads_for(cores, local_world, load) == threads


@pytest.mark.parametrize(
    ("spec", "kind"),
    [
        ("meta-llama/Llama-3.2-1B-Instruct", "hub"),
        ("gpt2", "hub"),
        ("/nonexistent/model", "missing"),
        ("./models/tiny", "missing"),
        ("a/b/c", "missing"),
        ("~/models/x", "missing"),
        ("org/../x", "missing"),
    ],
)
def test_base_model_kind(spec: str, kind: str) -> None:
    assert base_model_kind(spec) == kind


def test_resolve_base_model(tmp_path: Path, tiny_model_dir: Path) -> None:
    local = resolve_base_model(str(tiny_model_dir))
    assert local.name == str(tiny_model_dir.resolve()) and local.local_files_only
    with pytest.raises(TrainingInputError, match=r"has no config\.json"):
        resolve_base_model(str(tmp_path))
    with pytest.raises(TrainingInputError, match="does not exist"):
        resolve_base_model(str(tmp_path / "missing"))
    with pytest.raises(TrainingInputError, match="offline"):
        resolve_base_model("org/model", reachable=lambda: False, cached=lambda _: False)
    cached = resolve_base_model("org/model", reachable=lambda: False, cached=lambda _: True)
    assert cached.local_files_only
    assert not resolve_base_model("org/model", reachable=lambda: True).local_files_only


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", 'object with a "messages" list'),
        ('{"messages": [{"role": "robot", "content": "x"}]}', "needs a role"),
        ('{"messages": [{"role": "user", "content": 3}]}', "string content"),
        ('{"messages": [{"role": "user", "content": "hi"}]}', "no assistant message"),
        (
            '{"messages": [{"role": "assistant", "content": "a"}], "weight": -1}',
            "weight=-1",
        ),
        (
            '{"messages": [{"role": "assistant", "content": "a"}], "weight": "2"}',
            "weight='2'",
        ),
    ],
)
def test_parse_example_errors_name_the_line(line: str, message: str) -> None:
    with pytest.raises(TrainingInputError, match=f"train.jsonl line 7: .*{message}"):
        parse_example(line, "train.jsonl line 7")


def test_parse_example_keeps_weight() -> None:
    line = '{"messages": [{"role": "assistant", "content": "a"}], "weight": 2.5}'
    assert parse_example(line, "x").weight == 2.5


def _tokenizer(tiny_model_dir: Path, markers: bool) -> PreTrainedTokenizerBase:
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    if not markers:
        # A template like most hub models have: no {% generation %} markers.
        tok.chat_template = CHAT_TEMPLATE.replace("{% generation %}", "").replace(
            "{% endgeneration %}", ""
        )
    return tok


def _conv(*turns: tuple[str, str]) -> list[dict[str, str]]:
    return [{"role": r, "content": c} for r, c in turns]


@pytest.mark.parametrize("markers", [True, False], ids=["generation-markers", "prefix-render"])
@pytest.mark.parametrize(
    ("messages", "learned"),
    [
        (_conv(("user", "my card was charged"), ("assistant", "billing")), ["billing<|end|>"]),
        (
            _conv(("system", "Classify."), ("user", "app crash"), ("assistant", "technical")),
            ["technical<|end|>"],
        ),
        (
            _conv(
                ("user", "hi"),
                ("assistant", "hello there"),
                ("user", "login broken"),
                ("assistant", "account"),
            ),
            ["account<|end|>"],  # earlier answers are context
        ),
        (_conv(("user", "x"), ("assistant", "")), ["<|end|>"]),
    ],
)
def test_assistant_only_mask(
    tiny_model_dir: Path, markers: bool, messages: list[dict[str, str]], learned: list[str]
) -> None:
    tok = _tokenizer(tiny_model_dir, markers)
    enc = encode(tok, ChatExample(messages))
    # Contiguous runs of labelled tokens, decoded: exactly the last assistant turn and its end
    # token, with or without {% generation %} markers in the template.
    runs: list[list[int]] = []
    previous = IGNORE_INDEX
    for label in enc.labels:
        if label != IGNORE_INDEX:
            if previous == IGNORE_INDEX:
                runs.append([])
            runs[-1].append(label)
        previous = label
    decoded = [tok.decode(run) for run in runs]
    assert decoded == learned
    rendered = tok.apply_chat_template(messages, tokenize=False)
    assert rendered.startswith(tok.decode(enc.input_ids))  # all but the final newline
    for token, label in zip(enc.input_ids, enc.labels, strict=True):
        assert label in (IGNORE_INDEX, token)


def test_encode_all_counts_what_it_skips(tiny_model_dir: Path) -> None:
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    short = ChatExample(_conv(("user", "hi"), ("assistant", "billing")))
    long = ChatExample(_conv(("user", "invoice " * 300), ("assistant", "billing")))
    items, stats = encode_all(tok, [short, long, short], max_seq_len=64)
    assert len(items) == stats.examples == 2
    assert stats.skipped_too_long == 1
    assert stats.target_tokens == 4  # "billing" + <|end|>, twice


def test_pad_collator_masks_padding() -> None:
    batch = PadCollator(pad_token_id=0)(
        [
            {"input_ids": [5, 6, 7], "labels": [IGNORE_INDEX, 6, 7], "weight": 1.0},
            {"input_ids": [8], "labels": [8], "weight": 2.0},
        ]
    )
    assert batch["input_ids"].tolist() == [[5, 6, 7], [8, 0, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert batch["labels"].tolist() == [[IGNORE_INDEX, 6, 7], [8, IGNORE_INDEX, IGNORE_INDEX]]
    assert batch["weights"].tolist() == [1.0, 2.0]


@pytest.mark.parametrize(
    ("adapter_config", "problems"),
    [
        ({"peft_type": "LORA", "r": 16, "bias": "none"}, []),
        ({"peft_type": "LORA", "r": 32, "bias": "none"}, ["r=32"]),
        ({"peft_type": "LORA", "r": 8, "bias": "all"}, ["bias='all'"]),
        ({"peft_type": "LORA", "r": 8, "use_dora": True}, ["use_dora"]),
        ({"peft_type": "LORA", "r": 8, "modules_to_save": ["lm_head"]}, ["modules_to_save"]),
        ({"peft_type": "IA3"}, ["peft_type='IA3'"]),
    ],
)
def test_servability_problems(adapter_config: dict[str, Any], problems: list[str]) -> None:
    found = servability_problems(adapter_config, max_rank=16)
    assert len(found) == len(problems)
    for text, expected in zip(found, problems, strict=True):
        assert text.startswith(expected)


def test_resume_skips_a_checkpoint_cut_mid_save(tmp_path: Path) -> None:
    from trainer.training.train import _last_checkpoint

    assert _last_checkpoint(tmp_path) is None
    complete = tmp_path / "checkpoint-4"
    complete.mkdir()
    (complete / "trainer_state.json").write_text("{}")
    (complete / "adapter_model.safetensors").write_bytes(b"x")
    assert _last_checkpoint(tmp_path) == str(complete)
    cut = tmp_path / "checkpoint-8"  # interrupted while saving: no state, no weights
    cut.mkdir()
    (cut / "README.md").write_text("")
    assert _last_checkpoint(tmp_path) == str(complete)
    (cut / "trainer_state.json").write_text("{}")
    (cut / "adapter_model.safetensors").write_bytes(b"x")
    assert _last_checkpoint(tmp_path) == str(cut)
