"""ONNX export (learnflux.exchange.onnx), checked in ONNX Runtime: every case of the shared layer
harness whose layer has a converter, graphs with merges and nested models, the digits CNN of
`learnflux train`, and the errors (a layer without a converter, an unknown input shape)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import learnflux as lf
from learnflux.exchange.onnx_graph import IR_VERSION, OPSET, lookup

from .layer_cases import ALL_CASES

try:
    import onnx
    import onnxruntime as ort
except ImportError:  # the `onnx` extra is not installed: the tests that need it skip
    onnx = ort = None

needs_ort = pytest.mark.skipif(ort is None, reason="onnx / onnxruntime (the `onnx` extra) are not installed")

#: ONNX Runtime against learnflux's inference output, float32
RTOL = 1e-5


def _as_list(x):
    return x if isinstance(x, list) else [x]


def _one_layer_model(case, layer):
    """``(model, input_shape)``: a model holding only ``layer``, and the ``input_shape`` to export
    it with (None: its ``Input`` layers say it). Integer ids enter the layer itself (an ``Input``
    would turn them into floats)."""
    if isinstance(case.input_shape, list):
        inputs = [lf.Input(s) for s in case.input_shape]
        return lf.Model(inputs, layer(inputs)), None
    if case.input_kind == "index":
        return lf.Sequential(layer), case.input_shape
    return lf.Sequential(lf.Input(case.input_shape), layer), None


def _perturbed(layer, seed=0):
    """Move every parameter away from its initial value (a bias that starts at 0 would hide a
    converter that drops it)."""
    rng = np.random.default_rng(seed)
    for p in layer.parameters():
        p.value = p.value + rng.normal(0.0, 0.3, p.shape)
    return layer


def run_onnx(proto, xs):
    """Run ``proto`` in ONNX Runtime on the inputs ``xs`` (a list, in the graph's input order)."""
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    feed = {i.name: x for i, x in zip(session.get_inputs(), xs, strict=True)}
    return session.run(None, feed)[0]


def assert_close(got, expected, what):
    """Within ``RTOL`` of learnflux's output, relative to each value, with an absolute floor of
    ``RTOL`` times the output's largest magnitude (values near 0, e.g. GELU's far left tail,
    carry float32's absolute rounding of the terms they cancel)."""
    assert got.shape == expected.shape, f"{what}: shape {got.shape}, learnflux {expected.shape}"
    scale = float(np.max(np.abs(expected))) if expected.size else 0.0
    np.testing.assert_allclose(got, expected, rtol=RTOL, atol=RTOL * max(scale, 1e-30), err_msg=what)


EXPORTABLE = [c for c in ALL_CASES if lookup(c.make()) is not None]
NOT_EXPORTABLE = [c for c in ALL_CASES if lookup(c.make()) is None]


@needs_ort
@pytest.mark.parametrize("case", EXPORTABLE, ids=lambda c: c.id)
def test_harness_case_runs_in_onnx_runtime(case):
    model, shape = _one_layer_model(case, _perturbed(case.make()))
    proto = lf.to_onnx(model, shape)
    onnx.checker.check_model(proto, full_check=True)
    rng = np.random.default_rng(5)
    for batch in (1, 4):  # the batch axis is dynamic
        x = case.sample(batch, rng, np.float32)
        expected = model.predict(x)
        got = run_onnx(proto, _as_list(x))
        assert got.dtype == np.float32
        assert_close(got, expected, f"{case.id}, batch {batch}")


@pytest.mark.parametrize("case", NOT_EXPORTABLE or [None], ids=lambda c: c.id if c else "none")
def test_harness_case_without_converter_is_named(case):
    if case is None:
        pytest.skip("every layer of the harness has an ONNX converter")
    if onnx is None:
        pytest.skip("onnx is not installed")
    layer = case.make()
    model, shape = _one_layer_model(case, layer)
    with pytest.raises(
        lf.ConfigError, match=rf"{type(layer).__name__} at '{layer.name}' .*has no ONNX converter"
    ):
        lf.to_onnx(model, shape)


@needs_ort
@pytest.mark.parametrize("count_include_pad", [True, False])
@pytest.mark.parametrize("kind", ["max", "avg"])
def test_ceil_mode_windows_where_onnx_runtimes_disagree(kind, count_include_pad):
    # the last window would start in the padding (ONNX's shape inference and runtimes disagree
    # there), a ceil-mode window beyond the padding of a 7x7 map (ONNX Runtime 1.23.2 and 1.31.1
    # average it differently with ONNX's own ceil_mode)
    for shape, args in [((2, 5, 5), (2, 3, 1)), ((1, 7, 7), (2, 2, 0)), ((3, 6, 5), (3, 2, 1))]:
        k, stride, pad = args
        if kind == "max":
            layer = lf.MaxPool2d(k, stride=stride, padding=pad, ceil_mode=True)
        else:
            layer = lf.AvgPool2d(
                k, stride=stride, padding=pad, ceil_mode=True, count_include_pad=count_include_pad
            )
        model = lf.Sequential(lf.Input(shape), layer)
        x = np.random.default_rng(0).standard_normal((2, *shape)).astype(np.float32)
        assert_close(run_onnx(lf.to_onnx(model), [x]), model.predict(x), f"{layer} on {shape}")


class Doubler(lf.Layer):
    """A custom layer without a converter."""

    def forward(self, x):
        return 2 * x


class Relu6(lf.ReLU):
    """A subclass that computes something else: it must not borrow ReLU's converter."""

    def forward(self, x):
        return np.minimum(super().forward(x), 6)


class QuietReLU(lf.ReLU):
    """A subclass that keeps ReLU's forward: it exports as a ReLU."""


@needs_ort
def test_a_layer_without_converter_is_named_with_its_path():
    inner = lf.Sequential(lf.Linear(3, 3), Doubler())
    model = lf.Sequential(lf.Input(3), lf.ReLU(), inner)
    with pytest.raises(
        lf.ConfigError, match=r"to_onnx: Doubler at '2\.1' \(Doubler\(\)\) has no ONNX converter"
    ):
        lf.to_onnx(model)
    with pytest.raises(lf.ConfigError, match=r"Relu6 at '1'"):
        lf.to_onnx(lf.Sequential(lf.Input(3), Relu6()))
    model = lf.Sequential(lf.Input(3), QuietReLU())
    x = np.array([[-1.0, 0.5, 7.0]], dtype=np.float32)
    np.testing.assert_array_equal(run_onnx(lf.to_onnx(model), [x]), model.predict(x))


@needs_ort
def test_a_converter_registered_for_a_custom_layer():
    from learnflux.exchange.onnx_graph import CONVERTERS, converter

    @converter(Doubler)
    def doubler(g, layer, inputs, shapes):
        return g.op("Add", [inputs[0], inputs[0]])

    try:
        model = lf.Sequential(lf.Input(4), Doubler(), lf.Linear(4, 2))
        x = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
        assert_close(run_onnx(lf.to_onnx(model), [x]), model.predict(x), "Doubler")
    finally:
        del CONVERTERS[Doubler]


@needs_ort
def test_graph_model_with_merges_and_nested_models():
    lf.seed(3)
    x = lf.Input((2, 6, 6))
    a = lf.Conv2d(2, 4, 3, padding=1)(x)
    b = lf.Sequential(lf.Conv2d(2, 4, 1), lf.BatchNorm2d(4), lf.ReLU())(x)
    s = lf.Add()([a, b])
    c = lf.Concat(axis=1)([s, lf.MaxPool2d(1)(x)])  # a model input read by several layers
    h = lf.GlobalAvgPool2d()(c)
    out = lf.LogSoftmax(dim=1)(lf.Linear(6, 3)(lf.Dropout(0.5)(h)))
    model = lf.Model(x, out)
    data = np.random.default_rng(1).standard_normal((16, 2, 6, 6)).astype(np.float32)
    with model.training_phase():  # running statistics that are not the initial 0 and 1
        model(data)
    _perturbed(model)
    proto = lf.to_onnx(model)
    assert_close(run_onnx(proto, [data]), model.predict(data), "graph model")
    initializers = {t.name for t in proto.graph.initializer}
    assert set(model.state_dict()) - {k for k in model.state_dict() if k.endswith("num_batches_tracked")} <= (
        initializers
    )


@needs_ort
def test_two_inputs_with_their_names():
    a, b = lf.Input(3), lf.Input(4)
    model = lf.Model([a, b], lf.Concat()([lf.Tanh()(a), lf.Linear(4, 2)(b)]))
    proto = lf.to_onnx(model, input_names=["left", "right"], output_name="scores")
    assert [i.name for i in proto.graph.input] == ["left", "right"]
    assert [o.name for o in proto.graph.output] == ["scores"]
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal((5, 3)).astype(np.float32), rng.standard_normal((5, 4)).astype(np.float32)]
    assert_close(run_onnx(proto, xs), model.predict(xs), "two inputs")


@needs_ort
def test_embedding_model_takes_int64_ids():
    model = lf.Sequential(lf.Embedding(7, 2), lf.Flatten(), lf.Linear(6, 3))
    proto = lf.to_onnx(model, input_shape=(3,))
    assert proto.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.INT64
    ids = np.random.default_rng(0).integers(0, 7, (5, 3))
    assert_close(run_onnx(proto, [ids]), model.predict(ids), "embedding ids")


@needs_ort
@pytest.mark.parametrize(
    "kind, kwargs, n_states",
    [("LSTM", {}, 2), ("GRU", {"bidirectional": True}, 1), ("RNN", {"nonlinearity": "relu"}, 1)],
)
def test_time_major_recurrent_layers_with_initial_states(kind, kwargs, n_states):
    # batch_first=False: x (T, N, in) and the states (L·D, N, H) are already ONNX's layout (the
    # harness covers the initial states batch-first only); the graph's axis 0 is T, resp. L·D
    layer = _perturbed(getattr(lf, kind)(3, 4, num_layers=2, batch_first=False, rng=1, **kwargs))
    d = 2 if kwargs.get("bidirectional") else 1
    inputs = [lf.Input((5, 3))] + [lf.Input((5, 4)) for _ in range(n_states)]
    proto = lf.to_onnx(lf.Model(inputs, layer(inputs)))
    assert [node.op_type for node in proto.graph.node].count(kind) == 2  # one per stacked layer
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal((6, 5, 3)).astype(np.float32)]
    xs += [rng.standard_normal((2 * d, 5, 4)).astype(np.float32) for _ in range(n_states)]
    assert_close(run_onnx(proto, xs), layer.forward(xs), f"time-major {kind}")


