"""Matplotlib figures for the eval report, returned as embeddable base64 PNG data URIs."""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")  # no display here, and the report must not depend on one

import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator


def data_uri(fig: Figure) -> str:
    """The figure as a `data:image/png;base64,...` URI; the figure is closed afterwards."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def confusion_matrix_plot(
    rows: Sequence[str], columns: Sequence[str], counts: list[list[int]]
) -> str:
    fig, ax = plt.subplots(figsize=(1.2 + 0.9 * len(columns), 1.0 + 0.8 * len(rows)))
    image = ax.imshow(counts, cmap="Blues")
    ax.set_xticks(range(len(columns)), labels=list(columns), rotation=30, ha="right")
    ax.set_yticks(range(len(rows)), labels=list(rows))
    ax.set_xlabel("student")
    ax.set_ylabel("teacher")
    peak = max((max(r) for r in counts), default=0)
    for i, row in enumerate(counts):
        for j, value in enumerate(row):
            color = "white" if peak and value > peak / 2 else "black"
            ax.text(j, i, str(value), ha="center", va="center", color=color)
    fig.colorbar(image, ax=ax, fraction=0.046)
    ax.set_title("Confusion matrix")
    return data_uri(fig)


def _legend_outside(ax: Axes) -> None:
    """The legend right of the plot, where it cannot cover a bar."""
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, frameon=False)


def length_histogram(student: Sequence[int], teacher: Sequence[int]) -> str:
    fig, ax = plt.subplots(figsize=(6, 3.2))
    top = max([*student, *teacher, 1])
    step = max(1, (top + 1) // 30)
    # Whole-number bins from 0: a length is never negative, so neither is the axis.
    bins = list(range(0, top + step + 1, step))
    ax.hist(teacher, bins=bins, alpha=0.6, label="teacher", color="tab:blue")
    ax.hist(student, bins=bins, alpha=0.6, label="student", color="tab:orange")
    ax.set_xlim(0, bins[-1])
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("answer length (words; a bar covers [n, n + width))")
    ax.set_ylabel("examples")
    _legend_outside(ax)
    ax.set_title("Answer lengths")
    return data_uri(fig)


def against_bars(
    values: Mapping[str, float], *, baseline: float | None, threshold: float | None
) -> str:
    """The headline scores as bars, with the majority-class baseline and the rollout gate's
    threshold drawn across them."""
    fig, ax = plt.subplots(figsize=(6, 0.9 + 0.5 * max(1, len(values))))
    names = list(values)
    ax.barh(names, [values[n] for n in names], color="tab:blue", height=0.55)
    for i, name in enumerate(names):
        ax.text(min(values[name] + 0.01, 0.9), i, f"{values[name]:.3f}", va="center")
    if baseline is not None:
        ax.axvline(
            baseline,
            color="0.35",
            linestyle=":",
            linewidth=2,
            label=f"majority-class baseline {baseline:.3f}",
        )
    if threshold is not None:
        ax.axvline(
            threshold,
            color="tab:red",
            linestyle="--",
            linewidth=2,
            label=f"rollout gate {threshold:.2f}",
        )
    ax.set_xlim(0, 1.0)
    ax.invert_yaxis()
    if baseline is not None or threshold is not None:
        _legend_outside(ax)
    ax.set_title("Scores against the baseline and the gate")
    return data_uri(fig)


def grouped_bars(groups: Sequence[str], series: Mapping[str, Sequence[float]], title: str) -> str:
    """One group of bars per class (or field), one bar per score."""
    fig, ax = plt.subplots(figsize=(max(4.0, 1.4 * len(groups) + 1.5), 3.2))
    width = 0.8 / max(1, len(series))
    for k, (name, values) in enumerate(series.items()):
        ax.bar([i + k * width for i in range(len(groups))], values, width, label=name)
    ax.set_xticks([i + width * (len(series) - 1) / 2 for i in range(len(groups))], list(groups))
    ax.set_ylim(0, 1.05)
    _legend_outside(ax)
    ax.set_title(title)
    return data_uri(fig)


def line_plot(
    xs: Sequence[float], ys: Sequence[float], *, xlabel: str, ylabel: str, title: str
) -> str:
    fig, ax = plt.subplots(figsize=(6, 3.4))
    ax.plot(list(xs), list(ys), marker="o")
    for x, y in zip(xs, ys, strict=True):
        ax.annotate(f"{y:.3f}", (x, y), textcoords="offset points", xytext=(0, 6), ha="center")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, 1.05)
    ax.grid(alpha=0.3)
    ax.set_title(title)
    return data_uri(fig)
