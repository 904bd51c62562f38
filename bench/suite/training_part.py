"""Training figures: tokens/s of `distill train` vs a plain transformers Trainer, same data.

Both train the same LoRA (rank, target modules, batch size, steps, fp32) on the tiny demo
model over the same teacher-labelled triage examples. The baseline is what a user would
write by hand: the chat template over the whole conversation, `labels = input_ids`,
pad-to-longest batches in file order. Tokens are counted the same way for both: non-padding
tokens in the batches fed to the model, over the training loop's wall time.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from bench.suite.table import Row
from tests.fixtures.models import write_triage_dataset
from trainer.training import TrainConfig, train_adapter
from trainer.training.sft import lora_config

PART = "training"


def distill_train(dataset: Path, base: Path, out: Path, steps: int, rank: int = 16) -> float:
    """Train with the project's trainer; its tokens/s (and the adapter is left in `out`)."""
    config = TrainConfig(max_steps=steps, save_steps=0, rank=rank, alpha=2 * rank)
    result = train_adapter(dataset, str(base), out, config, progress=False, overwrite=True)
    return float(result.metrics["tokens_per_second"])


def plain_trainer(dataset: Path, base: Path, work: Path, steps: int) -> float:
    """A hand-written transformers Trainer + peft run on the same examples; tokens/s."""
    import torch
    from peft import get_peft_model
    from transformers import (
        AutoModelForCausalLM,
        AutoTokenizer,
        DataCollatorForLanguageModeling,
        Trainer,
        TrainingArguments,
    )

    config = TrainConfig(max_steps=steps, save_steps=0)
    tok = AutoTokenizer.from_pretrained(base)
    lines = (dataset / "train.jsonl").read_text().splitlines()
    texts = [
        tok.apply_chat_template(json.loads(line)["messages"], tokenize=False) for line in lines
    ]
    items = [tok(t, add_special_tokens=False) for t in texts]
    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32), lora_config(config)
    )
    collate = DataCollatorForLanguageModeling(tok, mlm=False)
    seen = 0

    def counting(batch: list[dict[str, Any]]) -> dict[str, Any]:
        nonlocal seen
        out: dict[str, Any] = collate(batch)
        seen += int(out["attention_mask"].sum())
        return out

    args = TrainingArguments(
        output_dir=str(work / "plain"),
        max_steps=steps,
        per_device_train_batch_size=config.batch_size,
        learning_rate=config.learning_rate,
        save_strategy="no",
        report_to=[],
        logging_steps=10**6,
        disable_tqdm=True,
        use_cpu=True,
        dataloader_num_workers=0,
    )
    trainer = Trainer(model=model, args=args, train_dataset=items, data_collator=counting)
    t0 = time.perf_counter()
    trainer.train()
    return seen / (time.perf_counter() - t0)


def run_training(base: Path, work: Path, step_sizes: tuple[int, ...]) -> tuple[list[Row], Path]:
    """Rows per size, and the adapter the largest `distill train` run left (for serving)."""
    dataset = write_triage_dataset(work / "triage", n_train=600, n_eval=50, seed=0)
    rows: list[Row] = []
    adapter = work / "adapter-r16"
    for steps in step_sizes:
        print(f"training: {steps} steps, distill train and plain Trainer ...", file=sys.stderr)
        ours = distill_train(dataset, base, adapter, steps)
        plain = plain_trainer(dataset, base, work, steps)
        rows.append(
            Row(PART, "tokens/s, batch 16, LoRA r=16", f"{steps} steps", ours, "tok/s",
                "plain transformers Trainer", plain, "ratio >= 1")
        )  # fmt: skip
    return rows, adapter