def _dims(value_info):
    return [d.dim_param or d.dim_value for d in value_info.type.tensor_type.shape.dim]


@needs_ort
def test_graph_declares_opset_dynamic_batch_and_names(tmp_path):
    model = lf.Sequential(lf.Conv2d(1, 2, 3), lf.Flatten(), lf.Linear(8, 3), lf.Softmax())
    path = tmp_path / "m.onnx"
    proto = lf.export_onnx(model, path, input_shape=(1, 4, 4))
    loaded = onnx.load(str(path))
    assert loaded == proto
    assert [(o.domain, o.version) for o in loaded.opset_import] == [("", OPSET)]
    assert loaded.ir_version == IR_VERSION and loaded.producer_name == "learnflux"
    assert _dims(loaded.graph.input[0]) == ["batch", 1, 4, 4]
    assert _dims(loaded.graph.output[0]) == ["batch", 3]
    assert {t.name for t in loaded.graph.initializer} >= {"0.weight", "0.bias", "2.weight", "2.bias"}
    assert [n.name for n in loaded.graph.node][:1] == ["0/Conv"]
    x = np.random.default_rng(0).standard_normal((2, 1, 4, 4)).astype(np.float32)
    assert_close(run_onnx(loaded, [x]), model.predict(x), "export_onnx")


