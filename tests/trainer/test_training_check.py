"""The learning check after training: collapsed and non-learning runs are named (pure)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from gateway.cli import main
from trainer.registry import registry as reg
from trainer.registry.validate import AdapterError, check_problems
from trainer.training.check import EXIT_CHECK_FAILED, assess

LABELS = ["billing", "account", "technical", "shipping"]
TEACHER = [LABELS[i % 4] for i in range(40)]  # balanced: the majority baseline is 0.25
FALLING = [2.5, 1.2, 0.4, 0.1]


@pytest.mark.parametrize(
    ("predictions", "losses", "problems"),
    [
        (TEACHER, FALLING, []),
        (["billing"] * 40, FALLING, ["one answer ('billing') to 100%", "not above"]),
        (TEACHER, [2.5, 2.4, 2.45, 2.4], ["loss stayed flat (2.5000 -> 2.4000)"]),
        (TEACHER, [0.03, 0.02, 0.03], []),  # flat, but the base already knew the task
        (["Billing."] * 10 + TEACHER[10:], [2.5], []),  # labels compared as the gates do
        ([LABELS[(i + 1) % 4] for i in range(40)], FALLING, ["agreement with the teacher 0.000"]),
        (TEACHER[:12] + ["account"] * 28, FALLING, []),  # 78 % one answer, yet it learned
    ],
    ids=[
        "learned",
        "constant",
        "flat-loss",
        "flat-but-learned",
        "one-loss-value",
        "wrong-labels",
        "skewed-but-ok",
    ],
)
def test_assess_names_what_went_wrong(
    predictions: list[str], losses: list[float], problems: list[str]
) -> None:
    check = assess(predictions, TEACHER, losses)
    assert check.majority_baseline == pytest.approx(0.25)
    assert check.teacher_top_share == pytest.approx(0.25)
    assert len(check.problems) == len(problems), check.problems
    for problem, fragment in zip(check.problems, problems, strict=True):
        assert fragment in problem
    assert check.passed is (not problems)
    assert (check.to_dict()["advice"] is None) is check.passed


def test_assess_json_answers_field_by_field() -> None:
    teacher = [json.dumps({"email": f"u{i}@x.io", "plan": "pro"}) for i in range(10)]
    # Always answering the first object gets its own pair right and half of every other.
    check = assess(teacher, teacher, FALLING)
    assert check.task_kind == "json"
    assert check.agreement == 1.0
    assert check.majority_baseline == pytest.approx(0.55)  # (1 + 9 x 0.5) / 10
    assert check.passed
    lazy = assess([teacher[0]] * 10, teacher, FALLING)
    assert not lazy.passed
    assert lazy.agreement == pytest.approx(lazy.majority_baseline)


def test_a_teacher_with_one_answer_is_no_collapse() -> None:
    check = assess(["billing"] * 8, ["billing"] * 8, FALLING)
    assert check.passed


@pytest.mark.parametrize(
    ("lineage", "problems"),
    [
        ({}, []),
        ({"check": None}, []),
        ({"check": {"passed": True, "problems": []}}, []),
        ({"check": {"passed": False, "problems": ["flat"]}}, ["flat"]),
        ({"check": {"passed": False}}, ["the learning check failed"]),
    ],
)
def test_check_problems(lineage: dict[str, object], problems: list[str]) -> None:
    assert check_problems(lineage) == problems


def test_registry_refuses_a_failed_run_unless_forced(
    trained_adapter_dir: Path, tmp_path: Path
) -> None:
    adapter = tmp_path / "collapsed"
    shutil.copytree(trained_adapter_dir, adapter)
    lineage = json.loads((adapter / "distill.json").read_text())
    lineage["check"] = {"passed": False, "problems": ["the student gives one answer"]}
    (adapter / "distill.json").write_text(json.dumps(lineage))
    store = tmp_path / "store.duckdb"
    with pytest.raises(AdapterError, match=r"one answer.*--force"):
        reg.register_adapter(store, adapter)
    runner = CliRunner()
    refused = runner.invoke(main, ["adapters", "register", str(adapter), "--store", str(store)])
    assert refused.exit_code == 1 and "--force" in refused.output
    forced = runner.invoke(
        main, ["adapters", "register", str(adapter), "--store", str(store), "--force"]
    )
    assert forced.exit_code == 0, forced.output
    assert reg.get_adapter(store, "collapsed").state == "candidate"


def test_fixture_runs_pass_or_fail_their_check(
    trained_adapter_dir: Path, bad_adapter_dir: Path
) -> None:
    bad = json.loads((bad_adapter_dir / "distill.json").read_text())["check"]
    assert not bad["passed"] and bad["advice"], bad
    lineage = json.loads((trained_adapter_dir / "distill.json").read_text())
    check = lineage["check"]
    assert check["passed"], check
    assert check["agreement"] > check["majority_baseline"] + 0.3
    assert lineage["metrics"]["agreement"] == check["agreement"]
    assert lineage["answer_tokens"]["max_new_tokens"] > lineage["answer_tokens"]["longest"]


def test_exit_status_constant_is_distinct() -> None:
    assert EXIT_CHECK_FAILED not in (0, 1, 2)
