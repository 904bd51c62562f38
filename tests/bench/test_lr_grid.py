"""bench/lr_grid.py's pure part: a grid row from an adapter's distill.json."""

from __future__ import annotations

from bench.lr_grid import lineage_row


def test_lineage_row_reads_the_check_metrics_and_search() -> None:
    lineage = {
        "steps": 63,
        "config": {"learning_rate": 0.002, "preset": "pretrained"},
        "metrics": {
            "agreement": 0.98,
            "majority_baseline": 0.29,
            "final_loss": 0.01,
            "eval_loss": 0.02,
            "train_seconds": 120.0,
            "train_tokens": 40000.0,
            "tokens_per_second": 333.3,
            "threads": 2.0,
            "peak_rss_mb": 2900.0,
        },
        "check": {"n": 55, "first_loss": 1.9},
        "search": {"chosen": 0.002},
    }
    row = lineage_row(lineage)
    assert row["learning_rate"] == 0.002 and row["steps"] == 63
    assert (row["agreement"], row["check_n"], row["first_loss"]) == (0.98, 55, 1.9)
    assert (row["tokens_per_s"], row["threads"], row["peak_rss_mb"]) == (333.3, 2.0, 2900.0)
    assert row["search"] == {"chosen": 0.002}


def test_lineage_row_without_a_check_leaves_its_fields_empty() -> None:
    row = lineage_row({"steps": 10, "config": {}, "metrics": {}, "check": None})
    assert row["agreement"] is None and row["check_n"] is None and "search" not in row
