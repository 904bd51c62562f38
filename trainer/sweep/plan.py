"""The pure core of a sweep: which runs to train, how to subsample, and which run won."""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

# Short names users type on the command line -> TrainConfig fields.
ALIASES: dict[str, str] = {
    "lr": "learning_rate",
    "r": "rank",
    "modules": "target_modules",
    "steps": "max_steps",
}
DATA_SIZE = "data_size"
BASE_MODEL = "base_model"


@dataclass(frozen=True)
class RunSpec:
    """One training run: settings changed from the base config, data share and base model."""

    name: str
    overrides: dict[str, Any]
    data_percent: int
    base_model: str
    # (parameter, value label) of every table this run is a row of; the baseline is in many.
    groups: list[tuple[str, str]] = field(default_factory=list)


def parse_param(spec: str) -> tuple[str, list[str]]:
    """`lr=1e-3,3e-3` -> ("learning_rate", ["1e-3", "3e-3"]); list values join with `+`."""
    name, sep, values = spec.partition("=")
    name = name.strip()
    items = [v.strip() for v in values.split(",") if v.strip()]
    if not sep or not name or not items:
        raise ValueError(
            f"--param {spec!r}: write NAME=V1,V2,... e.g. lr=1e-3,3e-3 or "
            "target_modules=q_proj+v_proj,q_proj+k_proj+v_proj+o_proj"
        )
    return ALIASES.get(name, name), items


def parse_data_sizes(spec: str) -> list[int]:
    """`10,25,50` -> [10, 25, 50]: percentages of train.jsonl, each in 1..100."""
    try:
        sizes = [int(v) for v in spec.split(",") if v.strip()]
    except ValueError:
        raise ValueError(
            f"--data-sizes {spec!r}: write whole percentages like 10,25,50,100"
        ) from None
    bad = [s for s in sizes if not 1 <= s <= 100]
    if bad or not sizes:
        raise ValueError(f"--data-sizes {spec!r}: each size must be a percentage in 1..100")
    return sorted(set(sizes))


def coerce_value(name: str, raw: str, base: Mapping[str, Any]) -> Any:
    """A command-line value as the type of the base config's field (lists split on `+`)."""
    current = base.get(name)
    if isinstance(current, list):
        return [v for v in raw.split("+") if v]
    if isinstance(current, bool):
        return raw.lower() in ("1", "true", "yes")
    numeric = isinstance(current, int | float) or name in ("max_steps",)
    if not numeric:
        return raw
    try:
        as_float = float(raw)
    except ValueError:
        raise ValueError(f"--param {name}={raw}: {raw!r} is not a number") from None
    if isinstance(current, float):
        return as_float
    if not as_float.is_integer():
        raise ValueError(f"--param {name}={raw}: must be a whole number")
    return int(as_float)


def _label(value: Any) -> str:
    if isinstance(value, list):
        return "+".join(str(v) for v in value)
    return f"{value:g}" if isinstance(value, float) else str(value)


def _run_overrides(name: str, value: Any, base: Mapping[str, Any]) -> dict[str, Any]:
    if name == "rank":
        # Keep alpha/r fixed so a rank change does not also change the update's scale.
        ratio = base["alpha"] / base["rank"]
        return {"rank": value, "alpha": max(1, round(ratio * value))}
    return {name: value}


