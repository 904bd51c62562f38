"""Build the tiny Llama student (random weights, locally trained BPE tokenizer) into a directory."""

from __future__ import annotations

import json
import random
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from distill_demo.teacher import task
from trainer.tiny.chat_template import BOS, CHAT_TEMPLATE, END, PAD, ROLE_TOKENS, SPECIAL_TOKENS


@dataclass(frozen=True)
class TinyModelSpec:
    """Shape of the tiny model; head_dim 64 because vLLM's CPU attention rejects smaller heads."""

    vocab_size: int = 512
    hidden_size: int = 128
    intermediate_size: int = 256
    num_hidden_layers: int = 2
    num_attention_heads: int = 2
    num_key_value_heads: int = 1
    head_dim: int = 64
    max_position_embeddings: int = 512

    def __post_init__(self) -> None:
        if self.vocab_size < 256 + len(SPECIAL_TOKENS):
            raise ValueError(
                f"vocab_size={self.vocab_size} is too small: the byte alphabet alone needs "
                f"{256 + len(SPECIAL_TOKENS)}"
            )
        if self.head_dim * self.num_attention_heads != self.hidden_size:
            raise ValueError(
                f"head_dim={self.head_dim} x num_attention_heads={self.num_attention_heads} "
                f"must equal hidden_size={self.hidden_size}"
            )
        if self.num_attention_heads % self.num_key_value_heads:
            raise ValueError(
                f"num_key_value_heads={self.num_key_value_heads} must divide "
                f"num_attention_heads={self.num_attention_heads}"
            )


def default_corpus(seed: int = 0, n_tickets: int = 3000) -> list[str]:
    """Text for the tokenizer: demo tickets, the task's prompts and every answer it can give."""
    rng = random.Random(seed)
    texts = [task.SYSTEM_PROMPT, task.JSON_SYSTEM_PROMPT]
    for _ in range(n_tickets):
        ticket, _ = task.generate_ticket(rng)
        texts.append(ticket)
        texts.append(task.answer(ticket))
        texts.append(task.answer(ticket, json_mode=True))
    # The prompts and labels are what every request carries: weight them so they merge whole.
    texts.extend([task.SYSTEM_PROMPT, task.JSON_SYSTEM_PROMPT, *task.LABELS] * 50)
    return texts


def train_tokenizer(texts: Iterable[str], vocab_size: int) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer (any text encodes, no unknown token) with the chat template."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    fast = PreTrainedTokenizerFast(  # type: ignore[no-untyped-call, unused-ignore]
        tokenizer_object=tok,
        bos_token=BOS,
        eos_token=END,
        pad_token=PAD,
        additional_special_tokens=list(ROLE_TOKENS),
        model_max_length=512,
        padding_side="right",
        clean_up_tokenization_spaces=False,
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def build_model(
    tokenizer: PreTrainedTokenizerFast, spec: TinyModelSpec, seed: int
) -> LlamaForCausalLM:
    """A randomly initialised Llama whose vocabulary matches the tokenizer."""
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=spec.hidden_size,
        intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.num_hidden_layers,
        num_attention_heads=spec.num_attention_heads,
        num_key_value_heads=spec.num_key_value_heads,
        head_dim=spec.head_dim,
        max_position_embeddings=spec.max_position_embeddings,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
        dtype="float32",
    )
    torch.manual_seed(seed)
    # mypy's strict mode (gateway.*) leaks to these untyped transformers calls; hence the ignores.
    model = LlamaForCausalLM(config)  # type: ignore[no-untyped-call, unused-ignore]
    # LoRA leaves lm_head frozen. With the default init (std 0.02) its logits stay within a few
    # units of each other, so no adapter could make a confident prediction (loss floor ~3.8
    # nats). A 1/sqrt(hidden) std lets a well-aligned hidden state reach logits of ~10.
    with torch.no_grad():
        model.lm_head.weight.normal_(0.0, spec.hidden_size**-0.5)
    model.generation_config = GenerationConfig(  # type: ignore[no-untyped-call, unused-ignore]
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return model


def build_tiny_model(
    out_dir: Path,
    *,
    texts: Iterable[str] | None = None,
    seed: int = 0,
    spec: TinyModelSpec | None = None,
    overwrite: bool = False,
) -> Path:
    """Write the tiny model to `out_dir` (transformers and vLLM load it); deterministic per seed."""
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()) and not overwrite:
        raise FileExistsError(f"{out_dir} exists and is not empty; choose another directory")
    spec = spec or TinyModelSpec()
    corpus = list(texts) if texts is not None else default_corpus(seed)
    if not any(t.strip() for t in corpus):
        raise ValueError("the tokenizer corpus is empty; give some text to train it on")

    tokenizer = train_tokenizer(corpus, spec.vocab_size)
    model = build_model(tokenizer, spec, seed)

    # Write next to the target and rename, so a crash never leaves a half-built model behind.
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        (tmp / "distill_tiny.json").write_text(
            json.dumps({"seed": seed, "spec": spec.__dict__, "corpus_texts": len(corpus)}, indent=2)
        )
        if out_dir.exists():
            shutil.rmtree(out_dir)
        tmp.rename(out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir
