"""Student answers for eval prompts: through a vLLM server's OpenAI API, or locally with peft."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from openai import APIConnectionError, APIStatusError, AsyncOpenAI

Messages = list[dict[str, Any]]
Tools = list[dict[str, Any]]


class GenerationError(RuntimeError):
    """The student could not be asked; the message says what to do."""


@dataclass(frozen=True)
class Generation:
    text: str
    latency_ms: float
    completion_tokens: int


@dataclass(frozen=True)
class GenerationRun:
    generations: list[Generation]
    wall_s: float


def served_model_name(
    models: Sequence[dict[str, Any]], adapter_dir: Path, explicit: str | None
) -> str:
    """Which served model is this adapter: the one named, else the one loaded from its path."""
    ids = {str(m.get("id")) for m in models}
    if explicit:
        if explicit not in ids:
            raise GenerationError(
                f"the server does not serve {explicit!r} (it serves {', '.join(sorted(ids))}); "
                f"load it with `distill adapters load {explicit} --server URL --path {adapter_dir}`"
            )
        return explicit
    resolved = str(adapter_dir.resolve())
    for model in models:
        if model.get("parent") and str(model.get("root", "")).rstrip("/") == resolved:
            return str(model["id"])
    if adapter_dir.name in ids:
        return adapter_dir.name
    raise GenerationError(
        f"no adapter loaded from {adapter_dir} on the server; load it first with "
        f"`distill adapters load {adapter_dir.name} --server URL --path {adapter_dir}` "
        "or name the served adapter with --model"
    )


async def _generate_server(
    client: AsyncOpenAI,
    model: str,
    prompts: Sequence[Messages],
    max_tokens: int,
    concurrency: int,
    tools: Sequence[Tools | None] | None = None,
) -> list[Generation]:
    from trainer.training.tool_calls import calls_text  # trainer.training imports this module

    gate = asyncio.Semaphore(concurrency)

    async def one(messages: Messages, functions: Tools | None) -> Generation:
        extra: dict[str, Any] = {"tools": functions} if functions else {}
        async with gate:
            start = time.perf_counter()
            reply = await client.chat.completions.create(
                model=model,
                messages=messages,  # type: ignore[arg-type]
                max_tokens=max_tokens,
                temperature=0.0,
                **extra,
            )
            latency_ms = (time.perf_counter() - start) * 1000
        tokens = reply.usage.completion_tokens if reply.usage else 0
        message = reply.choices[0].message
        # Calls the server parsed (vLLM --tool-call-parser) are written back in the text
        # convention, so they compare like a local run's raw text.
        calls = [c.model_dump() for c in message.tool_calls or []]
        text = calls_text(calls) if calls else message.content or ""
        return Generation(text, latency_ms, tokens)

    listed = tools if tools else [None] * len(prompts)
    return list(await asyncio.gather(*(one(p, t) for p, t in zip(prompts, listed, strict=True))))


def generate_with_server(
    base_url: str,
    adapter_dir: Path,
    prompts: Sequence[Messages],
    *,
    model: str | None = None,
    max_tokens: int = 64,
    concurrency: int = 8,
    timeout_s: float = 120.0,
    tools: Sequence[Tools | None] | None = None,
) -> tuple[str, GenerationRun]:
    """Greedy answers from the adapter served by vLLM; returns the served name and the answers."""

    async def run() -> tuple[str, GenerationRun]:
        client = AsyncOpenAI(base_url=base_url, api_key="unused", timeout=timeout_s, max_retries=1)
        try:
            listed = await client.models.list()
            name = served_model_name([m.model_dump() for m in listed.data], adapter_dir, model)
            start = time.perf_counter()
            generations = await _generate_server(
                client, name, prompts, max_tokens, concurrency, tools
            )
            return name, GenerationRun(generations, time.perf_counter() - start)
        finally:
            await client.close()

    try:
        return asyncio.run(run())
    except APIConnectionError as exc:
        raise GenerationError(
            f"cannot reach the server at {base_url} ({exc}); check --server and that vLLM runs"
        ) from exc
    except APIStatusError as exc:
        raise GenerationError(f"the server at {base_url} refused: {exc.message}") from exc


def generate_locally(
    adapter_dir: Path,
    base_model: str,
    prompts: Sequence[Messages],
    *,
    max_tokens: int = 64,
    batch_size: int = 16,
    tools: Sequence[Tools | None] | None = None,
) -> GenerationRun:
    """Batched greedy answers with transformers + peft on the CPU (or whatever torch picks)."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    has_tokenizer = (adapter_dir / "tokenizer_config.json").is_file()
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(adapter_dir if has_tokenizer else base_model))
        base = AutoModelForCausalLM.from_pretrained(base_model, dtype=torch.float32)
    except (OSError, ValueError) as exc:
        raise GenerationError(
            f"cannot load the base model {base_model} ({exc}); pass --base-model with the "
            "student's local path or a Hugging Face id reachable from here"
        ) from exc
    model = PeftModel.from_pretrained(base, str(adapter_dir)).eval()
    return generate_with_model(
        model, tokenizer, prompts, max_tokens=max_tokens, batch_size=batch_size, tools=tools
    )


