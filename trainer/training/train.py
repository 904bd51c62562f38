"""`train_adapter`: validate inputs, fit a LoRA with the Trainer, publish the adapter atomically."""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedTokenizerBase,
    TrainerCallback,
    set_seed,
)
from transformers.trainer_utils import get_last_checkpoint
from transformers.utils import logging as hf_logging

from trainer.evaluation.generate import answer_budget, generate_with_model
from trainer.evaluation.memory import peak_rss_mb
from trainer.training import tool_turns
from trainer.training.base_model import resolve_base_model
from trainer.training.check import LearningCheck, assess
from trainer.training.config import TrainConfig, planned_steps
from trainer.training.data import (
    ChatExample,
    EncodeStats,
    TrainingInputError,
    encode_all,
    read_jsonl,
)
from trainer.training.lineage import check_adapter_dir, dataset_card, lineage_record
from trainer.training.memory import check_fits
from trainer.training.search import search_learning_rate
from trainer.training.sft import (
    WeightedSFTTrainer,
    build_trainer,
    choose_threads,
    make_lora_model,
)
from trainer.training.tasks import curriculum_order, with_rationales

RUN_FILE = "run.json"  # in the work dir: what a --resume must match


@dataclass
class TrainResult:
    """Where the adapter went and how training went."""

    adapter_dir: Path
    metrics: dict[str, float]
    steps: int
    seconds: float
    tokens: int
    notes: list[str] = field(default_factory=list)  # choices made for the user, to show them
    search: dict[str, Any] | None = None  # the learning-rate search, when one ran
    check: LearningCheck | None = None  # None when there was no eval split or no check asked


def work_dir_for(out_dir: Path) -> Path:
    """Hidden sibling of `out_dir` that holds checkpoints until the run is complete."""
    return out_dir.parent / f".{out_dir.name}.partial"


@contextlib.contextmanager
def run_lock(out_dir: Path) -> Iterator[None]:
    """Hold `.NAME.lock` next to `out_dir` so two runs never share one work dir.

    flock is released by the kernel if the process dies, so a crash leaves no stale lock.
    """
    path = out_dir.parent / f".{out_dir.name}.lock"
    with path.open("a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            raise TrainingInputError(
                f"another training run is writing {out_dir} (pid {fh.read().strip() or '?'}); "
                "wait for it to finish or choose another --out"
            ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        try:
            yield
        finally:
            path.unlink(missing_ok=True)


def _load_examples(
    dataset_dir: Path, config: TrainConfig
) -> tuple[list[ChatExample], list[ChatExample]]:
    if not dataset_dir.is_dir():
        raise TrainingInputError(
            f"dataset directory {dataset_dir} does not exist; "
            "build one with `distill dataset build`"
        )
    train_path = dataset_dir / "train.jsonl"
    if not train_path.is_file():
        raise TrainingInputError(
            f"{dataset_dir} has no train.jsonl; point --dataset at a directory written by "
            "`distill dataset build`"
        )
    train = read_jsonl(train_path)
    if len(train) < config.min_examples:
        raise TrainingInputError(
            f"train.jsonl has {len(train)} examples, fewer than min_examples="
            f"{config.min_examples}; log more traffic and rebuild the dataset (or lower "
            "min_examples for a quick experiment)"
        )
    eval_path = dataset_dir / "eval.jsonl"
    evals = read_jsonl(eval_path) if eval_path.is_file() else []
    if config.rationales:
        train = with_rationales(train, config.rationale_weight)
    return train, evals


def _load_tokenizer(base: str, local_only: bool) -> PreTrainedTokenizerBase:
    try:
        tokenizer = AutoTokenizer.from_pretrained(base, local_files_only=local_only)
    except (OSError, ValueError) as exc:
        raise TrainingInputError(f"could not load the tokenizer of {base}: {exc}") from None
    if not tokenizer.chat_template:
        raise TrainingInputError(
            f"base model {base} has no chat template; training uses it to render conversations, "
            "so pick a chat/instruct model or add a template to its tokenizer_config.json"
        )
    return tokenizer


def _choose_pad(tokenizer: PreTrainedTokenizerBase) -> str | None:
    """Pad with eos when the tokenizer has no pad token; the note that says so.

    Padding is masked out of attention and loss, so any id works; eos rather than a new token,
    because a new token would grow the embeddings, which a LoRA served by vLLM cannot carry.
    """
    if tokenizer.pad_token_id is not None:
        return None
    if tokenizer.eos_token_id is None:
        raise TrainingInputError(
            "the base model's tokenizer has neither a pad nor an eos token; set pad_token (and "
            "eos_token) in its tokenizer_config.json"
        )
    tokenizer.pad_token = tokenizer.eos_token
    return (
        f"the tokenizer has no pad token: padding with eos {tokenizer.eos_token!r} "
        "(padding is masked out of attention and loss)"
    )


def _check_out_dir(out_dir: Path, overwrite: bool) -> None:
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())) and not overwrite:
        raise TrainingInputError(
            f"output {out_dir} already exists; choose another --out or pass --overwrite"
        )


