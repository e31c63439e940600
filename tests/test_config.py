"""TOML run configs: defaults, building, and errors that name the file, line and key path."""

import types
import typing
from importlib import resources
from pathlib import Path
from typing import Literal, Optional

import numpy as np
import pytest

import learnflux as lf
from learnflux.config import (
    DEFAULT_CONFIG,
    build_model,
    build_optimizer,
    build_schedule,
    check_output,
    default_config,
    load_config,
    locate,
    parse_config,
    schema,
)
from learnflux.config.components import COMPONENTS, layer_classes

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
    kind = cfg.data["dataset"]
    shape = {"digits": (1, 8, 8), "text": (cfg.data["context"],)}.get(kind, (1, 28, 28))
    model = build_model(cfg, shape)  # a text: 75 characters' logits at each position
    assert model.output_shape(shape) == ((75, *shape) if kind == "text" else (10,))
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
    # no flattening: Linear acts on the last axis (as PyTorch's), so the output is not one vector
    # per sample; the check of the output against the data says so before training
    cfg = parse_config(CNN.replace('type = "Flatten"', 'type = "Identity"'), source="run.toml")
    model = build_model(cfg, (1, 8, 8))
    with pytest.raises(lf.ConfigError) as info:
        check_output(cfg, model, types.SimpleNamespace(sample_shape=(1, 8, 8), n_classes=10))
    assert str(info.value).startswith("run.toml:13: model.layers[3]: the model outputs shape [4, 6, 10]")
    assert "a Flatten before the last Linear" in str(info.value)


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


# ------------------------------------------------------------------ checks from the annotations
def test_an_argument_whose_default_is_none_is_checked():
    pool = 'type = "MaxPool2d"\nkernel_size = 2\nstride = "2"'
    msg = error_of(CNN.replace('type = "ReLU"', pool))
    assert msg.startswith(
        "run.toml:12: model.layers[1].stride: expected an integer or a list of integers, got '2'"
    )
    model = build_model(parse_config(CNN.replace('type = "ReLU"', pool.replace('"2"', "2"))), (1, 8, 8))
    assert model.layers[2].output_shape((4, 6, 6)) == (4, 3, 3)
    norm = 'type = "BatchNorm2d"\nmomentum = "fast"'
    msg = error_of(CNN.replace('type = "ReLU"', norm))
    assert msg.startswith("run.toml:11: model.layers[1].momentum: expected a number, got 'fast'")
    one_cycle = "[schedule]\ntype = 'OneCycleLR'\nmax_lr = 0.1\ntotal_steps = 1.5\n"
    assert "run.toml:22: schedule.total_steps: expected an integer, got 1.5" in error_of(CNN + one_cycle)


def test_a_literal_argument_takes_one_of_its_choices():
    one_cycle = "[schedule]\ntype = 'OneCycleLR'\nmax_lr = 0.1\nanneal_strategy = '{}'\n"
    msg = error_of(CNN + one_cycle.format("cosine"))
    assert "run.toml:22: schedule.anneal_strategy: expected one of ['cos', 'linear'], got 'cosine'" in msg
    cfg = parse_config(CNN + one_cycle.format("linear"))
    sched, _ = build_schedule(cfg, build_optimizer(cfg, build_model(cfg, (1, 8, 8))), steps_per_epoch=4)
    assert sched.anneal_strategy == "linear"


def test_a_tuple_argument_takes_a_list_of_that_length():
    adam = "[optimizer]\ntype = 'Adam'\nbetas = {}\n"
    assert "run.toml:21: optimizer.betas: expected a list of 2 numbers, got [0.9]" in error_of(
        CNN + adam.format("[0.9]")
    )
    assert "optimizer.betas: expected a list of 2 numbers, got [0.9, True]" in error_of(
        CNN + adam.format("[0.9, true]")
    )
    cfg = parse_config(CNN + adam.format("[0.8, 0.99]"))
    assert build_optimizer(cfg, build_model(cfg, (1, 8, 8))).param_groups[0]["betas"] == (0.8, 0.99)


def test_an_integer_argument_refuses_true():
    msg = error_of(CNN.replace("out_channels = 4", "out_channels = true"))
    assert msg.startswith("run.toml:7: model.layers[0].out_channels: expected an integer, got True")
    msg = error_of(CNN.replace("kernel_size = 3", "kernel_size = [3, false]"))
    assert "model.layers[0].kernel_size: expected an integer or a list of integers" in msg