def generate_with_model(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[Messages],
    *,
    max_tokens: int,
    batch_size: int = 16,
    tools: Sequence[Tools | None] | None = None,
) -> GenerationRun:
    """Batched greedy answers from a loaded (peft) model, prompts rendered as inference does
    (with each prompt's function `tools`, as training renders agent rows)."""
    import torch

    from trainer.training.tool_turns import prompt_text

    # Left padding keeps every prompt's last token next to the generated ones.
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    was_training = model.training
    model.eval()
    generate: Any = model.generate  # peft's wrapper is untyped
    # Stop on the model's eos ids and the tokenizer's (a chat template's end of turn).
    configured = _as_list(model.generation_config.eos_token_id)
    stop_ids = {i for i in [*configured, tokenizer.eos_token_id] if isinstance(i, int)}

    generations: list[Generation] = []
    start = time.perf_counter()
    try:
        for offset in range(0, len(prompts), batch_size):
            batch = prompts[offset : offset + batch_size]
            batch_tools = tools[offset : offset + batch_size] if tools else [None] * len(batch)
            texts = [prompt_text(tokenizer, m, t) for m, t in zip(batch, batch_tools, strict=True)]
            inputs = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
            inputs = inputs.to(model.device)
            batch_start = time.perf_counter()
            with torch.inference_mode():
                output = generate(
                    **inputs,
                    max_new_tokens=max_tokens,
                    do_sample=False,
                    pad_token_id=tokenizer.pad_token_id,
                    eos_token_id=sorted(stop_ids),
                )
            # Every answer in a batch waited for the whole batch.
            latency_ms = (time.perf_counter() - batch_start) * 1000
            new_tokens = output[:, inputs["input_ids"].shape[1] :].tolist()
            for ids in new_tokens:
                kept = _until_stop(ids, stop_ids)
                text = str(tokenizer.decode(kept, skip_special_tokens=True))
                tokens = len(kept) + (len(kept) < len(ids))
                generations.append(Generation(text, latency_ms, tokens))
    finally:
        tokenizer.padding_side = side
        model.train(was_training)
    return GenerationRun(generations, time.perf_counter() - start)


def answer_budget(longest_answer_tokens: int) -> int:
    """Generation length for answers up to `longest_answer_tokens`: a quarter more, at least 8."""
    return max(1, longest_answer_tokens) + max(8, longest_answer_tokens // 4)


def generation_budget(targets: Sequence[str], base_model: str, lineage: dict[str, Any]) -> int:
    """Tokens to let the student write: the longest teacher answer in the student's tokens
    (+1 for the end of turn), with margin. Without the tokenizer, what training measured."""
    try:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(base_model)
        longest = max(len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in targets)
        return answer_budget(longest + 1)
    except (OSError, ValueError) as exc:
        recorded = (lineage.get("answer_tokens") or {}).get("max_new_tokens")
        if isinstance(recorded, int) and recorded > 0:
            return recorded
        raise GenerationError(
            f"cannot load the base model {base_model}'s tokenizer to size the answers ({exc}); "
            "pass --base-model with the student's local path, or --max-tokens"
        ) from None


def _as_list(value: int | list[int] | None) -> list[int]:
    if value is None:
        return []
    return [value] if isinstance(value, int) else list(value)


def _until_stop(ids: list[int], stop_ids: set[int]) -> list[int]:
    """Tokens before the first stop token (vLLM counts the stop token itself as generated)."""
    for i, token in enumerate(ids):
        if token in stop_ids:
            return ids[:i]
    return ids
