"""NAME_FILE provides NAME (Docker and Kubernetes secrets mounted as files)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from gateway.cli import main
from gateway.config import parse_config
from gateway.secret_files import SecretFileError, load_secret_files, secret_names
from gateway.store.backend import EmbeddedStore


@pytest.mark.parametrize(
    ("environ", "content", "expected", "loaded"),
    [
        ({"TOKEN_FILE": "{file}"}, "s3cret\n", {"TOKEN": "s3cret"}, ["TOKEN"]),
        ({"TOKEN_FILE": "{file}"}, "a\nb\n\n", {"TOKEN": "a\nb\n"}, ["TOKEN"]),  # one newline off
        ({"TOKEN_FILE": "{file}", "TOKEN": "explicit"}, "file", {"TOKEN": "explicit"}, []),
        ({"TOKEN": "plain"}, "", {"TOKEN": "plain"}, []),
        ({"SSL_CERT_FILE": "{file}"}, "pem", {}, []),  # not named as a secret: left alone
    ],
)
def test_load_secret_files(
    tmp_path: Path,
    environ: dict[str, str],
    content: str,
    expected: dict[str, str],
    loaded: list[str],
) -> None:
    secret = tmp_path / "secret"
    secret.write_text(content)
    env = {k: v.format(file=secret) for k, v in environ.items()}
    assert load_secret_files(["TOKEN", "OTHER"], env) == loaded
    assert {k: v for k, v in env.items() if not k.endswith("_FILE")} == expected


def test_secret_names_are_the_ones_the_config_names() -> None:
    config = parse_config(
        {
            "server": {"admin_token_env": "ADMIN", "api_keys_env": "KEYS"},
            "store": {"format": "fleet", "path": "/lake", "postgres_dsn_env": "PG"},
            "upstreams": {"teacher": {"base_url": "http://t/v1", "api_key_env": "TEACHER"}},
            "capture": {"pseudonym_key_env": "PSEUDO"},
            "routes": [],
        },
        environ={},
    )
    assert secret_names(config) == ["ADMIN", "KEYS", "PG", "PSEUDO", "TEACHER"]


def test_an_unreadable_secret_file_says_which_and_what_to_do(tmp_path: Path) -> None:
    env = {"DISTILL_ADMIN_TOKEN_FILE": str(tmp_path / "missing")}
    with pytest.raises(SecretFileError, match=r"DISTILL_ADMIN_TOKEN_FILE=.*cannot read"):
        load_secret_files(["DISTILL_ADMIN_TOKEN"], env)
    result = CliRunner().invoke(main, ["store", "--help"], env=env)
    assert result.exit_code == 1 and "unset DISTILL_ADMIN_TOKEN_FILE" in result.output


def test_the_cli_store_comes_from_a_secret_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fleet store URL holds the PostgreSQL password: DISTILL_STORE_FILE gives `--store`."""
    store = EmbeddedStore(tmp_path / "logs.duckdb")
    with store.connect():
        pass  # migrated, empty
    secret = tmp_path / "distill_store"
    secret.write_text(f"{store.path}\n")
    # The CLI sets DISTILL_STORE from the file in this process: set first, so the teardown
    # removes it again (a plain delenv of an unset name records nothing to undo).
    monkeypatch.setenv("DISTILL_STORE", "")
    monkeypatch.delenv("DISTILL_STORE")
    monkeypatch.setenv("DISTILL_STORE_FILE", str(secret))
    result = CliRunner().invoke(main, ["store", "stats"])
    assert result.exit_code == 0, result.output
    assert "requests" in result.output
