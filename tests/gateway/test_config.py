"""Config validation names the bad key; environment overrides apply on top of the file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gateway.config import ConfigError, load_config, parse_config


def base() -> dict[str, Any]:
    return {
        "store": {"path": "distill.duckdb"},
        "upstreams": {
            "teacher": {"base_url": "http://127.0.0.1:9000/v1", "api_key_env": "TEACHER_API_KEY"}
        },
        "routes": [
            {
                "name": "support-triage",
                "match": ["gpt-4o"],
                "teacher": {"upstream": "teacher", "model": "gpt-4o"},
            }
        ],
    }


def test_the_documented_minimal_config_is_valid() -> None:
    config = parse_config(base(), environ={})
    assert config.routes[0].teacher.model == "gpt-4o"
    assert config.store.spool_path == Path("distill.duckdb.spool")


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda c: c["store"].update(pth="x"), "store.pth: unknown key"),
        (lambda c: c.pop("upstreams"), "upstreams: Field required"),
        (
            lambda c: c["upstreams"]["teacher"].update(base_url="localhost:9000"),
            "upstreams.teacher.base_url: 'localhost:9000' is not an http(s) URL",
        ),
        (
            lambda c: c["routes"][0]["teacher"].update(upstream="nope"),
            "upstream 'nope' is not defined under upstreams",
        ),
        (lambda c: c["routes"][0].update(match=[]), "routes.0.match"),
        (
            lambda c: c["routes"].append(dict(c["routes"][0], name="other")),
            "model 'gpt-4o' is matched by routes 'support-triage' and 'other'",
        ),
        (
            lambda c: c["routes"][0].update(
                students=[
                    {"name": "a", "upstream": "teacher", "model": "a", "weight": 70},
                    {"name": "b", "upstream": "teacher", "model": "b", "weight": 40},
                ]
            ),
            "add up to 110.0%",
        ),
        (
            lambda c: c.update(capture={"sample_rate": 2}),
            "capture.sample_rate: Input should be less than or equal to 1",
        ),
        (
            lambda c: c.update(capture={"redact": [{"pattern": "("}]}),
            "capture.redact.0.pattern: not a valid regular expression",
        ),
        (
            lambda c: (
                c["server"].update(port="eighty")
                if "server" in c
                else c.update(server={"port": "eighty"})
            ),
            "server.port",
        ),
    ],
)
def test_bad_configs_name_the_key(edit: Any, expected: str) -> None:
    data = base()
    edit(data)
    with pytest.raises(ConfigError) as info:
        parse_config(data, source="distill.yaml", environ={})
    assert expected in str(info.value)
    assert str(info.value).startswith("distill.yaml: invalid config")


def test_env_overrides_nested_keys_and_list_items() -> None:
    env = {
        "DISTILL__STORE__PATH": "/data/x.duckdb",
        "DISTILL__CAPTURE__SAMPLE_RATE": "0.5",
        "DISTILL__ROUTES__0__TEACHER__MODEL": "gpt-4.1",
        "UNRELATED": "1",
    }
    config = parse_config(base(), environ=env)
    assert config.store.path == "/data/x.duckdb"
    assert config.capture.sample_rate == 0.5
    assert config.routes[0].teacher.model == "gpt-4.1"


def test_env_override_of_a_missing_list_item_is_an_error() -> None:
    with pytest.raises(ConfigError, match="DISTILL__ROUTES__5__NAME"):
        parse_config(base(), environ={"DISTILL__ROUTES__5__NAME": "x"})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "upstreams: Field required"),
        ("- a\n- b\n", "top level must be a mapping"),
        ("store: [unclosed\n", "not valid YAML"),
    ],
)
def test_load_config_file_errors(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "distill.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=expected):
        load_config(path, environ={})


def test_missing_file_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "nope.yaml", environ={})
