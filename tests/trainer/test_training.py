"""Real training on the tiny model: frozen base, weighting, files, resume, bad input, learning."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    TrainerCallback,
    TrainerControl,
    TrainerState,
    TrainingArguments,
)

from gateway.cli import main
from tests.fixtures.models import held_out_triage, peft_greedy_answers, write_triage_dataset
from trainer.training import TrainConfig, TrainingInputError, train_adapter
from trainer.training.data import PadCollator, encode_all, read_jsonl
from trainer.training.sft import build_trainer, make_lora_model
from trainer.training.train import work_dir_for

QUICK = {"save_steps": 0, "logging_steps": 1, "min_steps": 0}


def _encoded(tiny_model_dir: Path, dataset_dir: Path, n: int) -> tuple[object, list[object]]:
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    items, _ = encode_all(tok, read_jsonl(dataset_dir / "train.jsonl")[:n], 256)
    return tok, list(items)


@pytest.mark.slow
def test_training_changes_lora_weights_and_leaves_base_bit_identical(
    tiny_model_dir: Path, triage_dataset_dir: Path, tmp_path: Path
) -> None:
    config = TrainConfig(max_steps=3, **QUICK)
    tok, items = _encoded(tiny_model_dir, triage_dataset_dir, 64)
    model = make_lora_model(AutoModelForCausalLM.from_pretrained(tiny_model_dir), config)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    trainer = build_trainer(
        model, tok, items, [], config, work_dir=tmp_path, steps=3, progress=False
    )
    trainer.train()

    lora = [n for n in before if "lora_" in n]
    frozen = [n for n in before if "lora_" not in n]
    assert len(lora) == 2 * 7 * 2  # A and B, 7 linear modules, 2 layers
    params = dict(model.named_parameters())
    for name in lora:
        assert params[name].requires_grad
        assert not torch.equal(params[name], before[name]), f"{name} did not change"
    for name in frozen:
        assert not params[name].requires_grad
        assert torch.equal(params[name], before[name]), f"base weight {name} changed"


def test_example_weights_scale_the_loss(tiny_model_dir: Path, triage_dataset_dir: Path) -> None:
    config = TrainConfig(max_steps=1, **QUICK)
    tok, items = _encoded(tiny_model_dir, triage_dataset_dir, 2)
    model = make_lora_model(AutoModelForCausalLM.from_pretrained(tiny_model_dir), config)
    trainer = build_trainer(
        model, tok, items, [], config, work_dir=Path("unused"), steps=1, progress=False
    )
    collate = PadCollator(int(tok.pad_token_id))
    rows = [{"input_ids": i.input_ids, "labels": i.labels, "weight": 1.0} for i in items]

    def loss(weights: list[float], subset: slice = slice(None)) -> float:
        batch = collate([{**r, "weight": w} for r, w in zip(rows[subset], weights, strict=True)])
        with torch.no_grad():
            return float(trainer.compute_loss(model, batch))

    only_first = loss([1.0], slice(0, 1))
    # Weight 0 removes an example's contribution; the normaliser still counts its tokens.
    assert loss([2.0, 0.0]) == pytest.approx(only_first, rel=1e-5)
    assert loss([1.0, 1.0]) == pytest.approx((loss([1.0, 0.0]) + loss([0.0, 1.0])), rel=1e-5)


def test_train_adapter_writes_a_complete_servable_adapter(
    tiny_model_dir: Path, triage_dataset_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "adapters" / "a1"
    result = train_adapter(
        triage_dataset_dir,
        str(tiny_model_dir),
        out,
        TrainConfig(max_steps=4, rank=32, **QUICK),  # above vLLM's default limit of 16
        progress=False,
    )
    assert result.adapter_dir == out and result.steps == 4
    assert sorted(p.name for p in out.parent.iterdir()) == ["a1"]  # work dir cleaned up
    names = {p.name for p in out.iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors", "distill.json"} <= names
    assert not any(n.startswith("tokenizer") for n in names)

    adapter_config = json.loads((out / "adapter_config.json").read_text())
    assert adapter_config["r"] == 32 and adapter_config["bias"] == "none"
    assert not adapter_config.get("use_dora") and not adapter_config.get("modules_to_save")
    tensors = load_file(out / "adapter_model.safetensors")
    assert tensors and all("lora_A" in k or "lora_B" in k for k in tensors)

    lineage = json.loads((out / "distill.json").read_text())
    card = json.loads((triage_dataset_dir / "dataset.json").read_text())
    assert lineage["dataset_hash"] == card["content_hash"]
    assert lineage["base_model"] == str(tiny_model_dir.resolve())
    assert lineage["config"]["rank"] == 32 and lineage["steps"] == 4
    assert lineage["serving"]["max_lora_rank"] == 32
    assert "--max-lora-rank >= 32" in lineage["serving"]["note"]
    # 4 steps learn nothing: the learning check says so in the lineage
    assert result.check is not None and lineage["check"]["passed"] is result.check.passed
    assert lineage["check"]["n"] == 100 and lineage["answer_tokens"]["longest"] >= 2
    assert lineage["code_version"] == __import__("gateway").__version__
    assert set(lineage["metrics"]) >= {"train_loss", "eval_loss", "tokens_per_second"}
    assert result.metrics["tokens_per_second"] > 0
    assert result.tokens == result.metrics["train_tokens"] > 4 * 16 * 50


class _Crash(Exception):
    pass


class _CrashAt(TrainerCallback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kw: object
    ) -> None:
        if state.global_step == self.step:
            raise _Crash(f"simulated crash at step {self.step}")


@pytest.mark.slow
def test_resume_continues_from_the_last_checkpoint(
    tiny_model_dir: Path, triage_dataset_dir: Path, tmp_path: Path
) -> None:
    config = TrainConfig(max_steps=10, save_steps=4, logging_steps=1, min_steps=0)
    out = tmp_path / "resumed"
    with pytest.raises(_Crash):
        train_adapter(
            triage_dataset_dir,
            str(tiny_model_dir),
            out,
            config,
            progress=False,
            callbacks=[_CrashAt(6)],
        )
    work = work_dir_for(out)
    assert not out.exists()  # nothing that looks complete
    assert sorted(p.name for p in work.glob("checkpoint-*")) == ["checkpoint-4"]

    changed = TrainConfig(max_steps=10, save_steps=4, logging_steps=1, min_steps=0, rank=8)
    with pytest.raises(TrainingInputError, match="cannot --resume: the config differ"):
        train_adapter(
            triage_dataset_dir, str(tiny_model_dir), out, changed, resume=True, progress=False
        )

    resumed = train_adapter(
        triage_dataset_dir, str(tiny_model_dir), out, config, resume=True, progress=False
    )
    assert resumed.steps == 10
    assert json.loads((out / "distill.json").read_text())["resumed_from"].endswith("checkpoint-4")
    assert not work.exists()
    # Only steps 5..10 ran in this process.
    assert resumed.tokens < 7 * 16 * 100

    straight = train_adapter(
        triage_dataset_dir, str(tiny_model_dir), tmp_path / "straight", config, progress=False
    )
    a = load_file(out / "adapter_model.safetensors")
    b = load_file(straight.adapter_dir / "adapter_model.safetensors")
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-5)


def _write_lines(directory: Path, lines: list[str]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "train.jsonl").write_text("".join(line + "\n" for line in lines))
    return directory


GOOD_LINE = json.dumps(
    {"messages": [{"role": "user", "content": "refund"}, {"role": "assistant", "content": "b"}]}
)


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("empty", "train.jsonl has 0 examples"),
        ("too-small", "train.jsonl has 3 examples, fewer than min_examples=16"),
        ("no-train-file", "has no train.jsonl"),
        ("no-dataset-dir", "does not exist; build one with `distill dataset build`"),
        ("malformed-line", "train.jsonl line 18: not valid JSON"),
        ("missing-base-path", "base model path .* does not exist"),
        ("offline-hub-id", "offline"),
        ("rank-above-vllm", "rank=1024 is above 512, the largest LoRA rank vLLM serves"),
        ("out-exists", "already exists; choose another --out or pass --overwrite"),
        ("too-long", "only 0 of 20 training examples fit"),
        ("bad-set", "'rank' is not KEY=VALUE"),
    ],
)
def test_cli_bad_input_gives_a_clear_message_and_leaves_nothing(
    case: str,
    message: str,
    tiny_model_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = tmp_path / "data"
    base = str(tiny_model_dir)
    out = tmp_path / "out"
    extra: list[str] = []
    if case == "empty":
        _write_lines(data, [])
    elif case == "too-small":
        _write_lines(data, [GOOD_LINE] * 3)
    elif case == "no-train-file":
        data.mkdir()
    elif case == "no-dataset-dir":
        pass
    elif case == "malformed-line":
        _write_lines(data, [GOOD_LINE] * 17 + ['{"messages": [}'] + [GOOD_LINE] * 3)
    elif case == "missing-base-path":
        _write_lines(data, [GOOD_LINE] * 20)
        base = str(tmp_path / "no-such-model")
    elif case == "offline-hub-id":
        _write_lines(data, [GOOD_LINE] * 20)
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
        base = "some-org/some-model-not-cached"
    elif case == "rank-above-vllm":
        _write_lines(data, [GOOD_LINE] * 20)
        extra = ["--rank", "1024"]
    elif case == "out-exists":
        _write_lines(data, [GOOD_LINE] * 20)
        out.mkdir()
        (out / "keep.txt").write_text("precious")
    elif case == "too-long":
        _write_lines(data, [GOOD_LINE] * 20)
        extra = ["--max-seq-len", "8"]
    elif case == "bad-set":
        _write_lines(data, [GOOD_LINE] * 20)
        extra = ["--set", "rank"]
    before = sorted(p.name for p in tmp_path.iterdir())

    args = ["train", "--dataset", str(data), "--base-model", base, "--out", str(out), "--quiet"]
    result = CliRunner().invoke(main, args + extra)

    assert result.exit_code != 0
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert __import__("re").search(message, result.output), result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing half-written
    if case == "out-exists":
        assert (out / "keep.txt").read_text() == "precious"


@pytest.mark.slow
def test_learns_the_triage_task_with_default_settings(
    tiny_model_dir: Path, triage_dataset_dir: Path, tmp_path: Path
) -> None:
    """600 teacher-labelled tickets, defaults, via the CLI: ≥ 90 % greedy accuracy held out."""
    out = tmp_path / "triage"
    result = CliRunner().invoke(
        main,
        [
            "train",
            "--dataset",
            str(triage_dataset_dir),
            "--base-model",
            str(tiny_model_dir),
            "--out",
            str(out),
            "--quiet",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "adapter:" in result.output and "tokens/s:" in result.output

    prompts, labels = held_out_triage(100)
    answers = peft_greedy_answers(tiny_model_dir, out, prompts)
    accuracy = sum(a == y for a, y in zip(answers, labels, strict=True)) / len(labels)
    assert accuracy >= 0.9, list(zip(answers, labels, strict=True))[:10]
    # The untrained base model does not get there by chance.
    base_answers = peft_greedy_answers(tiny_model_dir, None, prompts[:20])
    assert sum(a == y for a, y in zip(base_answers, labels[:20], strict=True)) < 10


@pytest.mark.slow
def test_shuffled_labels_give_a_bad_adapter(
    bad_adapter_dir: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    prompts, labels = held_out_triage(60, seed=7)
    answers = peft_greedy_answers(tiny_model_dir, bad_adapter_dir, prompts)
    accuracy = sum(a == y for a, y in zip(answers, labels, strict=True)) / len(labels)
    assert accuracy < 0.7
    assert json.loads((bad_adapter_dir / "distill.json").read_text())["steps"] > 0


def test_dataset_without_card_gets_a_computed_hash(tiny_model_dir: Path, tmp_path: Path) -> None:
    data = write_triage_dataset(tmp_path / "d", n_train=20, n_eval=0)
    (data / "dataset.json").unlink()
    (data / "eval.jsonl").unlink()
    out = train_adapter(
        data, str(tiny_model_dir), tmp_path / "a", TrainConfig(max_steps=1, **QUICK), progress=False
    ).adapter_dir
    lineage = json.loads((out / "distill.json").read_text())
    assert len(lineage["dataset_hash"]) == 64
    assert lineage["dataset"]["content_hash_source"] == "computed by train"
    shutil.rmtree(out)


@pytest.mark.slow
def test_torchrun_trains_one_adapter_with_ddp(
    tiny_model_dir: Path, triage_dataset_dir: Path, tmp_path: Path
) -> None:
    """The multi-GPU path, on CPU: two torchrun processes, gloo DDP, one adapter from rank 0."""
    import subprocess
    import sys

    out = tmp_path / "ddp"
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "-m",
        "trainer.training",
        "--dataset",
        str(triage_dataset_dir),
        "--base-model",
        str(tiny_model_dir),
        "--out",
        str(out),
        "--max-steps",
        "4",
        "--quiet",
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.stdout.count("adapter:") == 1, done.stderr[-3000:]  # rank 0 alone reports
    assert "processes: 2" in done.stdout  # real DDP, not two independent runs
    lineage = json.loads((out / "distill.json").read_text())
    # Rank 0 checks what 4 steps made; a failed check (exit 3) fails the torchrun job.
    assert lineage["check"]["n"] == 100 and "check on 100 eval prompts" in done.stdout
    assert (done.returncode == 0) is lineage["check"]["passed"], done.stderr[-3000:]
    assert lineage["metrics"]["processes"] == 2 and lineage["steps"] == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ddp"]


def test_a_second_run_on_the_same_out_is_refused(
    tiny_model_dir: Path, triage_dataset_dir: Path, tmp_path: Path
) -> None:
    from trainer.training.train import run_lock

    out = tmp_path / "busy"
    with (
        run_lock(out),
        pytest.raises(TrainingInputError, match=r"another training run is writing .*busy \(pid"),
    ):
        train_adapter(
            triage_dataset_dir, str(tiny_model_dir), out, TrainConfig(max_steps=1), progress=False
        )
    assert list(tmp_path.iterdir()) == []  # lock released and removed, nothing else written


@pytest.mark.slow
def test_ctrl_c_then_resume_from_the_cli(
    tiny_model_dir: Path, triage_dataset_dir: Path, tmp_path: Path
) -> None:
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "interrupted"
    command = [
        sys.executable,
        "-m",
        "trainer.training",
        "--dataset",
        str(triage_dataset_dir),
        "--base-model",
        str(tiny_model_dir),
        "--out",
        str(out),
        "--max-steps",
        "20",
        "--set",
        "save_steps=4",
        "--quiet",
    ]
    # SIGINT must not be inherited as ignored (background jobs ignore it), or Ctrl-C is lost.
    proc = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    work = work_dir_for(out)
    deadline = time.monotonic() + 120
    # Wait for a complete checkpoint; the interrupt may then land mid-way through the next
    # save, and resume must fall back to the last complete one.
    while not list(work.glob("checkpoint-*/trainer_state.json")) and time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()[0]
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 1, output
    assert "rerun the same command with --resume" in output
    assert not out.exists()

    resumed = subprocess.run([*command, "--resume"], capture_output=True, text=True, timeout=300)
    lineage = json.loads((out / "distill.json").read_text())
    # 20 steps may not learn the task: then the learning check fails with exit status 3.
    expected = 0 if lineage["check"]["passed"] else 3
    assert resumed.returncode == expected, resumed.stdout + resumed.stderr[-2000:]
    assert lineage["steps"] == 20 and "checkpoint-" in lineage["resumed_from"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["interrupted"]
