"""NAME_FILE provides NAME (Docker and Kubernetes secrets mounted as files)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from gateway.cli import main
from gateway.secret_files import SecretFileError, load_secret_files


@pytest.mark.parametrize(
    ("environ", "content", "expected", "loaded"),
    [
        ({"TOKEN_FILE": "{file}"}, "s3cret\n", {"TOKEN": "s3cret"}, ["TOKEN"]),
        ({"TOKEN_FILE": "{file}"}, "a\nb\n\n", {"TOKEN": "a\nb\n"}, ["TOKEN"]),  # one newline off
        ({"TOKEN_FILE": "{file}", "TOKEN": "explicit"}, "file", {"TOKEN": "explicit"}, []),
        ({"TOKEN": "plain"}, "", {"TOKEN": "plain"}, []),
        ({"_FILE": "{file}"}, "x", {}, []),  # no name before the suffix
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
    assert load_secret_files(env) == loaded
    assert {k: v for k, v in env.items() if not k.endswith("_FILE")} == expected


def test_an_unreadable_secret_file_says_which_and_what_to_do(tmp_path: Path) -> None:
    env = {"TEACHER_API_KEY_FILE": str(tmp_path / "missing")}
    with pytest.raises(SecretFileError, match=r"TEACHER_API_KEY_FILE=.*cannot read the secret"):
        load_secret_files(env)
    result = CliRunner().invoke(main, ["store", "--help"], env=env)
    assert result.exit_code == 1 and "unset TEACHER_API_KEY_FILE" in result.output