def _resume_key(config: TrainConfig, base: str, card: dict[str, Any]) -> dict[str, Any]:
    # Logging and checkpoint cadence may change between attempts; the rest defines the run.
    cadence = ("logging_steps", "save_steps", "save_total_limit", "num_threads", "check_examples")
    settings = {k: v for k, v in config.to_dict().items() if k not in cadence}
    return {"config": settings, "base_model": base, "dataset_hash": card["content_hash"]}


def _last_checkpoint(work: Path) -> str | None:
    """The newest checkpoint that was written completely.

    An interrupt (Ctrl-C, a killed job) can land while a checkpoint is being saved, leaving a
    `checkpoint-N` directory without its state or weights; resuming from it fails, so fall
    back to the newest complete one.
    """
    found = get_last_checkpoint(str(work))  # type: ignore[no-untyped-call, unused-ignore]
    if not found:
        return None
    candidates = sorted(
        (p for p in work.glob("checkpoint-*") if p.name.split("-")[-1].isdigit()),
        key=lambda p: int(p.name.split("-")[-1]),
        reverse=True,
    )
    for checkpoint in candidates:
        weights = any(checkpoint.glob("*.safetensors")) or any(checkpoint.glob("*.bin"))
        if (checkpoint / "trainer_state.json").is_file() and weights:
            return str(checkpoint)
    return None


def _prepare_work_dir(work: Path, run: dict[str, Any], resume: bool) -> str | None:
    """Create or reuse the work dir; the checkpoint to resume from, if any."""
    if resume and (work / RUN_FILE).is_file():
        previous = json.loads((work / RUN_FILE).read_text())
        changed = sorted(k for k in run if previous.get(k) != run[k])
        if changed:
            raise TrainingInputError(
                f"cannot --resume: the {', '.join(changed)} differ from the interrupted run in "
                f"{work}; rerun with the same settings, or without --resume to start over"
            )
        return _last_checkpoint(work)
    if work.exists():
        shutil.rmtree(work)  # an interrupted run nobody asked to resume
    work.mkdir(parents=True)
    (work / RUN_FILE).write_text(json.dumps(run, indent=2, sort_keys=True))
    return None


def _metrics(
    trainer: WeightedSFTTrainer,
    training_loss: float,
    train_seconds: float,
    stats: EncodeStats,
    world_size: int,
) -> dict[str, float]:
    logged = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    tokens = trainer.tokens_seen * world_size
    return {
        "train_loss": float(training_loss),
        "final_loss": float(logged[-1]) if logged else float(training_loss),
        "train_seconds": train_seconds,
        "tokens_per_second": tokens / train_seconds if train_seconds > 0 else 0.0,
        "train_tokens": float(tokens),
        "train_examples": float(stats.examples),
        "skipped_too_long": float(stats.skipped_too_long),
        "skipped_no_target": float(stats.skipped_no_target),
        "steps": float(trainer.state.global_step),
    }


def train_adapter(
    dataset_dir: Path,
    base_model: str,
    out_dir: Path,
    config: TrainConfig,
    *,
    resume: bool = False,
    progress: bool = True,
    overwrite: bool = False,
    callbacks: Sequence[TrainerCallback] = (),
    search_lr: bool = False,
    log: Callable[[str], None] = print,
) -> TrainResult:
    """Train a LoRA adapter on `dataset_dir` and write it atomically to `out_dir`.

    Checkpoints live in a hidden work dir next to `out_dir` (`.NAME.partial`); `resume=True`
    continues from its last checkpoint. Only a finished run appears under `out_dir`.
    `search_lr` first trains a few short runs at rates around config.learning_rate (in a
    hidden `.NAME.search` dir, removed after) and keeps the best one's rate.
    """
    search = None
    if search_lr:
        out = Path(out_dir)
        config, search = _search(dataset_dir, base_model, out, config, resume, overwrite, log)
    bars_were_on = hf_logging.is_progress_bar_enabled()
    if not progress:
        hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call, unused-ignore]
    try:
        with contextlib.ExitStack() as cleanup:
            return _train(
                Path(dataset_dir),
                base_model,
                Path(out_dir),
                config,
                resume,
                progress,
                overwrite,
                callbacks,
                cleanup,
                search,
            )
    finally:
        if bars_were_on:
            hf_logging.enable_progress_bar()  # type: ignore[no-untyped-call, unused-ignore]