def plan_runs(
    base_config: Mapping[str, Any],
    base_model: str,
    params: Sequence[tuple[str, list[str]]] = (),
    data_sizes: Sequence[int] = (),
) -> list[RunSpec]:
    """Unique runs for the sweep: each parameter value on its own, then each data size.

    Identical runs (e.g. the baseline at 100 % data and a parameter's base value) are trained
    once and appear in every table they belong to. Always includes the baseline.
    """
    known = set(base_config) | {BASE_MODEL}
    runs: dict[tuple[str, int, str], RunSpec] = {}

    def add(overrides: dict[str, Any], percent: int, model: str, group: tuple[str, str]) -> None:
        # Overrides equal to the base config are no change at all.
        effective = {k: v for k, v in overrides.items() if base_config.get(k) != v}
        key = (repr(sorted(effective.items())), percent, model)
        if key not in runs:
            parts = [f"{k}={_label(v)}" for k, v in sorted(effective.items())]
            if model != base_model:
                parts.append(f"base_model={model.rstrip('/').rsplit('/', 1)[-1]}")
            if percent != 100:
                parts.append(f"data={percent}%")
            runs[key] = RunSpec(
                name=", ".join(parts) or "baseline",
                overrides=effective,
                data_percent=percent,
                base_model=model,
            )
        runs[key].groups.append(group)

    add({}, 100, base_model, ("baseline", "baseline"))
    for name, values in params:
        if name not in known:
            raise ValueError(
                f"--param {name}: not a training setting; choose from "
                f"{', '.join(sorted(known | set(ALIASES)))}"
            )
        baseline = runs[next(iter(runs))]
        in_table = len([g for g in baseline.groups if g[0] == name])
        for raw in values:
            if name == BASE_MODEL:
                add({}, 100, raw, (name, raw))
                continue
            value = coerce_value(name, raw, base_config)
            add(_run_overrides(name, value, base_config), 100, base_model, (name, _label(value)))
        if len([g for g in baseline.groups if g[0] == name]) == in_table:
            # The base value was not among those asked for: show it in the table as reference.
            base_value = base_model if name == BASE_MODEL else base_config[name]
            baseline.groups.append((name, f"{_label(base_value)} (base)"))
    for percent in data_sizes:
        add({}, percent, base_model, (DATA_SIZE, str(percent)))
    if data_sizes and 100 not in data_sizes:
        runs[next(iter(runs))].groups.append((DATA_SIZE, "100 (base)"))
    return list(runs.values())


def subsample_indices(n: int, percent: int, seed: int = 0) -> list[int]:
    """Indices of a deterministic `percent` share of n rows (at least one), in file order.

    One seeded permutation serves every size, so the 10 % rows are inside the 25 % rows: the
    curve then measures more data, not different data.
    """
    order = list(range(n))
    random.Random(seed).shuffle(order)
    keep = max(1, math.ceil(n * percent / 100)) if n else 0
    return sorted(order[:keep])


def best_run(results: Sequence[Mapping[str, Any]], metric: str) -> int | None:
    """Index of the run with the highest `metric`; ties go to the fewer training seconds."""
    scored = [
        (float(r["metrics"][metric]), -float(r.get("train_seconds") or 0.0), -i)
        for i, r in enumerate(results)
        if isinstance(r.get("metrics", {}).get(metric), int | float)
    ]
    return -max(scored)[2] if scored else None


def marginal_gains(points: Sequence[tuple[int, float]]) -> list[dict[str, float]]:
    """Metric gained per 10 extra points of data between consecutive data sizes."""
    ordered = sorted(points)
    return [
        {
            "from_percent": a,
            "to_percent": b,
            "gain": mb - ma,
            "gain_per_10pct": (mb - ma) * 10 / (b - a),
        }
        for (a, ma), (b, mb) in itertools.pairwise(ordered)
    ]


def group_tables(
    runs: Sequence[RunSpec], results: Sequence[Mapping[str, Any]], metric: str
) -> dict[str, list[dict[str, Any]]]:
    """One table per swept parameter: (value, run index, metric) rows, numeric values ascending."""
    tables: dict[str, list[dict[str, Any]]] = {}
    for index, (run, result) in enumerate(zip(runs, results, strict=True)):
        value = result.get("metrics", {}).get(metric)
        for param, label in run.groups:
            tables.setdefault(param, []).append(
                {"value": label, "run": index, "name": run.name, metric: value}
            )
    for rows in tables.values():
        values = [row["value"].removesuffix(" (base)") for row in rows]
        if all(_is_number(v) for v in values):
            rows.sort(key=lambda row: float(row["value"].removesuffix(" (base)")))
    return tables


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
