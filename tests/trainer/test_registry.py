"""The adapter registry: lifecycle rules, validation of real peft adapters, a real DuckDB store."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import click
import duckdb
import pytest
from click.testing import CliRunner

from gateway.cli import main
from trainer.registry import registry as reg
from trainer.registry.states import STATES, InvalidTransitionError, next_state
from trainer.registry.validate import AdapterError, config_problems, read_adapter


def make_peft_adapter(
    base_dir: Path, out_dir: Path, *, r: int = 8, lineage: bool = True, **lora: Any
) -> Path:
    """Save a real (untrained) peft LoRA adapter on the tiny model, plus a distill.json."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(base_dir))
    config = LoraConfig(
        r=r,
        lora_alpha=2 * r,
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
        **lora,
    )
    get_peft_model(model, config).save_pretrained(str(out_dir))
    if lineage:
        (out_dir / "distill.json").write_text(
            json.dumps(
                {
                    "base_model": str(base_dir),
                    "dataset_hash": "abc123",
                    "config": {"r": r},
                    "metrics": {"agreement": 0.97},
                    "code_version": "test",
                }
            )
        )
    return out_dir


@pytest.mark.parametrize(
    ("current", "target", "expected"),
    [
        ("candidate", "shadow", "shadow"),
        ("shadow", "canary", "canary"),
        ("canary", "stable", "stable"),
        ("stable", "retired", "retired"),
        ("canary", "candidate", "candidate"),  # rollback
        ("shadow", "candidate", "candidate"),  # rollback
        ("canary", "canary", "canary"),  # idempotent
        ("candidate", "retired", "retired"),
    ],
)
def test_allowed_transitions(current: str, target: str, expected: str) -> None:
    assert next_state(current, target) == expected


@pytest.mark.parametrize(
    ("current", "target", "message"),
    [
        ("candidate", "canary", "can go to: retired, shadow"),
        ("candidate", "stable", "cannot move an adapter from candidate to stable"),
        ("shadow", "stable", "can go to: canary, candidate, retired"),
        ("retired", "candidate", "retired is final"),
        ("candidate", "live", "unknown adapter state 'live'"),
    ],
)
def test_invalid_transitions(current: str, target: str, message: str) -> None:
    with pytest.raises(InvalidTransitionError, match=message):
        next_state(current, target)


def test_every_state_is_reachable_from_candidate() -> None:
    path = ["candidate", "shadow", "canary", "stable", "retired"]
    state = path[0]
    for target in path[1:]:
        state = next_state(state, target)
    assert state == "retired"
    assert set(path) == set(STATES)


@pytest.mark.parametrize(
    ("config", "fragment"),
    [
        ({"r": 8, "bias": "none"}, None),
        ({"r": 16}, None),
        ({"r": 32}, "rank 32 is above the serving limit 16"),
        ({"r": 8, "rank_pattern": {"q_proj": 64}}, "rank 64"),
        ({"r": 8, "bias": "lora_only"}, "bias='lora_only'"),
        ({"r": 8, "use_dora": True}, "DoRA"),
        ({"r": 8, "modules_to_save": ["lm_head"]}, "modules_to_save"),
        ({"r": 8, "peft_type": "IA3"}, "LoRA adapters only"),
    ],
)
def test_config_problems(config: dict[str, Any], fragment: str | None) -> None:
    problems = config_problems(config, max_rank=16)
    if fragment is None:
        assert problems == []
    else:
        assert any(fragment in p for p in problems), problems