def _train(
    dataset_dir: Path,
    base_model: str,
    out_dir: Path,
    config: TrainConfig,
    resume: bool,
    progress: bool,
    overwrite: bool,
    callbacks: Sequence[TrainerCallback],
    cleanup: contextlib.ExitStack,
    search: dict[str, Any] | None,
) -> TrainResult:
    started = time.monotonic()

    # Validate everything the user gave before any heavy work.
    train_examples, eval_examples = _load_examples(dataset_dir, config)
    _check_out_dir(out_dir, overwrite)
    source = resolve_base_model(base_model)
    card = dataset_card(dataset_dir)
    tokenizer = _load_tokenizer(source.name, source.local_files_only)
    pad_note = _choose_pad(tokenizer)
    tool_note = tool_turns.serving_note(tokenizer, [(e.messages, e.tools) for e in train_examples])

    # Tokenize with the base model's chat template; labels only on assistant tokens.
    train_items, stats = encode_all(tokenizer, train_examples, config.max_seq_len)
    if stats.examples < config.min_examples:
        raise TrainingInputError(
            f"only {stats.examples} of {len(train_examples)} training examples fit: "
            f"{stats.skipped_too_long} are longer than max_seq_len={config.max_seq_len} tokens "
            f"and {stats.skipped_no_target} have no assistant tokens; raise --max-seq-len "
            f"(the longest conversation has {stats.longest_sequence} tokens, its answer "
            f"{stats.longest_answer})"
        )
    if stats.skipped_too_long * 2 > len(train_examples):
        # The short rest would not stand for the task (long tickets, long JSON answers).
        raise TrainingInputError(
            f"{stats.skipped_too_long} of {len(train_examples)} training conversations are "
            f"longer than max_seq_len={config.max_seq_len} tokens, so training would see only "
            f"the short rest; raise --max-seq-len to {stats.longest_sequence} (the longest)"
        )
    train_items = curriculum_order(train_items, config.curriculum)
    eval_items, eval_stats = encode_all(tokenizer, eval_examples, config.max_seq_len)

    # Refuse a base model that cannot fit in memory, from its config, before loading it.
    n_params = check_fits(source.name, source.local_files_only)

    # Load the base model in fp32 and wrap it with a LoRA vLLM can serve.
    threads = choose_threads(config)
    torch.set_num_threads(threads)
    set_seed(config.seed)
    try:
        base = AutoModelForCausalLM.from_pretrained(
            source.name, dtype=torch.float32, local_files_only=source.local_files_only
        )
    except (OSError, ValueError) as exc:
        raise TrainingInputError(f"could not load base model {source.name}: {exc}") from None
    model = make_lora_model(base, config)

    # The work dir holds checkpoints; under torchrun only rank 0 manages it.
    work = work_dir_for(out_dir)
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    is_main = int(os.environ.get("RANK", "0")) == 0
    if is_main:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        cleanup.enter_context(run_lock(out_dir))
        run_key = _resume_key(config, source.name, card)
        last_checkpoint = _prepare_work_dir(work, run_key, resume)
    else:
        last_checkpoint = _last_checkpoint(work) if resume and work.is_dir() else None
    trainer = build_trainer(
        model,
        tokenizer,
        train_items,
        eval_items,
        config,
        work_dir=work,
        steps=planned_steps(config, len(train_items), world_size),
        progress=progress,
        callbacks=callbacks,
    )

    # Train (from the last checkpoint when resuming), then score the held-out split.
    train_started = time.monotonic()
    output = trainer.train(resume_from_checkpoint=last_checkpoint)
    train_seconds = time.monotonic() - train_started
    metrics = _metrics(trainer, output.training_loss, train_seconds, stats, world_size)
    metrics["threads"] = float(threads)
    metrics["processes"] = float(trainer.args.world_size)
    if eval_items:
        metrics["eval_loss"] = float(trainer.evaluate()["eval_loss"])
        metrics["eval_perplexity"] = math.exp(min(metrics["eval_loss"], 50.0))
        metrics["eval_examples"] = float(len(eval_items))
    # Check the run learned: greedy answers on the eval split against the teacher's.
    check = None
    budget = answer_budget(max(stats.longest_answer, eval_stats.longest_answer))
    if is_main and eval_examples and config.check_examples:
        check = _learning_check(model, tokenizer, trainer, eval_examples, config, budget)
        metrics["agreement"] = check.agreement
        metrics["majority_baseline"] = check.majority_baseline
        metrics["top_answer_share"] = check.top_answer_share
    metrics["peak_rss_mb"] = peak_rss_mb()
    metrics["base_parameters"] = float(n_params)

    # Save the adapter (not the tokenizer: vLLM uses the base's) with its lineage, then
    # rename it into place so `out_dir` only ever holds a complete adapter.
    seconds = time.monotonic() - started
    if is_main:
        staged = work / "adapter"
        model.save_pretrained(str(staged), safe_serialization=True)
        lineage = lineage_record(
            base_model=source.name,
            dataset_dir=dataset_dir,
            card=card,
            config=config,
            metrics=metrics,
            steps=trainer.state.global_step,
            resumed_from=last_checkpoint,
            check=check.to_dict() if check else None,
            answer_tokens={"longest": stats.longest_answer, "max_new_tokens": budget},
            serving={"max_lora_rank": config.rank, "note": config.serving_note()},
            tokenizer={"pad_token": tokenizer.pad_token, "note": pad_note},
            search=search,
        )
        (staged / "distill.json").write_text(json.dumps(lineage, indent=2))
        # A rank above the serving limit is allowed: the lineage says how to serve it.
        check_adapter_dir(staged, max(config.max_serving_rank, config.rank))
        if out_dir.is_dir():
            shutil.rmtree(out_dir)
        elif out_dir.exists():
            out_dir.unlink()
        staged.rename(out_dir)
        shutil.rmtree(work)
    return TrainResult(
        adapter_dir=out_dir,
        metrics=metrics,
        steps=trainer.state.global_step,
        seconds=seconds,
        tokens=trainer.tokens_seen * world_size,
        check=check,
        notes=[n for n in (pad_note, config.serving_note(), tool_note) if n],
        search=search,
    )


