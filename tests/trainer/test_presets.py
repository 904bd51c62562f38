"""Training defaults follow the student: pretrained models and the tiny stand-in differ."""

from __future__ import annotations

from pathlib import Path

import pytest

from trainer.training.config import TrainConfig, load_train_config
from trainer.training.presets import PRETRAINED, TINY_MARKER, preset_defaults, preset_for


def _tiny(tmp_path: Path) -> Path:
    (tmp_path / TINY_MARKER).write_text("{}")
    return tmp_path


@pytest.mark.parametrize(
    ("make", "name"),
    [
        (_tiny, "random-init"),
        (lambda p: p, "pretrained"),  # any other directory, e.g. the SmolLM2 build
        (lambda p: Path("HuggingFaceTB/SmolLM2-135M-Instruct"), "pretrained"),  # a hub id
    ],
)
def test_preset_follows_the_base_model(tmp_path: Path, make: object, name: str) -> None:
    base = make(tmp_path)  # type: ignore[operator]
    assert preset_for(str(base)).name == name
    assert preset_defaults(str(base))["preset"] == name


def test_random_init_keeps_the_field_defaults(tmp_path: Path) -> None:
    config = load_train_config(None, defaults=preset_defaults(str(_tiny(tmp_path))))
    assert config == TrainConfig(preset="random-init")


def test_pretrained_values_apply_and_are_recorded(tmp_path: Path) -> None:
    config = load_train_config(None, defaults=preset_defaults(str(tmp_path)))
    for key, value in PRETRAINED.values.items():
        assert getattr(config, key) == value
    assert config.to_dict()["preset"] == "pretrained"  # lineage stores config.to_dict()


def test_yaml_then_flags_override_the_preset(tmp_path: Path) -> None:
    yaml_file = tmp_path / "train.yaml"
    yaml_file.write_text("learning_rate: 5e-4\nbatch_size: 4\n")
    defaults = preset_defaults(str(tmp_path))
    config = load_train_config(yaml_file, defaults=defaults, batch_size=2, rank=None)
    assert (config.learning_rate, config.batch_size) == (5e-4, 2)
    assert config.rank == PRETRAINED.values["rank"] and config.preset == "pretrained"
