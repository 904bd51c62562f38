"""The chart's copies of alerts and dashboards match deploy/, and the dashboards match their
builder: one source for compose and Kubernetes."""

from __future__ import annotations

import importlib.util
import json
import sys
from types import ModuleType

from tests.deploy.chart import CHART, ROOT

BUILDER = ROOT / "deploy/grafana/build_dashboards.py"
FIX = "run `python deploy/grafana/build_dashboards.py`"


def builder() -> ModuleType:
    spec = importlib.util.spec_from_file_location("build_dashboards", BUILDER)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    # dataclasses resolve string annotations through sys.modules.
    sys.modules.setdefault(spec.name, module)
    spec.loader.exec_module(module)
    return module


def test_chart_alerts_are_the_compose_alerts() -> None:
    source = (ROOT / "deploy/prometheus/alerts.yml").read_text()
    copy = (CHART / "files/alerts.yml").read_text()
    assert copy == source, "run `cp deploy/prometheus/alerts.yml helm/distill/files/alerts.yml`"


def test_dashboard_files_are_what_the_builder_writes() -> None:
    expected = builder().render_all()
    for folder in (ROOT / "deploy/grafana/dashboards", CHART / "files/dashboards"):
        found = {p.name: p.read_text() for p in folder.glob("*.json")}
        assert set(found) == set(expected), f"{folder}: {FIX}"
        for name, text in expected.items():
            assert found[name] == text, f"{folder / name} is stale: {FIX}"


def test_dashboards_are_well_formed() -> None:
    for name, text in builder().render_all().items():
        board = json.loads(text)
        assert board["uid"] == name.removesuffix(".json")
        ids = [p["id"] for p in board["panels"]]
        assert len(ids) == len(set(ids)), f"{name}: duplicate panel ids"
        variables = {v["name"] for v in board["templating"]["list"]}
        for panel in board["panels"]:
            assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24
            if panel["type"] == "row":
                continue
            assert panel["targets"], f"{name}: {panel['title']} has no query"
            for target in panel["targets"]:
                # Every dashboard variable a query uses is defined on the dashboard.
                for var in ("route", "variant", "teacher_prompt_per_1k"):
                    if f"${var}" in target["expr"]:
                        assert var in variables, f"{name}: ${var} used but not defined"