def test_the_schema_reads_annotations():
    class Layer:
        def __init__(
            self,
            size: int | tuple[int, int],
            mode: Literal["a", "b"] = "a",
            scale: Optional[float] = None,
            flags: dict[str, bool] | None = None,
            rng: np.random.Generator | None = None,
            untyped=3,
            *args,
            **kwargs,
        ) -> None: ...

    args = schema.arguments(Layer, supplied=("rng",))
    assert list(args) == ["size", "mode", "scale", "flags", "untyped"]
    assert args["size"].required and not args["mode"].required
    fits = {name: lambda v, n=name: schema.fits(v, args[n].hint) for name in args}
    assert fits["size"](3) and fits["size"]([3, 4]) and not fits["size"]([3]) and not fits["size"](True)
    assert fits["mode"]("b") and not fits["mode"]("c")
    assert fits["scale"](1) and fits["scale"](0.5) and not fits["scale"](False) and not fits["scale"]("1")
    assert fits["flags"]({"x": True}) and not fits["flags"]({"x": 1})
    assert fits["untyped"](4) and not fits["untyped"](4.5)  # the type of its default
    assert schema.describe(args["size"].hint) == "an integer or a list of 2 integers"
    assert schema.describe(Literal[1, 2]) == "one of [1, 2]" and not schema.fits(True, Literal[1, 2])
    assert not schema.fits(3, np.random.Generator) and schema.describe(np.random.Generator) == "a Generator"


def test_every_configurable_class_has_annotations_that_resolve():
    # a name the annotations cannot resolve would silently turn the checks off (Any)
    tables = {"model.layers": layer_classes(), **COMPONENTS}
    for table, classes in tables.items():
        assert classes, table
        for name, cls in classes.items():
            typing.get_type_hints(cls.__init__)  # raises NameError on an unresolved name
            for arg in schema.arguments(cls, schema.SUPPLIED[table]).values():
                assert arg.hint is not None, (table, name, arg.name)


def test_the_types_a_config_can_name_come_from_the_registries():
    assert set(COMPONENTS["optimizer"]) == {"SGD", "Adam", "AdamW", "RMSprop", "Adagrad"}
    assert {"StepLR", "CosineAnnealingLR", "OneCycleLR"} <= set(COMPONENTS["schedule"])
    assert "LRScheduler" not in COMPONENTS["schedule"] and "Loss" not in COMPONENTS["loss"]
    layers = layer_classes()
    assert {"Conv2d", "Linear", "ReLU"} <= set(layers)
    assert not {"Input", "Sequential", "Model"} & set(layers)
    assert all(not n.startswith("_") for n in layers)


def test_the_default_config_is_a_packaged_file():
    text = resources.files("learnflux.config").joinpath("default.toml").read_text(encoding="utf-8")
    assert text == DEFAULT_CONFIG and default_config().source == "<default>"


def test_a_registered_layer_of_your_own_is_checked_from_its_annotations():
    from learnflux.core.layer import LAYER_REGISTRY

    class Scale(lf.Layer):
        def __init__(self, factor: Optional[float] = None, mode: Literal["mul", "div"] = "mul") -> None:
            super().__init__()
            self.factor, self.mode = factor, mode

        def forward(self, x):
            return x

        def output_shape(self, input_shape):
            return input_shape

    scale = 'type = "Scale"\nfactor = {}\nmode = "{}"'
    assert "unknown layer 'Scale'" in error_of(CNN.replace('type = "ReLU"', scale.format(2, "mul")))
    lf.register_layer(Scale)
    try:
        msg = error_of(CNN.replace('type = "ReLU"', scale.format('"2"', "mul")))
        assert msg.startswith("run.toml:11: model.layers[1].factor: expected a number, got '2'")
        msg = error_of(CNN.replace('type = "ReLU"', scale.format(2, "times")))
        assert msg.startswith("run.toml:12: model.layers[1].mode: expected one of ['mul', 'div'], got")
        model = build_model(parse_config(CNN.replace('type = "ReLU"', scale.format(2, "div"))), (1, 8, 8))
        assert isinstance(model.layers[2], Scale) and model.layers[2].mode == "div"
    finally:
        LAYER_REGISTRY.pop("Scale")
