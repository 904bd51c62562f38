"""`promtool` on the shipped Prometheus config and alert rules, and unit tests of the alerts."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.deploy.chart import ROOT
from tests.deploy.prometheus import require_binary

pytestmark = pytest.mark.prometheus

PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"


def promtool(*args: str) -> str:
    binary = require_binary("promtool")
    done = subprocess.run([binary, *args], capture_output=True, text=True, timeout=60)
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"promtool {' '.join(args)} failed:\n{output}"
    return output


def test_check_rules() -> None:
    out = promtool("check", "rules", str(PROMETHEUS_DIR / "alerts.yml"))
    assert "SUCCESS: 16 rules found" in out


def test_check_rules_of_the_chart_copy() -> None:
    promtool("check", "rules", str(ROOT / "helm/distill/files/alerts.yml"))


@pytest.mark.parametrize("name", ["prometheus.yml", "prometheus.fleet.yml"])
def test_check_config(name: str) -> None:
    out = promtool("check", "config", str(PROMETHEUS_DIR / name))
    assert "is valid prometheus config file syntax" in out


def test_check_rejects_a_broken_rule(tmp_path: Path) -> None:
    """The check above can fail: a rule with bad PromQL is refused."""
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "groups:\n- name: g\n  rules:\n  - alert: A\n"
        "    expr: rate(distill_requests_total[5m) > 0\n"
    )
    with pytest.raises(AssertionError, match="failed"):
        promtool("check", "rules", str(broken))


def test_alerts_fire_on_synthetic_series() -> None:
    """Each alert fires on series shaped like the gateway's and stays quiet on healthy ones."""
    out = promtool("test", "rules", str(Path(__file__).with_name("alerts_test.yml")))
    assert "SUCCESS" in out
