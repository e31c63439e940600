"""Models: Sequential chains, graphs with fan-out and merges, phases, gradient semantics."""

from __future__ import annotations

import numpy as np
import pytest

import learnflux as lf


def residual_model(seed: int = 0) -> lf.Model:
    """x → Linear → ReLU ─┬─ Linear → Tanh ─┐
    └─────────────────Add → Linear → out   (a residual block)"""
    lf.seed(seed)
    x = lf.Input(4)
    h = lf.ReLU()(lf.Linear(4, 5)(x))
    branch = lf.Tanh()(lf.Linear(5, 5)(h))
    s = lf.Add()([h, branch])
    return lf.Model(x, lf.Linear(5, 2)(s))


def test_sequential_names_layers_and_parameters_by_position():
    model = lf.Sequential(lf.Input(3), lf.Linear(3, 4), lf.ReLU(), lf.Linear(4, 1, bias=False))
    assert [type(layer).__name__ for layer in model.layers] == ["Input", "Linear", "ReLU", "Linear"]
    assert list(dict(model.named_parameters())) == ["1.weight", "1.bias", "3.weight"]
    assert model.parameters() == [p for _, p in model.named_parameters()]
    out = model(np.ones((2, 3)))
    assert out.shape == (2, 1) and out.dtype == np.float32
    assert np.array_equal(model.forward(np.ones((2, 3))), out)


def test_nested_sequential_prefixes_names():
    model = lf.Sequential(lf.Sequential(lf.Linear(2, 3), lf.ReLU()), lf.Linear(3, 1))
    assert list(dict(model.named_parameters())) == ["0.0.weight", "0.0.bias", "1.weight", "1.bias"]
    report = lf.gradcheck(model, np.random.default_rng(0).standard_normal((3, 2)))
    assert report, str(report)


def test_residual_block_gradcheck_including_fan_out():
    model = residual_model()
    x = np.random.default_rng(1).standard_normal((3, 4))
    report = lf.gradcheck(model, x)
    assert report.passed, str(report)
    assert {c.name for c in report.checks} == {"input"} | set(dict(model.named_parameters()))


def test_fan_out_sums_the_deltas_of_every_path():
    # o = a + a where a = W x: δa must be 2·δo, so δW = 2·δo·xᵀ
    x_in = lf.Input(2)
    a = lf.Linear(2, 1, bias=False)
    node = a(x_in)
    model = lf.Model(x_in, lf.Add()([node, node]))
    a.weight.value = [[1.0, 2.0]]
    x = np.array([[3.0, 4.0]])
    model.forward(x)
    d_in = model.backward(np.array([[1.0]], dtype=np.float32))
    np.testing.assert_allclose(a.weight.grad, [[6.0, 8.0]])
    np.testing.assert_allclose(d_in, [[2.0, 4.0]])


def test_concat_and_two_inputs():
    a, b = lf.Input(3), lf.Input(2)
    merged = lf.Concat()([lf.Linear(3, 2)(a), b])
    model = lf.Model([a, b], lf.Linear(4, 1)(merged))
    rng = np.random.default_rng(2)
    xs = [rng.standard_normal((2, 3)), rng.standard_normal((2, 2))]
    assert model(xs).shape == (2, 1)
    report = lf.gradcheck(model, xs)
    assert report.passed, str(report)
    assert {"input[0]", "input[1]"} <= {c.name for c in report.checks}


def test_layer_that_is_not_first_has_its_input_delta_checked():
    # the second Linear's δ_in is what the first Linear's gradient is made of
    model = lf.Sequential(lf.Linear(3, 4), lf.Sigmoid(), lf.Linear(4, 2))
    report = lf.gradcheck(model, np.random.default_rng(3).standard_normal((2, 3)))
    assert report.passed, str(report)


def test_backward_replaces_gradients_and_accumulates_only_on_request():
    model = lf.Sequential(lf.Linear(2, 1, bias=False)).astype(np.float64)
    x = np.array([[1.0, 2.0]])
    model.forward(x)
    model.backward(np.array([[1.0]]))
    first = model.layers[0].weight.grad.copy()
    model.forward(x)
    model.backward(np.array([[1.0]]))
    np.testing.assert_array_equal(model.layers[0].weight.grad, first)  # no silent accumulation
    model.forward(x)
    model.backward(np.array([[1.0]]), accumulate=True)
    np.testing.assert_array_equal(model.layers[0].weight.grad, 2 * first)
    model.zero_grad()
    model.forward(x)
    model.backward(np.array([[1.0]]), accumulate=True)
    np.testing.assert_array_equal(model.layers[0].weight.grad, first)


def test_need_input_delta_false_skips_the_input_delta():
    model = lf.Sequential(lf.Input(3), lf.Linear(3, 2), lf.ReLU(), lf.Linear(2, 1))
    model.forward(np.ones((2, 3)))
    assert model.backward(np.ones((2, 1), dtype=np.float32), need_input_delta=False) is None
    assert model.layers[1].weight.grad is not None


