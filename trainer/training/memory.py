"""Will the base model fit? Its size from config.json (no weights loaded) against free memory."""

from __future__ import annotations

from pathlib import Path

from trainer.training.data import TrainingInputError

GIB = 1024**3
# A floor, not an estimate of the peak: the fp32 weights alone plus the Python runtime. Below it
# training cannot even load the model; above it, activations and the optimizer add more (issue
# 18's SmolLM2-135M run: 0.54 GB of weights, 2.4 GB peak at batch 8).
BYTES_PER_PARAM = 4
RUNTIME_BYTES = 1.0 * GIB


def training_bytes(n_params: int) -> float:
    """The least memory LoRA training on a model of `n_params` parameters in fp32 takes."""
    return n_params * BYTES_PER_PARAM + RUNTIME_BYTES


def memory_problem(n_params: int, available_bytes: float | None, where: str) -> str | None:
    """Why a model this size cannot train in the memory there is (None: it may fit)."""
    need = training_bytes(n_params)
    if available_bytes is None or need <= available_bytes:
        return None
    return (
        f"the base model has {n_params / 1e9:.2f} B parameters: training it in fp32 needs at "
        f"least {need / GIB:.1f} GiB, but {where} has {available_bytes / GIB:.1f} GiB available; "
        "pick a smaller student, free memory, or train where there is more"
    )


def available_memory() -> float | None:
    """Bytes this process can still use: MemAvailable, capped by the cgroup's limit."""
    available = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                available = float(line.split()[1]) * 1024
    except OSError:
        return None
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        used = Path("/sys/fs/cgroup/memory.current").read_text().strip()
        if limit != "max" and available is not None:
            available = min(available, float(limit) - float(used))
    except (OSError, ValueError):
        pass
    return available


def count_parameters(model_name: str, local_only: bool) -> int:
    """Parameters of the model config.json describes, built on the meta device (no memory)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    try:
        config = AutoConfig.from_pretrained(model_name, local_files_only=local_only)
        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(config)  # type: ignore[no-untyped-call, unused-ignore]
    except (OSError, ValueError) as exc:
        raise TrainingInputError(
            f"could not read the config of base model {model_name}: {exc}"
        ) from None
    return sum(p.numel() for p in model.parameters())


def check_fits(model_name: str, local_only: bool) -> int:
    """Refuse, before loading any weights, a base model too big for this machine's memory."""
    import torch

    n_params = count_parameters(model_name, local_only)
    if torch.cuda.is_available():
        free, _ = torch.cuda.mem_get_info()
        problem = memory_problem(n_params, float(free), "the GPU")
    else:
        problem = memory_problem(n_params, available_memory(), "this machine")
    if problem:
        raise TrainingInputError(f"{model_name}: {problem}")
    return n_params
