"""Graphs built only from configs and saved files, and the numbering of branched graphs.

A config (``Model.from_config``, a saved ``.lf`` file) can wire a model input straight into
several layers, or two model inputs straight into one merge: shapes the functional API never
builds (there, an ``Input`` layer sits between the data and its consumers). The δ of such an
input is the **sum** over every layer it feeds; every parameter of every branch gets a gradient.

The numbering of a graph's layers (topological order, first inbound first) is also the naming of
its ``state_dict``: it is pinned here, since weights saved from one build are loaded by name into
another.
"""

from __future__ import annotations

import numpy as np
import pytest

import learnflux as lf


def _spec(name, **config):
    return {"class": name, "config": config}


def _model_from(nodes):
    return lf.Model.from_config({"nodes": [{"layer": spec, "inbound": ins} for spec, ins in nodes]})


def _fan_out_model():
    """The model input feeds two Linear layers directly (and the Add), no Input layer between."""
    return _model_from(
        [
            (_spec("Linear", in_features=3, out_features=3), [-1]),
            (_spec("Linear", in_features=3, out_features=3), [-1]),
            (_spec("Add"), [0, 1, -1]),
        ]
    )


def _merges_of_merges_model():
    """Two model inputs; input 0 feeds five layers directly; merges of merges.

    0 Linear(3→4) ← x0     1 Linear(3→4) ← x0     2 Linear(3→4) ← x1
    3 Add ← 0, 1, 2        4 Concat ← 3, x0 (7)   5 Concat ← x1, x0 (6, axis -1)
    6 Concat ← 4, 5 (13)   7 Tanh ← 6             8 Linear(13→2) ← 7
    """
    return _model_from(
        [
            (_spec("Linear", in_features=3, out_features=4), [-1]),
            (_spec("Linear", in_features=3, out_features=4), [-1]),
            (_spec("Linear", in_features=3, out_features=4), [-2]),
            (_spec("Add"), [0, 1, 2]),
            (_spec("Concat", axis=1), [3, -1]),
            (_spec("Concat", axis=-1), [-2, -1]),
            (_spec("Concat", axis=1), [4, 5]),
            (_spec("Tanh"), [6]),
            (_spec("Linear", in_features=13, out_features=2), [7]),
        ]
    )


def _saved_and_loaded(model, tmp_path):
    path = tmp_path / "model.lf"
    lf.save(model, path)
    return lf.load(path)


@pytest.mark.parametrize("source", ["config", "file"])
def test_an_input_feeding_several_layers_gets_the_sum_of_their_deltas(source, tmp_path):
    model = _fan_out_model().astype(np.float64)
    if source == "file":
        model = _saved_and_loaded(model, tmp_path)
    w0, w1 = model.layers[0].weight.value, model.layers[1].weight.value
    x = np.random.default_rng(0).standard_normal((4, 3))
    up = np.random.default_rng(1).standard_normal((4, 3))
    out = model(x)
    np.testing.assert_allclose(
        out, x @ w0.T + model.layers[0].bias.value + x @ w1.T + model.layers[1].bias.value + x
    )
    d_in = model.backward(up)
    # three paths from the input to the output: through each Linear and straight into the Add
    np.testing.assert_allclose(d_in, up @ w0 + up @ w1 + up, rtol=1e-12)
    for name, p in model.named_parameters():
        assert p.grad is not None, name
    np.testing.assert_allclose(model.layers[0].weight.grad, up.T @ x, rtol=1e-12)
    np.testing.assert_allclose(model.layers[1].weight.grad, up.T @ x, rtol=1e-12)
    report = lf.gradcheck(model, x)
    assert report.passed, str(report)


