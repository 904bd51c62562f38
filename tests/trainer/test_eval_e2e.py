"""`distill eval` end to end: locally with peft, through the session's vLLM server, bad input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pytest
from click.testing import CliRunner

from gateway.cli import main
from trainer.registry.validate import read_adapter
from trainer.registry.vllm import load_adapter, unload_adapter

LIMIT = 60


def _eval(args: list[str]) -> Any:
    result = CliRunner().invoke(main, ["eval", *args])
    assert result.exit_code == 0, result.output
    return result


def _read(out: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    document = json.loads((out / "eval.json").read_text())
    rows = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    return document, rows


@pytest.fixture(scope="module")
def local_eval(
    trained_adapter_dir: Path, triage_dataset_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Path]:
    """One local eval of the trained adapter, recorded in a store; (out dir, store)."""
    root = tmp_path_factory.mktemp("eval-local")
    out, store = root / "out", root / "distill.duckdb"
    _eval(
        [
            "--adapter",
            str(trained_adapter_dir),
            "--dataset",
            str(triage_dataset_dir),
            "--out",
            str(out),
            "--limit",
            str(LIMIT),
            "--store",
            str(store),
        ]
    )
    return out, store


@pytest.mark.slow
def test_local_eval_of_trained_adapter(local_eval: tuple[Path, Path]) -> None:
    out, store = local_eval
    document, rows = _read(out)
    metrics = document["metrics"]
    assert document["mode"] == "local"
    assert metrics["n"] == LIMIT == len(rows)
    assert metrics["task_kind"] == "label"
    # the fixture adapter learned the teacher's rule
    assert metrics["accuracy"] >= 0.9
    # the metrics are computed from the predictions written beside them
    agree = sum(r["prediction"].strip().lower() == r["target"] for r in rows) / len(rows)
    assert metrics["accuracy"] == pytest.approx(agree)
    assert document["latency"]["p50_ms"] > 0 and document["latency"]["tokens_per_s"] > 0
    # one-word labels: the answer budget follows the longest answer (+ margin), not a fixed 64
    assert 8 < document["config"]["max_tokens"] < 64
    assert list(document["headline"]) == ["agreement", "accuracy", "macro_f1"]
    page = (out / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 4  # as test_eval_report's label report
    with duckdb.connect(str(store), read_only=True) as conn:
        kind, stored, adapter_path = conn.execute(
            "SELECT kind, metrics, adapter_path FROM runs"
        ).fetchone()  # type: ignore[misc]
    assert kind == "eval"
    assert json.loads(stored)["accuracy"] == metrics["accuracy"]
    assert adapter_path == document["adapter"]


@pytest.mark.vllm
def test_server_eval_matches_local(
    local_eval: tuple[Path, Path],
    trained_adapter_dir: Path,
    triage_dataset_dir: Path,
    vllm_server: Any,
    tmp_path: Path,
) -> None:
    with httpx.Client(timeout=120) as client:
        load_adapter(client, vllm_server.base_url, "t3-eval", read_adapter(trained_adapter_dir))
    try:
        out = tmp_path / "server"
        result = _eval(
            [
                "--adapter",
                str(trained_adapter_dir),
                "--dataset",
                str(triage_dataset_dir),
                "--server",
                vllm_server.base_url,
                "--out",
                str(out),
                "--limit",
                str(LIMIT),
            ]
        )
    finally:
        with httpx.Client(timeout=60) as client:
            unload_adapter(client, vllm_server.base_url, "t3-eval")
    assert "agreement" in result.output
    served, served_rows = _read(out)
    local, local_rows = _read(local_eval[0])
    assert served["mode"] == "server" and served["model"] == "t3-eval"
    assert served["metrics"]["accuracy"] == local["metrics"]["accuracy"]
    same = sum(
        a["prediction"] == b["prediction"] for a, b in zip(served_rows, local_rows, strict=True)
    )
    assert same == LIMIT
    assert served["latency"]["p95_ms"] >= served["latency"]["p50_ms"] > 0


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"--dataset": "missing-dataset"}, "eval.jsonl not found"),
        ({"--adapter": "missing-adapter"}, "does not exist"),
        ({"--base-model": "/no/such/model"}, "base model /no/such/model does not exist"),
        ({"--base-model": "empty-dir"}, "cannot load the base model"),
        ({"--limit": "0"}, "limit=0"),
    ],
)
def test_bad_input_fails_cleanly(
    tmp_path: Path, change: dict[str, str], message: str, tiny_model_dir: Path
) -> None:
    from tests.trainer.test_registry import make_peft_adapter

    adapter = make_peft_adapter(tiny_model_dir, tmp_path / "adapter", r=4)
    dataset = tmp_path / "dataset"
    dataset.mkdir()
    (tmp_path / "empty-dir").mkdir()
    line = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "x"}]}
    (dataset / "eval.jsonl").write_text(json.dumps(line) + "\n")
    options = {"--adapter": str(adapter), "--dataset": str(dataset), "--out": str(tmp_path / "o")}
    for key, value in change.items():
        options[key] = value if value.startswith("/") or key == "--limit" else str(tmp_path / value)
    result = CliRunner().invoke(main, ["eval", *[x for kv in options.items() for x in kv]])
    assert result.exit_code != 0
    assert message in result.output, result.output
    assert not (tmp_path / "o").exists()
