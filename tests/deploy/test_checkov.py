"""checkov (from the package index) on the rendered chart: no failed check, and every check the
chart skips carries its reason (a `checkov.io/skipN` annotation on the object)."""

from __future__ import annotations

import copy
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.chart import ROOT, one, render

CHECKOV = ROOT / ".tools/lint/bin/checkov"  # scripts/setup.sh installs it there
CHECKOV_FLAGS = ("--skip-download", "--compact", "-o", "json")  # offline: no policy download

FLEET_EVERYTHING: dict[str, Any] = {
    "gateway": {"autoscaling": {"enabled": True}},
    "storage": {"logs": {"accessModes": ["ReadWriteMany"]}},
    "fleet": {"enabled": True, "postgres": {"internal": {"enabled": True}}},
    "networkPolicy": {"enabled": True},
    "ingress": {"enabled": True, "hosts": ["distill.example.com"]},
    "httpRoute": {"enabled": True, "parentRefs": [{"name": "public"}]},
}
FLEET_EXTERNAL: dict[str, Any] = {
    "gateway": {"replicas": 3},
    "storage": {"logs": {"accessModes": ["ReadWriteMany"]}},
    "fleet": {"enabled": True, "postgres": {"existingSecret": "pg-dsn"}},
}
VALUE_SETS = {
    "defaults": None,
    "fleet-everything": FLEET_EVERYTHING,
    "fleet-external": FLEET_EXTERNAL,
}


def checkov(directory: Path) -> dict[str, Any]:
    if not CHECKOV.exists():
        pytest.fail(f"{CHECKOV} is missing: run scripts/setup.sh (it installs checkov there)")
    done = subprocess.run(
        [str(CHECKOV), "-d", str(directory), "--framework", "kubernetes", *CHECKOV_FLAGS],
        capture_output=True,
        text=True,
        timeout=300,
    )
    report = json.loads(done.stdout)
    assert isinstance(report, dict) and report["check_type"] == "kubernetes", done.stderr[-2000:]
    return report


def test_the_rendered_chart_passes_checkov_or_says_why(tmp_path: Path) -> None:
    for name, values in VALUE_SETS.items():
        (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump_all(render(values)))
    # The control: the gateway without its skip annotations must fail exactly those checks.
    bare = copy.deepcopy(one(render(), "Deployment", "-gateway"))
    bare["metadata"]["name"] = "bare"
    skips = [v.split("=")[0] for v in bare["metadata"].pop("annotations").values()]
    # CKV2 (graph) checks match pods by labels, which the copy shares with the gateway.
    skipped_here = sorted(s for s in skips if not s.startswith("CKV2_"))
    (tmp_path / "control.yaml").write_text(yaml.safe_dump(bare))

    report = checkov(tmp_path)
    results = report["results"]
    failed = [(r["check_id"], r["resource"]) for r in results.get("failed_checks", [])]
    control = sorted(c for c, resource in failed if resource.endswith(".bare"))
    assert control == skipped_here, "checkov does not see the chart's skip annotations"
    unexplained = [f for f in failed if not f[1].endswith(".bare")]
    assert not unexplained, f"checkov failures to fix or to skip with a reason: {unexplained}"
    skipped = results.get("skipped_checks", [])
    assert skipped, "the chart's skips were not read"
    for r in skipped:
        reason = r["check_result"].get("suppress_comment") or ""
        assert len(reason) > 20 and reason != "No comment provided", (r["check_id"], reason)
    assert report["summary"]["passed"] >= 500