@needs_ort
def test_exact_and_float64_models_export_in_float32():
    from fractions import Fraction as F

    model = lf.Sequential(lf.Input(2), lf.Linear(2, 1, bias=False)).astype("exact")
    model.layers[1].weight.value = [[F(1, 3), F(-2, 7)]]
    x = np.array([[3.0, 7.0]], dtype=np.float32)
    np.testing.assert_allclose(run_onnx(lf.to_onnx(model), [x]), [[-1.0]], rtol=1e-6)
    model = lf.Sequential(lf.Input(2), lf.Linear(2, 2)).astype("float64")
    proto = lf.to_onnx(model)
    assert proto.graph.initializer[0].data_type == onnx.TensorProto.FLOAT


@needs_ort
def test_identity_model_still_names_its_output():
    proto = lf.to_onnx(lf.Sequential(lf.Input(3), lf.Dropout(0.5)))
    x = np.ones((2, 3), dtype=np.float32)
    np.testing.assert_array_equal(run_onnx(proto, [x]), x)
    assert [o.name for o in proto.graph.output] == ["output"]


@needs_ort
def test_input_shape_errors():
    with pytest.raises(lf.ConfigError, match="per-sample shape of model input is unknown"):
        lf.to_onnx(lf.Sequential(lf.Linear(3, 2)))
    with pytest.raises(lf.ConfigError, match=r"differs from the model's Input layer, \(3,\)"):
        lf.to_onnx(lf.Sequential(lf.Input(3), lf.Linear(3, 2)), input_shape=(4,))
    with pytest.raises(lf.ConfigError, match="Linear at '0' cannot take input of shape"):
        lf.to_onnx(lf.Sequential(lf.Linear(3, 2)), input_shape=5)
    with pytest.raises(lf.ConfigError, match="give input_shape as a list of 2 shapes"):
        a, b = lf.Input(2), lf.Input(2)
        lf.to_onnx(lf.Model([a, b], lf.Add()([a, b])), input_shape=(2,))
    with pytest.raises(lf.ConfigError, match="input_names must be 1 non-empty strings"):
        lf.to_onnx(lf.Sequential(lf.Input(3), lf.ReLU()), input_names=["a", "b"])


def test_without_onnx_the_error_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)  # `import onnx` raises ImportError
    with pytest.raises(lf.ConfigError, match=r"pip install 'learnflux\[onnx\]'"):
        lf.to_onnx(lf.Sequential(lf.Input(3), lf.ReLU()))


def test_export_never_imports_torch(tmp_path):
    code = (
        "import sys, learnflux as lf\n"
        "m = lf.Sequential(lf.Input((1, 8, 8)), lf.Conv2d(1, 2, 3), lf.Flatten(), lf.Linear(72, 3))\n"
        "try:\n"
        f"    lf.export_onnx(m, {str(tmp_path / 'm.onnx')!r})\n"
        "except lf.ConfigError as exc:\n"
        "    assert 'learnflux[onnx]' in str(exc), exc\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parent)


# ---------------------------------------------------------------------- the digits CNN
@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    """`learnflux train` (the README's main job: the digits CNN), 3 epochs."""
    from learnflux.cli import main

    out = tmp_path_factory.mktemp("run")
    assert main(["train", "--epochs", "3", "--out", str(out)]) == 0
    return out


@needs_ort
def test_digits_cnn_exports_with_identical_predictions(digits_run, tmp_path):
    from learnflux.cli.evaluate import load_eval_data

    model_path = digits_run / "model.lf"
    model = lf.load(model_path)
    x, y, _ = load_eval_data("run", model_path, "test", None, None)
    assert len(y) == 270
    path = tmp_path / "digits.onnx"
    lf.export_onnx(model, path)
    got = run_onnx(onnx.load(str(path)), [x.astype(np.float32)])
    expected = model.predict(x)
    assert_close(got, expected, "digits CNN logits")
    np.testing.assert_array_equal(got.argmax(axis=1), expected.argmax(axis=1))
    assert (expected.argmax(axis=1) == y).mean() > 0.8  # a model that learned, not a constant one
