"""The example configs shipped in the package load by name, name registered models, and train."""

from __future__ import annotations

import pytest
import yaml

from chainrule.core.errors import ConfigError
from chainrule.core.runs.config import SHIPPED_CONFIGS, build_config, read_yaml, shipped_configs
from chainrule.core.training.config import TrainConfig
from chainrule.modalities.registry import model_class

NAMES = shipped_configs()


def test_configs_are_shipped_as_package_data():
    assert {"digits-gated-pixelcnn", "shakespeare-transformer", "airpassengers-deepar"} <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_each_config_names_a_registered_model_and_valid_training_options(name):
    cfg = read_yaml(name)  # by name, as --config NAME
    assert cfg == yaml.safe_load((SHIPPED_CONFIGS / f"{name}.yaml").read_text())
    modality = "series" if "source" in cfg["data"] else None
    cls = model_class(cfg["model"]["name"], modality or ("text" if cfg["data"].get("tokenizer") else "image"))
    assert cls.name == cfg["model"]["name"]
    TrainConfig.from_dict(cfg["train"])  # raises on an unknown or invalid option


def test_a_missing_config_lists_the_shipped_ones():
    with pytest.raises(ConfigError, match="digits-gated-pixelcnn"):
        read_yaml("no-such-config")


def test_the_image_example_trains(tmp_path):
    from chainrule import api

    cfg = build_config(None, None, "digits-gated-pixelcnn", ["train.steps=3", "train.eval_every=0",
                                                             "model.num_layers=1", "output.samples=4"])
    assert cfg["model"]["name"] == "gated_pixelcnn" and cfg["data"]["name"] == "digits"
    run = api.train(config_file="digits-gated-pixelcnn", run_dir=tmp_path / "run",
                    overrides=["train.steps=3", "train.eval_every=0", "model.num_layers=1", "output.samples=4",
                               "train.progress=false"])
    assert (run.path / "best.safetensors").is_file() or list((run.path / "checkpoints").glob("*.safetensors"))
