"""The gateway image, built and run for real: deploy/image/build-local.sh builds
deploy/Dockerfile.gateway with buildah (no daemon, no registry) on a base made from Debian's
packages; the image's own entrypoint then serves a chat completion through to the demo teacher
(on the host's loopback) and logs it in a store on a mounted /data, as uid 10001.

Skipped only where the engine is not installed (`scripts/setup.sh` as root installs it);
anything else that stops the build is a failure."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import psutil
import pytest
import yaml

from gateway.store.db import connect
from tests.deploy.chart import ROOT
from tests.fixtures.servers import TeacherServer, free_port, gateway_config_dict

SCRIPT = ROOT / "deploy/image/build-local.sh"
ENGINE = ("buildah", "mmdebstrap")
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        any(shutil.which(tool) is None for tool in ENGINE),
        reason="needs buildah and mmdebstrap (Debian packages; bash scripts/setup.sh as root)",
    ),
]


def buildah(*args: str, timeout: float = 60) -> str:
    done = subprocess.run(["buildah", *args], capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"buildah {' '.join(args)}: {done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def image() -> str:
    """Build (a cached Debian base makes this about 40 s; a cold one about 2 min)."""
    done = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-4000:]
    return done.stdout.strip().splitlines()[-1]


@pytest.fixture
def container(image: str) -> Iterator[str]:
    name = buildah("from", "--quiet", image).strip()
    yield name
    buildah("rm", name)


def image_config(image: str) -> dict[str, Any]:
    config: dict[str, Any] = json.loads(buildah("inspect", "--type", "image", image))["Docker"][
        "config"
    ]
    return config


def test_the_built_image_is_configured_as_the_dockerfile_says(image: str) -> None:
    assert image == f"localhost/distill/gateway:{VERSION}-local"  # never a release tag
    config = image_config(image)
    assert config["User"] == "10001:10001"
    assert config["Entrypoint"] == ["distill"]
    assert config["Cmd"][:3] == ["serve", "--config", "/etc/distill/distill.yaml"]
    assert list(config["ExposedPorts"]) == ["8080/tcp"]
    assert "/healthz" in " ".join(config["Healthcheck"]["Test"])  # docker format keeps it
    labels = config["Labels"]
    assert labels["org.opencontainers.image.version"] == VERSION
    # The commit built (HEAD may have moved since: others commit while tests run).
    revision = labels["org.opencontainers.image.revision"]
    assert (
        subprocess.run(["git", "cat-file", "-e", f"{revision}^{{commit}}"], cwd=ROOT).returncode
        == 0
    )


def stop(server: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the gateway inside (buildah run answers its own SIGTERM with SIGKILL)."""
    if server.poll() is None:
        for child in psutil.Process(server.pid).children(recursive=True):
            argv = child.cmdline()  # the interpreter, not buildah-chroot-exec above it
            if argv and Path(argv[0]).name.startswith("python") and "serve" in argv:
                child.send_signal(signal.SIGTERM)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(10)


def test_the_image_proxies_and_logs_a_completion(
    image: str, container: str, teacher_server: TeacherServer, tmp_path: Path
) -> None:
    data = tmp_path / "data"  # the volume the deployments mount at /data
    data.mkdir()
    os.chown(data, 10001, 10001)
    config = tmp_path / "distill.yaml"
    config.write_text(
        yaml.safe_dump(gateway_config_dict(teacher_server.base_url, Path("/data/distill.duckdb")))
    )
    entrypoint = image_config(image)["Entrypoint"]
    port = free_port()
    log = tmp_path / "gateway.log"
    # chroot isolation shares the host's network, so the gateway and the teacher meet on
    # 127.0.0.1; the image's entrypoint with the CMD's arguments but loopback and a free port.
    with log.open("wb") as out:
        server = subprocess.Popen(
            [
                *("buildah", "run", "--isolation", "chroot"),
                *("-v", f"{config}:/etc/distill/distill.yaml:ro", "-v", f"{data}:/data"),
                *(container, "--", *entrypoint, "serve", "--config", "/etc/distill/distill.yaml"),
                *("--host", "127.0.0.1", "--port", str(port)),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, log.read_text()[-3000:]
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.2)
        client = openai.OpenAI(
            base_url=f"http://127.0.0.1:{port}/v1", api_key="unused", max_retries=0
        )
        raw = client.chat.completions.with_raw_response.create(
            model="gpt-4o", messages=[{"role": "user", "content": "My order never arrived."}]
        )
        reply = raw.parse()
        assert reply.choices[0].message.content
        request_id = raw.headers["x-distill-request-id"]
    finally:
        stop(server)
    # The row is on the mounted volume, written by the image's user, after a clean shutdown.
    store = data / "distill.duckdb"
    assert store.stat().st_uid == 10001
    with connect(store, read_only=True) as db:
        row = db.execute(
            "SELECT route, upstream, status FROM requests WHERE id = ?", [request_id]
        ).fetchone()
    assert row == ("support-triage", "teacher", 200), log.read_text()[-3000:]
