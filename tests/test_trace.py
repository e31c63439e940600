"""lf.trace: recording o^k, δ^k, δw and ŵ step by step, and rendering them."""

from __future__ import annotations

import json
from fractions import Fraction as F

import numpy as np
import pytest

import learnflux as lf
from learnflux.trace import article_name, format_tensor, format_value, layer_outputs, updated_name


def small_model(seed: int = 0) -> lf.Sequential:
    lf.seed(seed)
    return lf.Sequential(lf.Input(3), lf.Linear(3, 4), lf.Tanh(), lf.Linear(4, 2)).astype(np.float64)


def data(n: int = 5, seed: int = 1):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 3)), rng.standard_normal((n, 2))


def infer(model, x):
    with model.inference():
        return model.forward(x)


def test_exports():
    assert lf.trace.record is not None and lf.Trace is lf.trace.Trace
    assert lf.Recorder is lf.trace.Recorder and lf.Step is lf.trace.Step


def test_recorder_step_matches_a_hand_written_training_step():
    x, y = data()
    reference = small_model()
    loss = lf.SquaredError()
    value = loss(reference(x), y)
    d_out = loss.backward()
    d_in = reference.backward(d_out)
    grads = {n: p.grad.copy() for n, p in reference.named_parameters()}
    lf.SGD(reference.parameters(), lr=0.1).step()

    model = small_model()
    rec = lf.Recorder(model, lf.SquaredError(), lf.SGD(model.parameters(), lr=0.1))
    step = rec.step(x, y)
    n = len(model.layers)
    assert len(step.outputs) == n and len(step.deltas) == n + 1
    np.testing.assert_array_equal(step.output(n), small_model().forward(x))  # o^n before the update
    np.testing.assert_array_equal(step.delta(n + 1), d_out)  # δ^(n+1) is the loss's δ
    np.testing.assert_array_equal(step.delta(1), d_in)  # δ^1 is the model input's δ
    assert step.loss == pytest.approx(value)
    assert set(step.grads) == {"w2", "b2", "w4", "b4"}
    np.testing.assert_array_equal(step.grads["w2"], grads["1.weight"])
    np.testing.assert_array_equal(step.grads["b4"], grads["3.bias"])
    for name, p in reference.named_parameters():
        np.testing.assert_array_equal(step.weights_after[article_name(name)], p.value)
    np.testing.assert_array_equal(step.output(1), x)  # o1 is what Input passes on
    # in a chain, δ^k is ∂Loss/∂(input of layer k): the Linear L4 gives δ4 = δ5 · W4
    np.testing.assert_allclose(step.delta(4), step.delta(5) @ step.weights_before["w4"])


def test_recorded_tensors_are_copies_and_the_hook_is_restored():
    x, y = data()
    model = small_model()
    rec = lf.Recorder(model, lf.SquaredError(), lf.SGD(model.parameters(), lr=0.5))
    step = rec.step(x, y)
    before = step.weights_before["w2"].copy()
    after = step.weights_after["w2"].copy()
    rec.step(x, y)  # updates the weights again, in place
    np.testing.assert_array_equal(step.weights_before["w2"], before)
    np.testing.assert_array_equal(step.weights_after["w2"], after)
    assert not np.array_equal(model.layers[1].weight.value, after)
    assert model.record_intermediates is False
    assert [s.index for s in rec.steps] == [1, 2]


def test_graph_model_with_fan_out_records_summed_deltas():
    lf.seed(0)
    inp = lf.Input(2)
    a = lf.Linear(2, 2, bias=False)
    node = a(inp)
    model = lf.Model(inp, lf.Add()([node, node])).astype(np.float64)
    x = np.array([[1.0, 2.0]])
    step = lf.Recorder(model, lf.SquaredError(), None).step(x, np.zeros((1, 2)))
    # o3 = 2·o2, δ for o2 is the sum over both paths: 2·δ(o3)
    np.testing.assert_allclose(step.delta(3), 2 * step.delta(4))
    np.testing.assert_allclose(step.grads["w2"], step.delta(3).T @ x)
    text = lf.trace.record(
        model, lf.SquaredError(), lf.SGD(model.parameters(), lr=0.1), x, np.zeros((1, 2))
    ).to_text()
    assert "δ4" in text and "δw2" in text


def test_record_follows_dataset_order_batches_and_epochs():
    x, y = data(5)
    model = small_model()
    trace = lf.trace.record(
        model, lf.SquaredError(), lf.SGD(model.parameters(), lr=0.01), x, y, batch_size=2, epochs=2
    )
    assert [s.samples for s in trace.steps] == [[0, 1], [2, 3], [4]] * 2
    assert [s.epoch for s in trace.steps] == [1, 1, 1, 2, 2, 2]
    assert [s.index for s in trace.steps] == [1, 2, 3, 4, 5, 6]
    for prev, step in zip(trace.steps, trace.steps[1:], strict=False):
        np.testing.assert_array_equal(step.weights_before["w2"], prev.weights_after["w2"])
    np.testing.assert_array_equal(trace.final.weights["w2"], model.layers[1].weight.value)
    np.testing.assert_allclose(trace.final.outputs[-1], infer(model, x))