@pytest.fixture(scope="module")
def adapters_root(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("registry-adapters")
    make_peft_adapter(tiny_model_dir, root / "triage-v1", r=8)
    make_peft_adapter(tiny_model_dir, root / "triage-v2", r=8)
    make_peft_adapter(tiny_model_dir, root / "rank32", r=32)
    make_peft_adapter(tiny_model_dir, root / "dora", r=4, use_dora=True)
    make_peft_adapter(tiny_model_dir, root / "nolineage", r=4, lineage=False)
    return root


def test_read_adapter_from_real_peft_output(adapters_root: Path, tiny_model_dir: Path) -> None:
    info = read_adapter(adapters_root / "triage-v1")
    assert info.rank == 8
    assert info.base_model == str(tiny_model_dir)
    assert info.dataset_hash == "abc123"
    assert info.metrics == {"agreement": 0.97}
    # without distill.json the base model comes from peft's own config
    assert Path(read_adapter(adapters_root / "nolineage").base_model) == tiny_model_dir


def test_register_list_show_and_state(adapters_root: Path, tmp_path: Path) -> None:
    store = tmp_path / "distill.duckdb"
    first = reg.register_adapter(store, adapters_root / "triage-v1", route="support-triage")
    reg.register_adapter(store, adapters_root / "triage-v2", name="triage-v2")
    assert first.state == "candidate"
    assert first.name == "triage-v1"
    assert first.lineage["code_version"] == "test"

    names = [r.name for r in reg.list_adapters(store)]
    assert sorted(names) == ["triage-v1", "triage-v2"]
    assert [r.name for r in reg.list_adapters(store, route="support-triage")] == ["triage-v1"]

    for state in ("shadow", "canary", "candidate", "shadow", "canary", "stable"):
        assert reg.set_state(store, "triage-v1", state).state == state
    with pytest.raises(InvalidTransitionError):
        reg.set_state(store, "triage-v2", "stable")
    # a refused transition changed nothing
    assert reg.get_adapter(store, "triage-v2").state == "candidate"
    assert [r.name for r in reg.list_adapters(store, state="stable")] == ["triage-v1"]

    # the rows really are in the store's adapters table
    with duckdb.connect(str(store), read_only=True) as conn:
        rows = conn.execute(
            "SELECT name, state, dataset_hash FROM adapters ORDER BY name"
        ).fetchall()
    assert rows == [("triage-v1", "stable", "abc123"), ("triage-v2", "candidate", "abc123")]


@pytest.mark.parametrize(
    ("adapter", "name", "message"),
    [
        ("rank32", None, "rank 32 is above the serving limit 16"),
        ("dora", None, "DoRA"),
        ("missing", None, "does not exist"),
        ("triage-v1", "bad name!", "not usable as a served model name"),
    ],
)
def test_register_rejects_bad_adapters(
    adapters_root: Path, tmp_path: Path, adapter: str, name: str | None, message: str
) -> None:
    store = tmp_path / "distill.duckdb"
    with pytest.raises(AdapterError, match=message):
        reg.register_adapter(store, adapters_root / adapter, name=name)
    assert reg.list_adapters(store) == []


def test_register_twice_is_refused(adapters_root: Path, tmp_path: Path) -> None:
    store = tmp_path / "distill.duckdb"
    reg.register_adapter(store, adapters_root / "triage-v1")
    with pytest.raises(AdapterError, match="already registered"):
        reg.register_adapter(store, adapters_root / "triage-v2", name="triage-v1")


def test_unknown_adapter(tmp_path: Path, adapters_root: Path) -> None:
    store = tmp_path / "distill.duckdb"
    reg.register_adapter(store, adapters_root / "triage-v1")
    with pytest.raises(reg.AdapterNotFoundError, match="no adapter named 'nope'"):
        reg.get_adapter(store, "nope")
    with pytest.raises(reg.AdapterNotFoundError):
        reg.set_state(store, "nope", "shadow")


def test_cli_register_list_show(adapters_root: Path, tmp_path: Path) -> None:
    store = str(tmp_path / "distill.duckdb")
    runner = CliRunner()
    adapter = str(adapters_root / "triage-v1")
    result = runner.invoke(main, ["adapters", "register", adapter, "--store", store])
    assert result.exit_code == 0, result.output
    assert "registered triage-v1" in result.output

    listed = runner.invoke(main, ["adapters", "list", "--store", store])
    assert listed.exit_code == 0, listed.output
    assert "triage-v1" in listed.output and "candidate" in listed.output

    shown = runner.invoke(main, ["adapters", "show", "triage-v1", "--json", "--store", store])
    assert shown.exit_code == 0, shown.output
    data = json.loads(shown.output)
    assert data["state"] == "candidate"
    assert data["lineage"]["dataset_hash"] == "abc123"
    assert data["metrics"] == {"agreement": 0.97}

    moved = runner.invoke(main, ["adapters", "set-state", "triage-v1", "stable", "--store", store])
    assert moved.exit_code != 0
    assert "cannot move an adapter from candidate to stable" in moved.output

    bad = runner.invoke(
        main, ["adapters", "register", str(adapters_root / "rank32"), "--store", store]
    )
    assert bad.exit_code != 0
    assert "retrain with r<=16" in bad.output


def test_every_store_option_reads_distill_store_and_keeps_a_fleet_url(
    adapters_root: Path, tmp_path: Path
) -> None:
    store = str(tmp_path / "distill.duckdb")
    env = {"DISTILL_STORE": store}
    runner = CliRunner()
    adapter = str(adapters_root / "triage-v1")
    assert runner.invoke(main, ["adapters", "register", adapter], env=env).exit_code == 0
    listed = runner.invoke(main, ["adapters", "list"], env=env)
    assert listed.exit_code == 0 and "triage-v1" in listed.output, listed.output
    # train, eval, sweep and adapters take the same option: a URL is not made a path
    url = "postgresql://distill@db:5432/distill?data_path=/lake"
    for command in (["train"], ["eval"], ["sweep"], ["adapters", "list"], ["adapters", "load"]):
        found: Any = main
        for name in command:
            found = found.get_command(click.Context(found), name)
        [option] = [p for p in found.params if p.name == "store"]
        assert option.envvar == "DISTILL_STORE", command
        assert option.type.convert(url, None, None) == url, command


def test_load_with_server_unreachable(adapters_root: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # nothing listens on the port once the socket is closed
    server = f"http://127.0.0.1:{port}/v1"
    adapter = str(adapters_root / "triage-v1")
    result = CliRunner().invoke(
        main, ["adapters", "load", "t3", "--server", server, "--path", adapter]
    )
    assert result.exit_code != 0
    assert "cannot reach vLLM" in result.output


def test_load_needs_a_path_or_a_store() -> None:
    result = CliRunner(env={"DISTILL_STORE": None}).invoke(
        main, ["adapters", "load", "t3", "--server", "http://x/v1"]
    )
    assert result.exit_code != 0
    assert "--path" in result.output


def test_transition_inside_a_callers_transaction(adapters_root: Path, tmp_path: Path) -> None:
    from gateway.store.db import connect

    store = tmp_path / "distill.duckdb"
    reg.register_adapter(store, adapters_root / "triage-v1")
    with connect(store) as conn:
        conn.execute("BEGIN")
        assert reg.transition_adapter(conn, "triage-v1", "shadow").state == "shadow"
        conn.execute("ROLLBACK")  # the rollout's own write failed: the state change goes too
    assert reg.get_adapter(store, "triage-v1").state == "candidate"
    with connect(store) as conn:
        reg.transition_adapter(conn, "triage-v1", "shadow")
    assert reg.get_adapter(store, "triage-v1").state == "shadow"
