"""`distill demo` end to end on the session's real vLLM: its outputs are checked, not its words."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import psutil
import pytest
from click.testing import CliRunner

from gateway.cli import main as distill
from gateway.store.db import connect

pytestmark = [pytest.mark.vllm, pytest.mark.slow]


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_demo_rolls_back_the_weak_adapter_and_promotes_the_good_one(
    tmp_path: Path, vllm_server: Any, tiny_model_dir: Path
) -> None:
    work = tmp_path / "demo"
    result = CliRunner().invoke(
        distill,
        [
            "demo",
            "--workdir",
            str(work),
            "--vllm-url",
            vllm_server.base_url,
            "--base-model",
            str(tiny_model_dir),
            "--requests",
            "300",
            "--weak-steps",
            "30",
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    for stage in range(1, 6):
        assert f"Stage {stage}/5" in result.output
    assert "wall time" in result.output and "peak memory" in result.output
    summary = json.loads((work / "summary.json").read_text())
    good, weak = sorted(summary["rollouts"], key=lambda name: "weak" in name)

    # Every process the demo started is gone (vLLM was given, so it is not among them).
    assert set(summary["processes"]) == {"teacher", "gateway"}
    assert all(gone(pid) for pid in summary["processes"].values())

    # The store holds the traffic, the shadow pairs, the feedback and the rollouts.
    traffic = summary["traffic"]
    assert traffic["answered"] == 300 - 6 and traffic["streamed"] > 30
    with connect(work / "distill.duckdb", read_only=True) as conn:
        kinds = dict(conn.execute("SELECT kind, count(*) FROM requests GROUP BY kind").fetchall())
        feedback = conn.execute("SELECT count(*) FROM feedback").fetchone()
        rollouts = dict(conn.execute("SELECT adapter, state FROM rollouts").fetchall())
        registry = dict(conn.execute("SELECT name, state FROM adapters").fetchall())
        rollback = conn.execute(
            "SELECT d.reason FROM rollout_decisions d JOIN rollouts r ON d.rollout_id = r.id "
            "WHERE r.adapter = ? AND d.decision = 'rollback'",
            [weak],
        ).fetchall()
        promoted_steps = conn.execute(
            "SELECT count(*) FROM rollout_decisions d JOIN rollouts r ON d.rollout_id = r.id "
            "WHERE r.adapter = ? AND d.decision = 'advance'",
            [good],
        ).fetchone()
    assert kinds["primary"] >= traffic["answered"] and kinds["shadow"] >= 25
    assert feedback is not None and feedback[0] == traffic["feedback"] > 0
    assert rollouts == {weak: "rolled_back", good: "promoted"}
    assert registry == {weak: "candidate", good: "stable"}
    assert len(rollback) == 1 and "agreement" in rollback[0][0]
    assert promoted_steps is not None and promoted_steps[0] == 4  # shadow → 5, 25, 50, 100 %

    # The dataset card counts what the filters removed; the eval report has its plots.
    card = json.loads((work / "dataset" / "dataset.json").read_text())
    assert card["rows_in"] == traffic["answered"]
    assert card["filters"]["negative_feedback"]["removed"] > 0
    assert card["split"]["train"] + card["split"]["eval"] <= card["rows_in"]
    report = (work / "eval" / "good" / "report.html").read_text()
    assert report.count("data:image/png;base64") >= 2
    assert summary["eval_good"]["accuracy"] >= 0.95 > summary["eval_weak"]["accuracy"]

    # At the end the good adapter had the whole route: the gauge, and new users answered by it.
    assert summary["route_weight"][good] == 1.0
    check = summary["final_check"]
    assert check["on_student"] == check["requests"] and check["correct"] >= check["requests"] - 1
    assert summary["cost_per_1k_usd"]["teacher"] > 10 * summary["cost_per_1k_usd"][good]