def _search(
    dataset_dir: Path,
    base_model: str,
    out_dir: Path,
    config: TrainConfig,
    resume: bool,
    overwrite: bool,
    log: Callable[[str], None],
) -> tuple[TrainConfig, dict[str, Any]]:
    """The learning-rate search, or, when resuming, the rate the interrupted run had chosen."""
    run_file = work_dir_for(out_dir) / RUN_FILE
    if resume and run_file.is_file():
        chosen = json.loads(run_file.read_text())["config"]["learning_rate"]
        return replace(config, learning_rate=chosen), {"resumed": True, "chosen": chosen}
    train_examples, _ = _load_examples(Path(dataset_dir), config)
    _check_out_dir(out_dir, overwrite)

    def short_run(out: Path, short: TrainConfig) -> TrainResult:
        return train_adapter(dataset_dir, base_model, out, short, progress=False, overwrite=True)

    scratch = out_dir.parent / f".{out_dir.name}.search"
    return search_learning_rate(short_run, config, len(train_examples), scratch, log)


def _learning_check(
    model: Any,
    tokenizer: PreTrainedTokenizerBase,
    trainer: WeightedSFTTrainer,
    eval_examples: Sequence[ChatExample],
    config: TrainConfig,
    max_new_tokens: int,
) -> LearningCheck:
    """Greedy answers to the first eval prompts, assessed against the teacher's answers."""
    prompts, tools, answers = [], [], []
    for example in eval_examples[: config.check_examples]:
        last = max(i for i, m in enumerate(example.messages) if m["role"] == "assistant")
        prompts.append([dict(m) for m in example.messages[:last]])
        tools.append(example.tools)
        answers.append(example.messages[last])
    run = generate_with_model(
        model,
        tokenizer,
        prompts,
        max_tokens=max_new_tokens,
        batch_size=config.batch_size,
        tools=tools,
    )
    losses = [float(h["loss"]) for h in trainer.state.log_history if "loss" in h]
    references = [tool_turns.reference(a) for a in answers]
    pairs = zip(run.generations, answers, strict=True)
    predictions = [tool_turns.compared(g.text, a) for g, a in pairs]
    return assess(predictions, references, losses, max_new_tokens=max_new_tokens)
