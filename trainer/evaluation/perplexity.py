"""Perplexity of the student (base + adapter) on the eval split's answers, computed locally."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from trainer.evaluation.data import EvalExample


def answer_perplexity(
    adapter_dir: Path, base_model: str, examples: Sequence[EvalExample], batch_size: int = 16
) -> float | None:
    """exp(mean negative log-likelihood per answer token), as training's eval loss measures it.

    Uses the training encoder, so exactly the assistant tokens are scored. None when no example
    has an answer token within the model's reach.
    """
    import torch
    import torch.nn.functional as F
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from trainer.training import tool_turns
    from trainer.training.data import IGNORE_INDEX, ChatExample, PadCollator, encode

    has_tokenizer = (adapter_dir / "tokenizer_config.json").is_file()
    tokenizer = AutoTokenizer.from_pretrained(str(adapter_dir if has_tokenizer else base_model))
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    base = AutoModelForCausalLM.from_pretrained(base_model, dtype=torch.float32)
    model = PeftModel.from_pretrained(base, str(adapter_dir)).eval()
    items = [
        encode(
            tokenizer,
            ChatExample(
                [
                    *(tool_turns.turn(m) for m in e.messages),
                    e.answer or {"role": "assistant", "content": e.target},
                ],
                tools=e.tools,
            ),
        )
        for e in examples
    ]
    collate = PadCollator(int(tokenizer.pad_token_id))
    total, count = 0.0, 0
    for offset in range(0, len(items), batch_size):
        batch = collate(
            [
                {"input_ids": i.input_ids, "labels": i.labels, "weight": 1.0}
                for i in items[offset : offset + batch_size]
            ]
        )
        with torch.inference_mode():
            logits = model(
                input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
            ).logits
        targets = batch["labels"][:, 1:]
        nll = F.cross_entropy(
            logits[:, :-1, :].float().reshape(-1, logits.shape[-1]),
            targets.reshape(-1),
            ignore_index=IGNORE_INDEX,
            reduction="sum",
        )
        total += float(nll)
        count += int((targets != IGNORE_INDEX).sum())
    if count == 0:
        return None
    return math.exp(min(total / count, 50.0))
