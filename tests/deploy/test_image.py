"""The gateway image, statically: the Dockerfile is linted (hadolint), its version agrees with
the package, chart and compose, and the publish script's tags are checked by a dry run (no
registry here). test_image_build.py builds and runs it for real (buildah, a Debian base)."""

from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml

from tests.deploy.chart import CHART, ROOT

DOCKERFILE = ROOT / "deploy/Dockerfile.gateway"
HADOLINT = ROOT / ".tools/lint/bin/hadolint"  # scripts/setup.sh installs it there
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


def hadolint(path: Path) -> subprocess.CompletedProcess[str]:
    if not HADOLINT.exists():
        pytest.fail(f"{HADOLINT} is missing: run scripts/setup.sh (it installs hadolint there)")
    return subprocess.run(
        [str(HADOLINT), "--no-color", str(path)], capture_output=True, text=True, timeout=60
    )


def test_the_dockerfile_passes_hadolint(tmp_path: Path) -> None:
    done = hadolint(DOCKERFILE)
    assert done.returncode == 0, done.stdout + done.stderr
    # The control: a classic mistake in a copy is reported.
    bad = tmp_path / "Dockerfile"
    bad.write_text(DOCKERFILE.read_text() + "RUN cd /tmp && apt-get install curl\n")
    found = hadolint(bad)
    assert found.returncode != 0 and "DL3003" in found.stdout


def test_one_version_names_the_image_everywhere() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    compose = yaml.safe_load((ROOT / "deploy/compose.yaml").read_text())
    assert chart["appVersion"] == VERSION
    assert values["gateway"]["image"]["repository"] == "ghcr.io/distill/gateway"
    assert values["gateway"]["image"]["tag"] == ""  # the chart's appVersion
    assert compose["services"]["gateway"]["image"] == f"ghcr.io/distill/gateway:{VERSION}"
    arg = re.search(r"^ARG VERSION=(\S+)$", DOCKERFILE.read_text(), re.M)
    assert arg and arg[1] == VERSION


def test_publish_dry_run_builds_the_release_tags() -> None:
    done = subprocess.run(
        ["sh", str(ROOT / "deploy/image/publish.sh"), "--dry-run", "--push"],
        capture_output=True,
        text=True,
        timeout=30,
        env={"PATH": "/usr/bin:/bin", "REGISTRY": "registry.example/distill"},
    )
    assert done.returncode == 0, done.stderr
    builds = [line for line in done.stdout.splitlines() if " build " in line or " bud " in line]
    assert len(builds) == 2
    assert f"-t registry.example/distill/gateway:{VERSION} " in builds[0]
    assert "EXTRAS=[train]" in builds[1]
    pushes = [line.split()[-1] for line in done.stdout.splitlines() if " push " in line]
    assert f"registry.example/distill/gateway:{VERSION}" in pushes
    assert not any(p.endswith(":latest") for p in pushes)