def test_record_shuffle_is_reproducible_from_the_seed():
    x, y = data(6)

    def samples(seed):
        model = small_model()
        trace = lf.trace.record(
            model,
            lf.SquaredError(),
            lf.SGD(model.parameters(), lr=0.01),
            x,
            y,
            batch_size=2,
            epochs=2,
            shuffle=True,
            seed=seed,
        )
        return [s.samples for s in trace.steps]

    first = samples(7)
    assert first == samples(7)
    assert sorted(sum(first[:3], [])) == list(range(6))
    # the documented draws: one permutation per epoch from np.random.default_rng(seed), pinned
    assert first == [[5, 2], [0, 4], [1, 3], [5, 0], [4, 1], [3, 2]]
    assert samples(8) == [[0, 3], [5, 1], [2, 4], [3, 5], [0, 1], [2, 4]]


def test_snapshot_runs_in_the_inference_phase_and_restores_the_phase():
    x, y = data(4)
    model = small_model()
    rec = lf.Recorder(model, lf.SquaredError(), None)
    snap = rec.snapshot(x, y)
    assert model.training is True
    assert len(snap.outputs) == 4 and len(snap.losses) == 4
    np.testing.assert_allclose(snap.outputs[-1], infer(model, x))
    per_sample = 0.5 * ((snap.outputs[-1] - y) ** 2).sum(axis=1)
    np.testing.assert_allclose(snap.losses, per_sample)
    outs = layer_outputs(model, x)
    np.testing.assert_allclose(outs[2], np.tanh(outs[1]))


def test_record_errors_are_clear():
    model = small_model()
    opt = lf.SGD(model.parameters(), lr=0.1)
    x, y = data(3)
    with pytest.raises(lf.ConfigError, match="batch_size"):
        lf.trace.record(model, lf.SquaredError(), opt, x, y, batch_size=0)
    with pytest.raises(lf.ConfigError, match="epochs"):
        lf.trace.record(model, lf.SquaredError(), opt, x, y, epochs=0)
    with pytest.raises(lf.ShapeError, match="samples"):
        lf.trace.record(model, lf.SquaredError(), opt, x, y[:2])
    with pytest.raises(lf.ConfigError, match="model"):
        lf.Recorder(lf.Linear(3, 2), lf.SquaredError(), None)
    a, b = lf.Input(2), lf.Input(2)
    two_inputs = lf.Model([a, b], lf.Add()([a, b]))
    with pytest.raises(lf.ConfigError, match="one input"):
        lf.trace.record(two_inputs, lf.SquaredError(), None, [np.ones((1, 2))] * 2, np.ones((1, 2)))
    with pytest.raises(lf.ShapeError, match="Input"):
        lf.Recorder(model, lf.SquaredError(), None).step(np.ones((2, 4)), np.ones((2, 2)))


def test_renderers_text_markdown_json():
    model = lf.Sequential(lf.Input(2), lf.Linear(2, 1), lf.ReLU()).astype("exact")
    model.layers[1].weight.value = [[F(1, 2), F(-1, 3)]]
    x = np.array([[1, 2], [3, 0]])
    y = np.array([[1], [0]])
    trace = lf.trace.record(model, lf.SquaredError(), lf.SGD(model.parameters(), lr="0.1"), x, y)
    text = trace.to_text()
    for token in (
        "L2 = Linear(2 → 1)",
        "δ4",
        "δ3",
        "δ2",
        "δ1",
        "δw2",
        "δb2",
        "ŵ2",
        "b̂2",
        "δ4 if o2 ≥ 0 else 0",
        "δ3 · w2",
        "w2 − α·δw2",
        "(-1/6) ≈ (-0.166666667)",
    ):
        assert token in text, token
    md = trace.to_markdown()
    assert "| sample | x | o1 | o2 | o3 | y | loss |" in md
    assert "| `δ3` | `δ4 if o2 ≥ 0 else 0` |" in md
    doc = json.loads(trace.to_json())
    assert doc["dtype"] == "exact" and doc["lr"] == "1/10" and doc["batch_size"] == 1
    step = doc["steps"][0]
    assert set(step) >= {"epoch", "samples", "outputs", "loss", "deltas", "grads", "weights_after"}
    assert step["outputs"]["o2"] == [["-1/6"]]
    assert step["deltas"]["d4"] == [["-1"]] and step["deltas"]["d3"] == [["0"]]  # ReLU blocks
    assert doc["steps"][1]["deltas"]["d4"] == [["3/2"]]
    assert doc["initial"]["weights"]["w2"] == ["1/2", "-1/3"]  # a one-row matrix is flat
    assert doc["final"]["weights"]["b2"] == ["-3/20"]
    assert set(doc["final"]) >= {"weights", "outputs", "losses"}


def test_number_formatting():
    assert format_value(F(-17, 290000)) == "-17/290000"
    assert format_value(F(-17, 290000), decimals=True) == "-17/290000 ≈ -5.86206897e-05"
    assert format_value(F(3)) == "3"
    assert format_value(np.float32(0.1)) == "0.1"
    assert format_tensor(np.array([F(1, 2), F(2)], dtype=object), decimals=True) == "(1/2, 2) ≈ (0.5, 2)"
    assert format_tensor(np.array([[1, 2], [3, 4]])) == "[(1, 2), (3, 4)]"
    assert article_name("1.weight") == "w2" and article_name("0.bias") == "b1"
    assert article_name("2.running_mean") == "running_mean3"
    assert updated_name("w2") == "ŵ2"