@pytest.mark.parametrize("source", ["config", "file"])
def test_merges_of_merges_with_two_inputs_wired_directly(source, tmp_path):
    lf.seed(3)
    model = _merges_of_merges_model()
    if source == "file":
        model = _saved_and_loaded(model, tmp_path)
    rng = np.random.default_rng(2)
    xs = [rng.standard_normal((3, 3)), rng.standard_normal((3, 3))]
    report = lf.gradcheck(model, xs)
    assert report.passed, str(report)
    checked = {c.name for c in report.checks}
    assert checked == {"input[0]", "input[1]"} | set(dict(model.named_parameters()))
    # the same δ through a single forward/backward of the float64 model, every branch trained
    model64 = model.astype(np.float64)
    out = model64(xs)
    d = model64.backward(np.ones_like(out))
    assert isinstance(d, list) and len(d) == 2 and all(di.shape == (3, 3) for di in d)
    assert all(p.grad is not None for p in model64.parameters())


def test_config_and_file_models_match_the_functional_twin():
    # the functional API puts an Input layer between the data and its two consumers; the config
    # wires the data straight into them: same numbers either way
    lf.seed(0)
    x_in = lf.Input(3)
    a, b = lf.Linear(3, 3), lf.Linear(3, 3)
    twin = lf.Model(x_in, lf.Add()([a(x_in), b(x_in), x_in])).astype(np.float64)
    model = _fan_out_model().astype(np.float64)
    model.layers[0].load_state_dict(a.state_dict())
    model.layers[1].load_state_dict(b.state_dict())
    x = np.random.default_rng(4).standard_normal((5, 3))
    up = np.random.default_rng(5).standard_normal((5, 3))
    np.testing.assert_allclose(model(x), twin(x), rtol=1e-12)
    np.testing.assert_allclose(model.backward(up), twin.backward(up), rtol=1e-12)
    np.testing.assert_allclose(model.layers[0].weight.grad, a.weight.grad, rtol=1e-12)
    np.testing.assert_allclose(model.layers[1].weight.grad, b.weight.grad, rtol=1e-12)


def _branched():
    """x ─ Input ─┬─ Linear(4→3) ───────────────┐
    ├─ Linear(4→3) ─ Tanh ────── Add ─┐
    └─ Linear(4→2) ───────────────── Concat ─ Linear(5→2)"""
    x = lf.Input(4)
    a = lf.Linear(4, 3)(x)
    c = lf.Tanh()(lf.Linear(4, 3)(x))
    s = lf.Add()([a, c])
    d = lf.Concat()([s, lf.Linear(4, 2)(x)])
    return lf.Model(x, lf.Linear(5, 2)(d))


# topological order, first inbound first: the Add's first branch (a) is numbered before its
# second (Linear → Tanh), and both before the Concat's second input
GOLDEN_LAYERS = ["Input(4)", "Linear(4 → 3)", "Linear(4 → 3)", "Tanh()", "Add()", "Linear(4 → 2)"]
GOLDEN_LAYERS += ["Concat(1)", "Linear(5 → 2)"]
GOLDEN_PLAN = [[-1], [0], [0], [2], [1, 3], [0], [4, 5], [6]]
GOLDEN_STATE = ["1.weight", "1.bias", "2.weight", "2.bias", "5.weight", "5.bias", "7.weight", "7.bias"]


def _describe(layer):
    if isinstance(layer, lf.Concat):
        return f"Concat({layer.axis})"
    return layer.summary_name()


def test_branched_graph_layer_numbering_and_state_dict_names_are_pinned(tmp_path):
    lf.seed(0)
    model = _branched()
    assert [_describe(layer) for layer in model.layers] == GOLDEN_LAYERS
    assert [layer.name for layer in model.layers] == [str(i) for i in range(8)]
    assert [n["inbound"] for n in model.get_config()["nodes"]] == GOLDEN_PLAN
    assert list(model.state_dict()) == GOLDEN_STATE
    shapes = {name: value.shape for name, value in model.state_dict().items()}
    assert shapes["1.weight"] == (3, 4) and shapes["5.weight"] == (2, 4) and shapes["7.weight"] == (2, 5)
    # the names (and the numbering) survive a config round trip and a file round trip
    for clone in (lf.Model.from_config(model.get_config()), _saved_and_loaded(model, tmp_path)):
        assert [_describe(layer) for layer in clone.layers] == GOLDEN_LAYERS
        assert list(clone.state_dict()) == GOLDEN_STATE


