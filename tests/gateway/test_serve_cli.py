"""`distill serve` refuses to listen open on a non-loopback address, and says what to do."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from gateway.auth import key_digest
from gateway.cli import main as distill
from gateway.serve_cli import is_loopback

BASE = {"upstreams": {"t": {"base_url": "http://127.0.0.1:9/v1"}}}


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.0.1", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("10.1.2.3", False),
        ("gateway.internal", False),
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_open_non_loopback_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "distill.yaml"
    config.write_text(yaml.safe_dump(BASE))
    result = CliRunner().invoke(distill, ["serve", "--config", str(config), "--host", "0.0.0.0"])
    assert result.exit_code != 0
    assert "refusing to serve on 0.0.0.0 without client API keys" in result.output
    assert "distill keys new" in result.output


def test_bad_config_is_refused_with_the_key(tmp_path: Path) -> None:
    config = tmp_path / "distill.yaml"
    config.write_text(yaml.safe_dump({**BASE, "server": {"prot": 1}}))
    result = CliRunner().invoke(distill, ["serve", "--config", str(config)])
    assert result.exit_code != 0 and "server.prot: unknown key" in result.output


def test_keys_new_prints_a_key_and_its_digest() -> None:
    result = CliRunner().invoke(distill, ["keys", "new", "--name", "app", "--rate", "5"])
    assert result.exit_code == 0
    key = result.output.split("): ")[1].split()[0]
    assert key.startswith("dk-") and key_digest(key) in result.output
    assert "rate_per_s: 5.0" in result.output
