"""Bad input to the issue-8 data commands: clear message, non-zero exit, nothing written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.fixtures.models import write_triage_dataset
from tests.fixtures.servers import free_port
from trainer.dataset.cli import dataset


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(dataset, list(args))
    return result.exit_code, result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--target", "judge"], "--target judge needs a judge"),
        (["--target", "judge", "--judge-model", "m", "--judge-teacher", "x"], "pass both"),
        (["--judge-teacher", "x"], "--judge-* options need --target judge"),
        (["--drop-disagreement", "--max-disagreement", "0.5"], "not both"),
        (["--target", "vote", "--max-disagreement", "1.5"], "max_disagreement must be in [0, 1)"),
        (["--target", "best"], "Invalid value for '--target'"),
    ],
)
def test_build_target_options_are_checked(tmp_path: Path, args: list[str], message: str) -> None:
    code, output = _run("build", "--store", str(tmp_path / "none.duckdb"), "--route", "r", *args)
    assert code == 2 and message in output, output


def test_enrich_errors_leave_nothing_behind(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    common = ["--base-url", url, "--model", "gpt-4o"]
    code, output = _run("enrich", "--dataset", str(tmp_path / "missing"), "--rationales", *common)
    assert code == 1 and "has no train.jsonl" in output
    data = write_triage_dataset(tmp_path / "ds", n_train=4, n_eval=2)
    code, output = _run("enrich", "--dataset", str(data), *common)
    assert code == 2 and "--rationales" in output
    code, output = _run("enrich", "--dataset", str(data), "--rationales", *common)
    assert code == 1 and "failed" in output and "--base-url" in output, output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]  # no half-written dataset
    (data / "train.jsonl").write_text(json.dumps({"messages": []}) + "\n")
    code, output = _run("enrich", "--dataset", str(data), "--rationales", *common)
    assert code == 1 and "line 1 has no assistant answer" in output


def test_synth_errors(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    common = ["--base-url", url, "--model", "gpt-4o", "--route", "r"]
    code, output = _run("synth", "--store", str(tmp_path / "no.duckdb"), "--n", "3", *common)
    assert code == 1 and "does not exist" in output
    code, output = _run("synth", "--store", str(tmp_path / "no.duckdb"), "--n", "0", *common)
    assert code == 2 and "n=0 must be at least 1" in output