def test_phases_inference_keeps_no_cache_and_forbids_learning():
    model = lf.Sequential(lf.Input(3), lf.Linear(3, 2), lf.ReLU())
    opt = lf.SGD(model.parameters(), lr=0.1)
    x = np.ones((1, 3))
    model.forward(x)
    model.backward(np.ones((1, 2), dtype=np.float32))
    model.eval()
    assert model.layers[1]._x is None and model.layers[2]._cache is None
    model.forward(x)
    assert model.layers[1]._x is None
    with pytest.raises(lf.PhaseError, match="inference phase"):
        model.backward(np.ones((1, 2), dtype=np.float32))
    with pytest.raises(lf.PhaseError, match="inference phase"):
        opt.step()
    model.train()
    model.forward(x)
    model.backward(np.ones((1, 2), dtype=np.float32))
    opt.step()


def test_inference_context_manager_restores_the_phase():
    model = lf.Sequential(lf.Linear(2, 2))
    with model.inference():
        assert not model.training and not model.layers[0].training
        model.forward(np.ones((1, 2)))
    assert model.training and model.layers[0].training
    model.eval()
    with model.training_phase():
        assert model.training
    assert not model.training


def test_backward_before_forward_is_a_clear_error():
    model = lf.Sequential(lf.Linear(2, 2))
    with pytest.raises(lf.PhaseError, match="before forward"):
        model.backward(np.ones((1, 2), dtype=np.float32))


def test_a_layer_used_twice_is_refused():
    layer = lf.Linear(2, 2)
    with pytest.raises(lf.ConfigError, match="appears twice"):
        lf.Sequential(layer, layer)


def test_graph_model_config_round_trip():
    model = residual_model()
    clone = lf.Model.from_config(model.get_config())
    clone.load_state_dict(model.state_dict())
    x = np.random.default_rng(4).standard_normal((2, 4)).astype(np.float32)
    np.testing.assert_array_equal(model.predict(x), clone.predict(x))


def test_batch_gradient_is_the_mean_of_per_sample_gradients():
    rng = np.random.default_rng(5)
    model = lf.Sequential(lf.Linear(3, 2), lf.Tanh(), lf.Linear(2, 2)).astype(np.float64)
    loss = lf.SquaredError()
    x, y = rng.standard_normal((4, 3)), rng.standard_normal((4, 2))
    per_sample = []
    for i in range(4):
        loss(model(x[i : i + 1]), y[i : i + 1])
        model.backward(loss.backward())
        per_sample.append([p.grad.copy() for p in model.parameters()])
    batch_loss = loss(model(x), y)
    model.backward(loss.backward())
    for k, p in enumerate(model.parameters()):
        np.testing.assert_allclose(p.grad, np.mean([g[k] for g in per_sample], axis=0), rtol=1e-12)
    per_sample_losses = [loss(model(x[i : i + 1]), y[i : i + 1]) for i in range(4)]
    assert batch_loss == pytest.approx(np.mean(per_sample_losses), rel=1e-12)


def test_model_summary_method_matches_lf_summary():
    model = lf.Sequential(
        lf.Input((1, 8, 8)), lf.Conv2d(1, 4, 3, padding=1), lf.ReLU(), lf.Flatten(), lf.Linear(256, 10)
    )
    table = model.summary()
    assert table.total_params == 4 * 9 + 4 + 256 * 10 + 10
    assert str(table) == str(lf.summary(model))
    assert "Conv2d(1 → 4, 3×3" in str(table)
    assert lf.Sequential(lf.Linear(3, 2)).summary((3,)).total_params == 8


def test_sequential_indexing_length_and_iteration():
    layers = [lf.Linear(4, 8), lf.ReLU(), lf.Linear(8, 2)]
    model = lf.Sequential(*layers)
    assert model[0] is layers[0] and model[-1] is layers[2]
    assert len(model) == 3 and list(model) == layers
    with pytest.raises(TypeError, match="cannot be sliced"):
        model[1:]


@pytest.mark.parametrize("kernel_set", ["compiled", "numpy"])
def test_a_float64_delta_into_a_float32_model_is_computed_in_float32(kernel_set):
    """``model.backward`` casts δ to the model's dtype: a float64 δ (``np.ones(out.shape)``) into a
    float32 CNN used to reach the compiled convolution's backward with mismatched dtypes."""
    from learnflux import kernels

    if kernel_set == "compiled" and not kernels.available():
        pytest.skip("compiled kernels not built")
    x = np.random.default_rng(0).standard_normal((2, 1, 6, 6)).astype(np.float32)
    grads = []
    with kernels.using(kernel_set):
        for dt in (np.float64, np.float32):
            rng = np.random.default_rng(1)
            model = lf.Sequential(
                lf.Conv2d(1, 2, 3, padding=1, rng=rng),
                lf.ReLU(),
                lf.MaxPool2d(2),
                lf.Flatten(),
                lf.Linear(18, 3, rng=rng),
            ).astype(np.float32)
            model.train()
            out = model.forward(x)
            d_in = model.backward(np.ones(out.shape, dt))
            assert d_in.dtype == np.float32
            grads.append([p.grad for p in model.parameters()])
    for a, b in zip(*grads, strict=True):
        assert a.dtype == np.float32
        np.testing.assert_array_equal(a, b)