def test_weights_saved_from_one_build_load_into_the_same_layers_of_another():
    # two builds of the same code are numbered alike: the second branch's Linear (layer 2,
    # followed by Tanh) receives the second branch's weights, not the first's
    lf.seed(1)
    first = _branched().astype(np.float64)
    lf.seed(2)
    second = _branched().astype(np.float64)
    second.load_state_dict(first.state_dict())
    x = np.random.default_rng(6).standard_normal((3, 4))
    np.testing.assert_array_equal(first(x), second(x))
    tanh_input = second.layers[2]
    np.testing.assert_array_equal(tanh_input.weight.value, first.layers[2].weight.value)
    assert isinstance(second.layers[3], lf.Tanh) and second._plan[3] == (2,)


def test_a_merge_layer_returning_too_few_deltas_is_an_error_not_a_silent_truncation():
    class HalfAdd(lf.Add):
        def backward(self, delta_out, need_input_delta=True):
            return super().backward(delta_out, need_input_delta)[:2]

    x = lf.Input(2)
    branches = [lf.Linear(2, 2)(x) for _ in range(3)]
    model = lf.Model(x, HalfAdd()(branches))
    out = model(np.ones((1, 2), dtype=np.float32))
    with pytest.raises(lf.ShapeError, match="2 δ for 3 inputs"):
        model.backward(np.ones_like(out))
    report = lf.gradcheck(HalfAdd(), [np.ones((1, 2))] * 3)
    assert not report.passed and "δ count: 2 for 3 inputs" in str(report)


def test_gradcheck_fails_a_parameter_that_received_no_gradient():
    class Frozen(lf.Linear):
        def backward(self, delta_out, need_input_delta=True):
            return delta_out @ self.weight.value  # forgets both gradients

    report = lf.gradcheck(Frozen(3, 2), np.random.default_rng(0).standard_normal((2, 3)))
    assert not report.passed
    assert {c.name for c in report.checks if not c.passed} == {"weight", "bias"}


def _gradients(model, x, up, need_input_delta):
    model.zero_grad()
    model(x)
    model.backward(up, need_input_delta=need_input_delta)
    return {name: None if p.grad is None else p.grad.copy() for name, p in model.named_parameters()}


@pytest.mark.parametrize("which", ["merge-second-input-learns", "branched", "config-fan-out"])
def test_training_backward_reaches_every_branch_without_the_input_delta(which):
    # fit asks for no input δ (need_input_delta=False): the backward pass then skips the δ no
    # learning layer needs, but must still reach a learning branch behind any input of a merge,
    # here behind the Add's *second* input while its first comes straight from the Input
    lf.seed(5)
    if which == "merge-second-input-learns":
        x = lf.Input(3)
        model = lf.Model(x, lf.ReLU()(lf.Add()([x, lf.Linear(3, 3)(x)])))
    elif which == "branched":
        model = _branched()
    else:
        model = _fan_out_model()
    model.astype(np.float64)
    rng = np.random.default_rng(7)
    x = rng.standard_normal((4, model.layers[0].shape[0] if isinstance(model.layers[0], lf.Input) else 3))
    up = rng.standard_normal(model(x).shape)
    full = _gradients(model, x, up, need_input_delta=True)
    lean = _gradients(model, x, up, need_input_delta=False)
    assert all(g is not None for g in full.values())
    for name, g in full.items():
        assert lean[name] is not None, f"{name}: no gradient when the input δ is not asked for"
        np.testing.assert_array_equal(lean[name], g, err_msg=name)
