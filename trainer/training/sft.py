"""The LoRA model and its Trainer: weighted loss on assistant tokens, length-bucketed batches."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import (
    PreTrainedModel,
    PreTrainedTokenizerBase,
    PrinterCallback,
    Trainer,
    TrainerCallback,
    TrainingArguments,
)

from trainer.training.config import TrainConfig
from trainer.training.data import (
    IGNORE_INDEX,
    Encoded,
    EncodedDataset,
    PadCollator,
    TrainingInputError,
)


class WeightedSFTTrainer(Trainer):
    """Causal-LM loss on labelled (assistant) tokens, each scaled by its example's weight."""

    tokens_seen: int = 0

    def compute_loss(  # type: ignore[override, unused-ignore]
        self,
        model: torch.nn.Module,
        inputs: dict[str, torch.Tensor],
        return_outputs: bool = False,
        num_items_in_batch: torch.Tensor | int | None = None,
    ) -> Any:
        weights = inputs.pop("weights")
        labels = inputs.pop("labels")
        outputs = model(**inputs)
        if model.training:
            self.tokens_seen += int(inputs["attention_mask"].sum())

        # Position t predicts token t+1; padding and prompt tokens carry IGNORE_INDEX.
        logits = outputs.logits[:, :-1, :].float()
        targets = labels[:, 1:]
        per_token = F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]),
            targets.reshape(-1),
            ignore_index=IGNORE_INDEX,
            reduction="none",
        ).view_as(targets)
        scale = weights[:, None].to(per_token.dtype) * (targets != IGNORE_INDEX)
        total = (per_token * scale).sum()

        # Same normalisation as transformers' own loss: by the token count of the whole
        # optimizer step (all micro-batches, all devices) when the Trainer provides it.
        if num_items_in_batch is not None and self.model_accepts_loss_kwargs:
            loss = total / num_items_in_batch
            if self.args.average_tokens_across_devices and self.accelerator.num_processes > 1:
                loss = loss * self.accelerator.num_processes
        else:
            loss = total / (targets != IGNORE_INDEX).sum().clamp(min=1)
        return (loss, outputs) if return_outputs else loss


def threads_for(cores: int, local_world: int, load: float) -> int:
    """Threads per process: this process's share of the cores, minus the cores already busy.

    Small models are dominated by per-op overhead; oversubscribed OpenMP threads spin and make
    a step several times slower (measured: 0.15 s with 1 thread vs 1.1 s with 2 on a 2-core
    machine at load 4), so a busy machine gets fewer threads.
    """
    share = max(1, cores // max(1, local_world))
    idle = max(1, cores - round(load))
    return max(1, min(share, idle))


def choose_threads(config: TrainConfig) -> int:
    if config.num_threads:
        return config.num_threads
    if os.environ.get("OMP_NUM_THREADS"):
        return torch.get_num_threads()  # the user chose; torch already honours it
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    return threads_for(cores or 1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")), load)


def lora_config(config: TrainConfig) -> LoraConfig:
    """A LoRA vLLM serves: plain LoRA, no bias, no DoRA, nothing else saved in full."""
    return LoraConfig(
        r=config.rank,
        lora_alpha=config.alpha,
        lora_dropout=config.dropout,
        target_modules=list(config.target_modules),
        bias="none",
        use_dora=False,
        modules_to_save=None,
        task_type="CAUSAL_LM",
    )


def make_lora_model(base: PreTrainedModel, config: TrainConfig) -> PeftModel:
    """Wrap `base` with fresh LoRA layers; only they are trainable."""
    try:
        model = get_peft_model(base, lora_config(config))
    except ValueError as exc:
        raise TrainingInputError(
            f"target_modules={config.target_modules} do not fit the base model: {exc}"
        ) from None
    assert isinstance(model, PeftModel)
    return model


def build_trainer(
    model: PeftModel,
    tokenizer: PreTrainedTokenizerBase,
    train_items: Sequence[Encoded],
    eval_items: Sequence[Encoded],
    config: TrainConfig,
    *,
    work_dir: Path,
    steps: int,
    progress: bool = True,
    callbacks: Sequence[TrainerCallback] = (),
) -> WeightedSFTTrainer:
    """A Trainer over pre-tokenized items: length-grouped batches, checkpoints in `work_dir`."""
    args = TrainingArguments(
        output_dir=str(work_dir),
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.batch_size,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        learning_rate=config.learning_rate,
        max_steps=steps,
        lr_scheduler_type=config.lr_scheduler,
        warmup_steps=round(config.warmup_ratio * steps),
        weight_decay=config.weight_decay,
        max_grad_norm=config.max_grad_norm,
        logging_steps=config.logging_steps,
        save_strategy="steps" if config.save_steps else "no",
        save_steps=config.save_steps or steps,
        save_total_limit=config.save_total_limit,
        seed=config.seed,
        data_seed=config.seed,
        # Bucketing instead of packing: batches of similar length waste little on padding
        # and never let one conversation attend to another.
        # A curriculum fixes the order (set by the caller), so the sampler must keep it.
        train_sampling_strategy="group_by_length" if config.curriculum == "none" else "sequential",
        bf16=config.precision == "bf16",
        remove_unused_columns=False,
        prediction_loss_only=True,
        dataloader_num_workers=0,
        dataloader_pin_memory=torch.cuda.is_available(),
        # Without a GPU, say so: accelerate then runs torchrun processes as multi-CPU DDP
        # (gloo) instead of N independent copies.
        use_cpu=not torch.cuda.is_available(),
        disable_tqdm=not progress,
        report_to="none",
    )
    pad_id = tokenizer.pad_token_id
    assert isinstance(pad_id, int)
    trainer = WeightedSFTTrainer(
        model=model,
        args=args,
        data_collator=PadCollator(pad_id),
        train_dataset=EncodedDataset(train_items),
        eval_dataset=EncodedDataset(eval_items) if eval_items else None,
        processing_class=tokenizer,
        callbacks=list(callbacks),
    )
    if not progress:
        trainer.remove_callback(PrinterCallback)
    return trainer
