"""The sweep's pure core: parsing, run planning, subsampling, best run and marginal gains."""

from __future__ import annotations

from typing import Any

import pytest

from trainer.sweep import plan as p

BASE: dict[str, Any] = {
    "rank": 16,
    "alpha": 32,
    "learning_rate": 2e-3,
    "epochs": 3.0,
    "max_steps": None,
    "target_modules": ["q_proj", "v_proj"],
}


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("lr=1e-3,3e-3", ("learning_rate", ["1e-3", "3e-3"])),
        ("rank=4, 8 ,16", ("rank", ["4", "8", "16"])),
        ("target_modules=q_proj+v_proj,o_proj", ("target_modules", ["q_proj+v_proj", "o_proj"])),
        ("epochs=2", ("epochs", ["2"])),
    ],
)
def test_parse_param(spec: str, expected: tuple[str, list[str]]) -> None:
    assert p.parse_param(spec) == expected


@pytest.mark.parametrize("spec", ["lr", "lr=", "=1,2", "lr=,"])
def test_parse_param_rejects(spec: str) -> None:
    with pytest.raises(ValueError, match="NAME=V1,V2"):
        p.parse_param(spec)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [("10,25,50", [10, 25, 50]), ("100,10,10", [10, 100]), ("1", [1])],
)
def test_parse_data_sizes(spec: str, expected: list[int]) -> None:
    assert p.parse_data_sizes(spec) == expected


@pytest.mark.parametrize("spec", ["0,50", "150", "ten", ""])
def test_parse_data_sizes_rejects(spec: str) -> None:
    with pytest.raises(ValueError, match="--data-sizes"):
        p.parse_data_sizes(spec)


@pytest.mark.parametrize(
    ("name", "raw", "expected"),
    [
        ("learning_rate", "1e-3", 1e-3),
        ("rank", "8", 8),
        ("max_steps", "100", 100),
        ("epochs", "2", 2.0),
        ("target_modules", "q_proj+o_proj", ["q_proj", "o_proj"]),
    ],
)
def test_coerce_value(name: str, raw: str, expected: Any) -> None:
    value = p.coerce_value(name, raw, BASE)
    assert value == expected and type(value) is type(expected)


def test_plan_one_parameter_at_a_time_with_shared_baseline() -> None:
    runs = p.plan_runs(
        BASE,
        "/models/tiny",
        [("learning_rate", ["1e-3", "2e-3"]), ("rank", ["8"])],
        [25, 100],
    )
    assert [r.name for r in runs] == [
        "baseline",
        "learning_rate=0.001",
        "alpha=16, rank=8",  # alpha follows rank: alpha/r stays 2
        "data=25%",
    ]
    baseline = runs[0]
    assert baseline.overrides == {} and baseline.data_percent == 100
    # lr 2e-3 is the base value and 100 % is all the data: both are the baseline run
    assert baseline.groups == [
        ("baseline", "baseline"),
        ("learning_rate", "0.002"),
        ("rank", "16 (base)"),
        ("data_size", "100"),
    ]
    assert runs[2].overrides == {"rank": 8, "alpha": 16}
    assert runs[3].overrides == {} and runs[3].data_percent == 25


def test_plan_base_model_and_list_params() -> None:
    runs = p.plan_runs(
        BASE,
        "/models/tiny",
        [("base_model", ["/models/other"]), ("target_modules", ["q_proj+k_proj"])],
    )
    assert [(r.name, r.base_model) for r in runs] == [
        ("baseline", "/models/tiny"),
        ("base_model=other", "/models/other"),
        ("target_modules=q_proj+k_proj", "/models/tiny"),
    ]
    assert runs[2].overrides == {"target_modules": ["q_proj", "k_proj"]}


@pytest.mark.parametrize(
    ("name", "raw", "message"),
    [("learning_rate", "fast", "'fast' is not a number"), ("rank", "8.5", "whole number")],
)
def test_coerce_value_rejects(name: str, raw: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        p.coerce_value(name, raw, BASE)


def test_plan_rejects_unknown_parameter() -> None:
    with pytest.raises(ValueError, match="--param colour: not a training setting"):
        p.plan_runs(BASE, "/m", [("colour", ["red"])])


def test_plan_without_100_percent_keeps_baseline_on_the_curve() -> None:
    runs = p.plan_runs(BASE, "/m", [], [10, 50])
    assert [r.data_percent for r in runs] == [100, 10, 50]
    assert ("data_size", "100 (base)") in runs[0].groups


@pytest.mark.parametrize("n", [1, 7, 40, 1000])
def test_subsamples_are_deterministic_nested_and_sized(n: int) -> None:
    previous: set[int] = set()
    for percent in (10, 25, 50, 75, 100):
        keep = p.subsample_indices(n, percent, seed=3)
        assert keep == p.subsample_indices(n, percent, seed=3)
        assert keep == sorted(keep)
        assert len(keep) == max(1, -(-n * percent // 100))
        assert previous <= set(keep)
        previous = set(keep)
    assert previous == set(range(n))
    assert p.subsample_indices(0, 50) == []


def test_subsample_depends_on_seed() -> None:
    assert p.subsample_indices(100, 10, seed=0) != p.subsample_indices(100, 10, seed=1)


@pytest.mark.parametrize(
    ("results", "expected"),
    [
        ([{"metrics": {"agreement": 0.5}}, {"metrics": {"agreement": 0.9}}], 1),
        # a tie goes to the run that trained faster
        (
            [
                {"metrics": {"agreement": 0.9}, "train_seconds": 30.0},
                {"metrics": {"agreement": 0.9}, "train_seconds": 10.0},
            ],
            1,
        ),
        # failed runs have no metrics and never win
        ([{"error": "boom"}, {"metrics": {"agreement": 0.1}}], 1),
        ([{"error": "boom"}], None),
    ],
)
def test_best_run(results: list[dict[str, Any]], expected: int | None) -> None:
    assert p.best_run(results, "agreement") == expected


def test_marginal_gains_hand_computed() -> None:
    gains = p.marginal_gains([(50, 0.9), (10, 0.4), (100, 0.95)])
    assert [(g["from_percent"], g["to_percent"]) for g in gains] == [(10, 50), (50, 100)]
    assert gains[0]["gain"] == pytest.approx(0.5)
    assert gains[0]["gain_per_10pct"] == pytest.approx(0.125)
    assert gains[1]["gain_per_10pct"] == pytest.approx(0.01)


def test_group_tables_sorts_numeric_values() -> None:
    runs = p.plan_runs(BASE, "/m", [("learning_rate", ["1e-2", "1e-3"])])
    results = [{"metrics": {"agreement": a}} for a in (0.8, 0.7, 0.6)]
    tables = p.group_tables(runs, results, "agreement")
    assert [(r["value"], r["agreement"]) for r in tables["learning_rate"]] == [
        ("0.001", 0.6),
        ("0.002 (base)", 0.8),
        ("0.01", 0.7),
    ]
