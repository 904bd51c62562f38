"""`distill adapters load|unload` against the session's real vLLM server."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from openai import OpenAI

from gateway.cli import main
from tests.trainer.test_registry import make_peft_adapter
from trainer.registry import registry as reg

pytestmark = pytest.mark.vllm


@pytest.fixture(scope="module")
def lora_dirs(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("vllm-adapters")
    other_base = root / "other-base"
    other_base.mkdir()
    # Same architecture, another directory: the server cannot know it is compatible.
    for item in tiny_model_dir.iterdir():
        (other_base / item.name).write_bytes(item.read_bytes())
    return {
        "good": make_peft_adapter(tiny_model_dir, root / "good", r=8),
        "rank32": make_peft_adapter(tiny_model_dir, root / "rank32", r=32),
        "other": make_peft_adapter(other_base, root / "other", r=8),
    }


def _served(base_url: str) -> dict[str, dict[str, object]]:
    data = httpx.get(f"{base_url}/models", timeout=30).json()["data"]
    return {m["id"]: m for m in data}


def test_load_serves_and_unload_removes(vllm_server: object, lora_dirs: dict[str, Path]) -> None:
    base_url = vllm_server.base_url  # type: ignore[attr-defined]
    runner = CliRunner()
    loaded = runner.invoke(
        main,
        ["adapters", "load", "t3-good", "--server", base_url, "--path", str(lora_dirs["good"])],
    )
    assert loaded.exit_code == 0, loaded.output
    assert "loaded t3-good" in loaded.output
    served = _served(base_url)
    assert served["t3-good"]["parent"] == "tiny"

    reply = OpenAI(base_url=base_url, api_key="x").chat.completions.create(
        model="t3-good", messages=[{"role": "user", "content": "hello"}], max_tokens=4
    )
    assert reply.model == "t3-good"

    unloaded = runner.invoke(main, ["adapters", "unload", "t3-good", "--server", base_url])
    assert unloaded.exit_code == 0, unloaded.output
    assert "t3-good" not in _served(base_url)


def test_load_by_registry_name(
    vllm_server: object, lora_dirs: dict[str, Path], tmp_path: Path
) -> None:
    base_url = vllm_server.base_url  # type: ignore[attr-defined]
    store = tmp_path / "distill.duckdb"
    reg.register_adapter(store, lora_dirs["good"], name="t3-registered")
    runner = CliRunner()
    result = runner.invoke(
        main, ["adapters", "load", "t3-registered", "--server", base_url, "--store", str(store)]
    )
    assert result.exit_code == 0, result.output
    assert _served(base_url)["t3-registered"]["root"] == str(lora_dirs["good"])
    assert (
        runner.invoke(main, ["adapters", "unload", "t3-registered", "--server", base_url]).exit_code
        == 0
    )


@pytest.mark.parametrize(
    ("adapter", "message"),
    [
        ("missing", "does not exist"),
        ("rank32", "--max-lora-rank"),
        ("other", "load it on a server started with that base model"),
    ],
)
def test_load_refusals_leave_server_unchanged(
    vllm_server: object, lora_dirs: dict[str, Path], tmp_path: Path, adapter: str, message: str
) -> None:
    base_url = vllm_server.base_url  # type: ignore[attr-defined]
    before = set(_served(base_url))
    path = lora_dirs.get(adapter, tmp_path / "does-not-exist")
    result = CliRunner().invoke(
        main, ["adapters", "load", f"t3-{adapter}", "--server", base_url, "--path", str(path)]
    )
    assert result.exit_code != 0
    assert message in result.output, result.output
    assert set(_served(base_url)) == before


def test_unload_unknown_adapter(vllm_server: object) -> None:
    base_url = vllm_server.base_url  # type: ignore[attr-defined]
    result = CliRunner().invoke(main, ["adapters", "unload", "never-loaded", "--server", base_url])
    assert result.exit_code != 0
    assert "refused to unload never-loaded" in result.output
