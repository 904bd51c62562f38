"""One row per figure, the suite's Markdown table of ratios, and a parser for it (pure)."""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass
from typing import Any

HEADER = (
    "part",
    "figure",
    "size",
    "Distill",
    "baseline",
    "baseline value",
    "ratio",
    "target",
    "met",
)


@dataclass(frozen=True)
class Row:
    """One measured figure, optionally against a baseline measured in the same run."""

    part: str
    figure: str
    size: str
    value: float
    unit: str = ""
    baseline: str = ""
    baseline_value: float = math.nan
    target: str = ""  # e.g. ">= 3000" (value) or "ratio >= 0.7"
    higher_is_better: bool = True

    @property
    def ratio(self) -> float:
        if math.isnan(self.baseline_value) or self.baseline_value == 0:
            return math.nan
        return self.value / self.baseline_value

    @property
    def met(self) -> bool | None:
        """Whether the target holds; None without a target or a measurement."""
        return target_met(self.target, self.value, self.ratio)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ratio": self.ratio, "met": self.met}


_TARGET = re.compile(r"^(ratio )?(>=|<=) ?([0-9.]+)$")


def target_met(target: str, value: float, ratio: float) -> bool | None:
    """Evaluate 'ratio >= 0.7', '>= 3000', '<= 0.5' against a value and its ratio."""
    if not target:
        return None
    match = _TARGET.match(target.strip())
    if match is None:
        raise ValueError(f"target {target!r}: expected '[ratio ]>= N' or '[ratio ]<= N'")
    subject = ratio if match.group(1) else value
    if math.isnan(subject):
        return None
    bound = float(match.group(3))
    return subject >= bound if match.group(2) == ">=" else subject <= bound


def fmt(value: float) -> str:
    """Three significant figures at most, thousands separated; n/a for NaN."""
    if math.isnan(value):
        return "n/a"
    magnitude = abs(value)
    if magnitude >= 100:
        return f"{value:,.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    if magnitude >= 0.1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def render(rows: list[Row]) -> str:
    """The table in Markdown."""
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    for r in rows:
        met = {True: "yes", False: "**no**", None: ""}[r.met]
        unit = f" {r.unit}" if r.unit else ""
        cells = (
            r.part,
            r.figure,
            r.size,
            fmt(r.value) + unit,
            r.baseline,
            fmt(r.baseline_value) + (unit if r.baseline else ""),
            "" if math.isnan(r.ratio) else f"{r.ratio:.3f}",
            r.target,
            met,
        )
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def parse(text: str) -> list[dict[str, str]]:
    """The suite's table back as dicts keyed by HEADER (from any text that contains it)."""
    head = "| " + " | ".join(HEADER) + " |"
    lines = text.splitlines()
    if head not in lines:
        raise ValueError("no suite table in the text")
    out = []
    for line in lines[lines.index(head) + 2 :]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != len(HEADER):
            raise ValueError(f"row with {len(cells)} cells, expected {len(HEADER)}: {line}")
        out.append(dict(zip(HEADER, cells, strict=True)))
    return out
