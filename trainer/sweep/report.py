"""Render sweep.json as a self-contained sweep.html: the data-size curve and one table per knob."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2

from trainer.evaluation import plots

_ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)


def render_sweep_report(document: dict[str, Any]) -> str:
    metric = document["metric"]
    curve = document["data_curve"]
    curve_plot = None
    if len(curve) >= 1:
        curve_plot = plots.line_plot(
            [p["percent"] for p in curve],
            [p[metric] for p in curve],
            xlabel="training data used (%)",
            ylabel=metric,
            title=f"{metric} against data size",
        )
    return _ENV.get_template("sweep.html.jinja").render(
        doc=document, metric=metric, curve_plot=curve_plot
    )
