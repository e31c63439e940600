"""TOML run configs: defaults, building, and errors that name the file, line and key path."""

from pathlib import Path

import numpy as np
import pytest

import learnflux as lf
from learnflux.config import (
    DEFAULT_CONFIG,
    build_model,
    build_optimizer,
    build_schedule,
    default_config,
    load_config,
    locate,
    parse_config,
)

EXAMPLES = sorted((Path(__file__).parent.parent / "examples").glob("*.toml"))

CNN = """\
[data]
dataset = "digits"

[model]
[[model.layers]]
type = "Conv2d"
out_channels = 4
kernel_size = 3
[[model.layers]]
type = "ReLU"
[[model.layers]]
type = "Flatten"
[[model.layers]]
type = "Linear"
out_features = 10

[training]
epochs = 2
"""


def error_of(text, source="run.toml"):
    with pytest.raises(lf.ConfigError) as info:
        cfg = parse_config(text, source=source)
        build_model(cfg, (1, 8, 8))
    return str(info.value)


def test_default_config_builds_the_cnn():
    cfg = default_config()
    assert cfg.data["dataset"] == "digits" and cfg.training["epochs"] >= 15
    model = build_model(cfg, (1, 8, 8))
    assert isinstance(model.layers[0], lf.Input) and model.layers[0].shape == (1, 8, 8)
    assert isinstance(model.layers[1], lf.Conv2d) and model.layers[1].in_channels == 1
    assert model.output_shape((1, 8, 8)) == (10,)
    sched, interval = build_schedule(cfg, build_optimizer(cfg, model), steps_per_epoch=41)
    assert isinstance(sched, lf.optim.CosineAnnealingLR) and interval == "epoch"
    assert sched.T_max == cfg.training["epochs"]


def test_inferred_sizes_and_seeded_weights():
    cfg = parse_config(CNN)
    a, b = build_model(cfg, (1, 8, 8)), build_model(cfg, (1, 8, 8))
    assert a.layers[4].in_features == 4 * 6 * 6
    for k, v in a.state_dict().items():
        np.testing.assert_array_equal(v, b.state_dict()[k])


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_examples_are_valid(path):
    cfg = load_config(path)
    shape = (1, 8, 8) if cfg.data["dataset"] == "digits" else (1, 28, 28)
    model = build_model(cfg, shape)
    assert model.output_shape(shape) == (10,)
    build_schedule(cfg, build_optimizer(cfg, model), steps_per_epoch=10)


def test_unknown_layer_names_line_and_key():
    msg = error_of(CNN.replace('type = "ReLU"', 'type = "Relu"'))
    assert msg.startswith("run.toml:10: model.layers[1].type: unknown layer 'Relu'")
    assert "did you mean 'ReLU'" in msg
    msg = error_of(CNN.replace('type = "ReLU"', 'type = "Conv3d"'))
    assert "known layers: [" in msg and "Conv2d" in msg


def test_bad_argument_values_and_names():
    msg = error_of(CNN.replace("kernel_size = 3", 'kernel_size = "3"'))
    assert msg.startswith("run.toml:8: model.layers[0].kernel_size:")
    msg = error_of(CNN.replace("kernel_size = 3", "kernel_size = 0"))
    assert msg.startswith("run.toml:8: model.layers[0].kernel_size:") and "positive" in msg
    msg = error_of(CNN.replace("kernel_size = 3", "kernel = 3"))
    assert msg.startswith("run.toml:8: model.layers[0].kernel: Conv2d has no argument 'kernel'")
    msg = error_of(CNN.replace("out_features = 10", "out_features = 10\nbias = 1"))
    assert "model.layers[3].bias: expected true or false, got 1" in msg


def test_shape_mismatch_between_layers_is_reported_before_training():
    msg = error_of(CNN.replace("out_features = 10", "in_features = 100\nout_features = 10"))
    assert msg.startswith("run.toml:15: model.layers[3].in_features: is 100")
    assert "shape [144]" in msg and "in_features = 144" in msg
    msg = error_of(CNN.replace("kernel_size = 3", "kernel_size = 9"))
    assert msg.startswith("run.toml:5: model.layers[0]: Conv2d cannot take the input of shape [1, 8, 8]")
    msg = error_of(CNN.replace('type = "Flatten"', 'type = "Identity"'))
    assert "unknown layer 'Identity'" in msg


def test_bad_tables_and_training_values():
    assert "run.toml:18: training.epochs: expected an integer >= 1, got 0" in error_of(
        CNN.replace("epochs = 2", "epochs = 0")
    )
    assert "training.epochs: expected an integer, got 'ten'" in error_of(
        CNN.replace("epochs = 2", 'epochs = "ten"')
    )
    assert "training.epoch: unknown key" in error_of(CNN.replace("epochs = 2", "epoch = 2"))
    assert "run.toml:2: data.dataset: expected one of" in error_of(
        "[data]\ndataset = 'imagenet'\n" + CNN.split("\n", 2)[2]
    )
    assert "optimiser: unknown table" in error_of(CNN + "[optimiser]\ntype = 'Adam'\n")
    assert "optimizer.type: unknown optimizer 'Adamax'" in error_of(CNN + "[optimizer]\ntype = 'Adamax'\n")
    assert "optimizer.learning_rate: Adam has no argument" in error_of(
        CNN + "[optimizer]\ntype = 'Adam'\nlearning_rate = 0.1\n"
    )
    assert "training.metrics[0]: unknown metric 'f1'" in error_of(
        CNN.replace("epochs = 2", "metrics = ['f1']")
    )
    assert "not valid TOML" in error_of("[data\n")
    assert "missing: a [model] table" in error_of("[data]\ndataset = 'digits'\n")
    assert "data.root: dataset 'mnist' needs root" in error_of("[data]\ndataset = 'mnist'\n")


def test_bad_optimizer_value_names_the_key():
    cfg = parse_config(CNN + "[optimizer]\ntype = 'SGD'\nlr = 0.1\nmomentum = -1\n", source="run.toml")
    with pytest.raises(lf.ConfigError, match=r"run.toml:22: optimizer.momentum: "):
        build_optimizer(cfg, build_model(cfg, (1, 8, 8)))


def test_no_decay_makes_parameter_groups():
    cfg = parse_config(CNN + "[optimizer]\ntype = 'AdamW'\nweight_decay = 0.1\nno_decay = ['bias']\n")
    opt = build_optimizer(cfg, build_model(cfg, (1, 8, 8)))
    assert sorted(g["weight_decay"] for g in opt.param_groups) == [0.0, 0.1]
    text = CNN + "[optimizer]\ntype = 'AdamW'\nno_decay = ['bias']\n"
    assert "optimizer.no_decay: needs weight_decay" in error_of(text)


def test_locate_finds_nested_keys():
    text = DEFAULT_CONFIG
    lines = text.splitlines()
    line = locate(text, ["model", "layers", 4, "out_channels"])
    assert lines[line - 1].strip() == "out_channels = 64"
    assert lines[locate(text, ["training", "epochs"]) - 1].startswith("epochs")
    assert lines[locate(text, ["model", "layers", 2]) - 1] == "[[model.layers]]"
    assert locate(text, ["nothing"]) is None


def test_load_config_reports_a_missing_file(tmp_path):
    with pytest.raises(lf.ConfigError, match="cannot read the config file"):
        load_config(tmp_path / "missing.toml")
