"""Bad base models and tokenizers: a clear message, a non-zero exit, nothing half-written."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from gateway.cli import main
from tests.fixtures.models import write_triage_dataset
from tests.trainer.chat_templates import STYLES, tokenizer_for
from trainer.training.data import TrainingInputError
from trainer.training.memory import GIB, memory_problem, training_bytes
from trainer.training.train import _choose_pad

NO_ASSISTANT = (
    "{% for message in messages %}{% if message['role'] != 'assistant' %}"
    "{{ message['role'] + ': ' + message['content'] + '\\n' }}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ 'assistant: ' }}{% endif %}"
)


def _set_template(model_dir: Path, template: str | None) -> None:
    """Replace (or remove) the chat template wherever save_pretrained put it."""
    (model_dir / "chat_template.jinja").unlink(missing_ok=True)
    config_path = model_dir / "tokenizer_config.json"
    config = json.loads(config_path.read_text())
    config.pop("chat_template", None)
    if template is not None:
        config["chat_template"] = template
    config_path.write_text(json.dumps(config))


def _too_big(model_dir: Path) -> None:
    """config.json of a ~100 B parameter model (the weights on disk stay tiny)."""
    config_path = model_dir / "config.json"
    config = json.loads(config_path.read_text())
    config.update(vocab_size=12_000_000, hidden_size=8192, num_attention_heads=64, head_dim=128)
    config_path.write_text(json.dumps(config))


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("no-chat-template", "has no chat template"),
        ("no-assistant-turn", "does not render the assistant's answer"),
        ("too-big", r"has 1\d\d\.\d\d B parameters: .* needs at least \d+\.\d GiB, but this "),
    ],
)
def test_unusable_base_models_are_refused_before_training(
    case: str, message: str, tiny_model_dir: Path, tmp_path: Path
) -> None:
    data = write_triage_dataset(tmp_path / "data", n_train=40, n_eval=8)
    base = tmp_path / "base"
    shutil.copytree(tiny_model_dir, base)
    if case == "no-chat-template":
        _set_template(base, None)
    elif case == "no-assistant-turn":
        _set_template(base, NO_ASSISTANT)
    else:
        _too_big(base)
    out = tmp_path / "adapters" / "a"
    args = ["train", "--dataset", str(data), "--base-model", str(base), "--out", str(out)]
    result = CliRunner().invoke(main, [*args, "--quiet", "--max-steps", "2"])
    assert result.exit_code == 1, result.output
    assert re.search(message, result.output), result.output
    assert not (tmp_path / "adapters").exists()  # nothing half-written


def test_a_dataset_mostly_longer_than_max_seq_len_is_refused(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    def line(ticket: str) -> str:
        turns = [{"role": "user", "content": ticket}, {"role": "assistant", "content": "billing"}]
        return json.dumps({"messages": turns})

    data = tmp_path / "data"
    data.mkdir()
    lines = [line("refund")] * 20 + [line("my invoice is wrong " * 40)] * 24
    (data / "train.jsonl").write_text("\n".join(lines) + "\n")
    out = tmp_path / "adapters" / "a"
    args = ["train", "--dataset", str(data), "--base-model", str(tiny_model_dir)]
    result = CliRunner().invoke(main, [*args, "--out", str(out), "--max-seq-len", "64"])
    assert result.exit_code == 1, result.output
    assert re.search(
        r"24 of 44 .* longer than max_seq_len=64 .* to \d{3} \(the longest\)", result.output
    )
    assert not (tmp_path / "adapters").exists()


@pytest.mark.parametrize(
    ("params", "available", "refused"),
    [
        (135_000_000, 16 * GIB, False),  # SmolLM2-135M on this machine
        (7_000_000_000, 16 * GIB, True),  # a 7 B model: 26 GiB of fp32 weights alone
        (7_000_000_000, 80 * GIB, False),
        (1_000_000, None, False),  # memory unknown: no refusal
        (3_500_000_000, 15 * GIB, False),  # 13.0 + 1 GiB: fits the floor
        (3_500_000_000, 14 * GIB, True),  # 14.04 GiB > 14
    ],
)
def test_memory_problem(params: int, available: float | None, refused: bool) -> None:
    problem = memory_problem(params, available, "this machine")
    assert (problem is not None) is refused
    if problem:
        assert f"{training_bytes(params) / GIB:.1f} GiB" in problem
        assert "smaller student" in problem


def test_a_tokenizer_without_pad_pads_with_eos_and_says_so() -> None:
    tok = tokenizer_for(STYLES["chatml"], pad=False)
    assert tok.pad_token_id is None
    note = _choose_pad(tok)
    assert note is not None and "'<|im_end|>'" in note
    assert tok.pad_token_id == tok.eos_token_id
    assert _choose_pad(tok) is None  # a pad token now: nothing to choose


def test_a_tokenizer_without_pad_or_eos_is_refused() -> None:
    tok = tokenizer_for(STYLES["chatml"], pad=False)
    tok.eos_token = None
    with pytest.raises(TrainingInputError, match="neither a pad nor an eos"):
        _choose_pad(tok)
