"""`bench/run --quick` (cheapest parts) end to end: the table prints, parses, ratios add up."""

from __future__ import annotations

import math
import os
import subprocess
from pathlib import Path

import orjson
import pytest

from bench.suite.doc import BEGIN, END, splice
from bench.suite.table import HEADER, Row, parse, render, target_met

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("target", "value", "ratio", "expected"),
    [
        (">= 3000", 3100.0, math.nan, True),
        (">= 3000", 2900.0, math.nan, False),
        ("<= 0.5", 0.6, math.nan, False),
        ("ratio >= 0.7", 1.0, 0.69, False),
        ("ratio >= 0.97", 1.0, 0.98, True),
        ("ratio >= 40", 1.0, math.nan, None),
        ("", 1.0, 1.0, None),
    ],
)
def test_target_met(target: str, value: float, ratio: float, expected: bool | None) -> None:
    assert target_met(target, value, ratio) is expected


def test_bad_target_is_refused() -> None:
    with pytest.raises(ValueError, match="about 3000"):
        target_met("about 3000", 1.0, 1.0)


def test_render_then_parse_round_trips() -> None:
    rows = [
        Row(
            "gateway", "req/s, JSON", "c=32", 3500.0, "req/s", "LiteLLM proxy", 70.0, "ratio >= 40"
        ),
        Row("log store", "writer ingest", "100,000 rows", 80000.0, "rows/s", target=">= 50000"),
    ]
    parsed = parse("noise before\n" + render(rows) + "\nafter")
    assert [p["ratio"] for p in parsed] == ["50.000", ""]
    assert [p["met"] for p in parsed] == ["yes", "yes"]
    assert parsed[0]["Distill"] == "3,500 req/s"


def test_splice_replaces_only_the_marked_section() -> None:
    text = f"# Perf\n\nprose\n\n{BEGIN}\nold table\n{END}\n\nmore prose\n"
    out = splice(text, f"{BEGIN}\nnew\n{END}")
    assert "old table" not in out and "new" in out
    assert out.startswith("# Perf\n\nprose") and out.endswith("more prose\n")


@pytest.mark.slow
def test_quick_suite_store_and_training_parts(tmp_path: Path) -> None:
    out = tmp_path / "rows.json"
    proc = subprocess.run(
        [str(REPO / "bench" / "run"), "--quick", "--parts", "store,training", "--json", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    table = parse(proc.stdout)
    assert {r["part"] for r in table} == {"log store", "training"}
    assert all(set(r) == set(HEADER) for r in table)
    data = orjson.loads(out.read_bytes())
    rows = data["rows"]
    assert len(rows) == len(table)
    for row in rows:
        assert row["value"] is not None and row["value"] > 0, row
    training = next(r for r in rows if r["part"] == "training")
    assert training["baseline_value"] > 0
    assert training["ratio"] == pytest.approx(training["value"] / training["baseline_value"])
    assert not (REPO / "docs" / "performance.md.tmp").exists()


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs to pin")
def test_gateway_part_gives_the_cpus_back(monkeypatch: pytest.MonkeyPatch) -> None:
    """The gateway part pins the suite to its load CPU; the parts after it (serving pins vLLM
    and the gateway to separate cores) must find the whole machine again."""
    from bench.suite import gateway_part

    before = os.sched_getaffinity(0)

    def pinned_run(plan: object) -> list[Row]:
        os.sched_setaffinity(0, {min(before)})
        raise RuntimeError("a part failing half-way")

    monkeypatch.setattr(gateway_part, "_run_gateway", pinned_run)
    with pytest.raises(RuntimeError):
        gateway_part.run_gateway(gateway_part.GatewayPlan())
    assert os.sched_getaffinity(0) == before
