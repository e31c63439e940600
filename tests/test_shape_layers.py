"""Flatten and Reshape, the issue-3 activations (GELU with its erf, SiLU, Softmax, LogSoftmax) and
Embedding beyond the shared harness: exact arithmetic, numerical stability, clear errors."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

import learnflux as lf
from learnflux.layers.activations import erf, erfc

# ---------------------------------------------------------------------- Flatten / Reshape


def test_flatten_output_shapes_follow_pytorch():
    x = np.zeros((2, 3, 4, 5), dtype=np.float32)
    assert lf.Flatten()(x).shape == (2, 60)
    assert lf.Flatten(2)(x).shape == (2, 3, 20)
    assert lf.Flatten(1, 2)(x).shape == (2, 12, 5)
    assert lf.Flatten(-2)(x).shape == (2, 3, 20)
    assert lf.Flatten().output_shape((3, 4, 5)) == (60,)
    assert lf.Flatten(1, -2).output_shape((3, 4, 5)) == (12, 5)


def test_reshape_output_shapes():
    x = np.arange(24, dtype=np.float32).reshape(2, 12)
    out = lf.Reshape((3, 4))(x)
    assert out.shape == (2, 3, 4)
    np.testing.assert_array_equal(out[1], np.arange(12, 24).reshape(3, 4))
    assert lf.Reshape((2, -1)).output_shape((12,)) == (2, 6)
    assert lf.Reshape((-1,)).output_shape((1, 28, 28)) == (784,)


def test_flatten_then_reshape_replay_exactly():
    x = np.array([[[Fraction(1, 3), Fraction(-2)], [Fraction(5, 7), Fraction(0)]]], dtype=object)
    model = lf.Sequential(lf.Flatten(), lf.Reshape((2, 2))).astype("exact")
    out = model(x)
    assert out.dtype == object and out.shape == (1, 2, 2)
    assert all(isinstance(v, Fraction) for v in out.reshape(-1))
    np.testing.assert_array_equal(out, x)
    delta = np.array([[Fraction(1, 2), Fraction(1, 5), Fraction(-1), Fraction(3)]], dtype=object)
    d = lf.Flatten().astype("exact")
    d(x)
    assert d.backward(delta).shape == (1, 2, 2)
    assert d.backward(delta)[0, 1, 0] == Fraction(-1)


def test_shape_layer_errors():
    with pytest.raises(lf.ConfigError, match="batch axis"):
        lf.Flatten(0)
    with pytest.raises(lf.ShapeError, match="Flatten"):
        lf.Flatten(2)(np.zeros((2, 3), dtype=np.float32))
    with pytest.raises(lf.ShapeError, match=r"cannot reshape a sample of shape \(5,\)"):
        lf.Reshape((2, 3))(np.zeros((2, 5), dtype=np.float32))
    with pytest.raises(lf.ShapeError, match="cannot reshape"):
        lf.Reshape((2, -1))(np.zeros((2, 5), dtype=np.float32))
    with pytest.raises(lf.ConfigError, match="at most one -1"):
        lf.Reshape((-1, -1))
    layer = lf.Reshape((3, 4))
    layer(np.zeros((2, 12), dtype=np.float32))
    with pytest.raises(lf.ShapeError, match="δ has shape"):
        layer.backward(np.zeros((2, 12), dtype=np.float32))


def test_flatten_in_a_cnn_like_model_round_trips(tmp_path):
    model = lf.Sequential(lf.Flatten(), lf.Linear(12, 2), lf.Reshape((2, 1)))
    x = np.random.default_rng(0).standard_normal((3, 3, 2, 2)).astype(np.float32)
    lf.save(model, tmp_path / "m.lf")
    np.testing.assert_array_equal(lf.load(tmp_path / "m.lf").predict(x), model.predict(x))


# ---------------------------------------------------------------------- erf and GELU


def test_erf_agrees_with_math_erf_to_float64_precision():
    xs = np.concatenate(
        [
            np.linspace(-7.0, 7.0, 14001),
            np.geomspace(1e-300, 1.0, 200),
            -np.geomspace(1e-300, 1.0, 200),
            [0.0, 0.5, -0.5, 6.0, 30.0, -30.0],
        ]
    )
    ref = np.array([math.erf(v) for v in xs])
    got = erf(xs)
    assert got.dtype == np.float64
    assert np.max(np.abs(got - ref) / np.maximum(np.abs(ref), 1e-300)) < 1e-15
    ref_c = np.array([math.erfc(v) for v in xs if v < 6])
    got_c = erfc(xs[xs < 6])
    assert np.max(np.abs(got_c - ref_c) / ref_c) < 2e-14
    assert erf(np.array([np.inf, -np.inf])).tolist() == [1.0, -1.0]


def test_erf_float32_stays_float32_and_is_accurate():
    xs = np.linspace(-5, 5, 2001)
    got = erf(xs.astype(np.float32))
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, [math.erf(v) for v in xs.astype(np.float32)], atol=3e-7)


def test_gelu_matches_the_normal_cdf_including_far_tails():
    x = np.array([-40.0, -12.0, -6.0, -1.0, 0.0, 1e-8, 1.0, 6.0, 40.0])
    out = lf.GELU().astype(np.float64)(x)
    expected = [v * 0.5 * math.erfc(-v / math.sqrt(2)) for v in x]
    np.testing.assert_allclose(out, expected, rtol=1e-13, atol=0)  # 1 + erf(x) would give 0
    assert np.all(np.isfinite(lf.GELU()(np.array([[-1e30, 1e30]], dtype=np.float32))))


# ---------------------------------------------------------------------- SiLU, Softmax, LogSoftmax


def test_silu_value():
    x = np.array([[-2.0, 0.0, 3.0]])
    np.testing.assert_allclose(lf.SiLU().astype(np.float64)(x), x / (1 + np.exp(-x)), rtol=1e-14)


def test_softmax_is_stable_and_sums_to_one():
    x = np.array([[1000.0, 1001.0, 999.0], [-1e4, 0.0, 1e4]], dtype=np.float32)
    s = lf.Softmax()(x)
    assert s.dtype == np.float32 and np.all(np.isfinite(s))
    np.testing.assert_allclose(s.sum(axis=1), 1.0, rtol=1e-6)
    log_s = lf.LogSoftmax()(x)
    assert np.all(np.isfinite(log_s))
    np.testing.assert_allclose(np.exp(log_s), s, rtol=1e-5, atol=1e-30)
    np.testing.assert_allclose(log_s[0], [-1.4076059, -0.4076059, -2.4076059], rtol=1e-6)


def test_softmax_backward_formula_on_a_small_case():
    layer = lf.Softmax().astype(np.float64)
    s = layer(np.array([[0.0, np.log(3.0)]]))  # softmax = (1/4, 3/4)
    d = layer.backward(np.array([[1.0, 0.0]]))
    # δ_in = s ⊙ (δ − Σ δ s) = (1/4 (1 − 1/4), 3/4 (0 − 1/4))
    np.testing.assert_allclose(d, [[3 / 16, -3 / 16]])
    np.testing.assert_allclose(s, [[0.25, 0.75]])


def test_softmax_axis_errors():
    with pytest.raises(lf.ConfigError, match="batch axis"):
        lf.Softmax(dim=0)
    with pytest.raises(lf.ShapeError, match="dim 2"):
        lf.LogSoftmax(dim=2)(np.zeros((2, 3), dtype=np.float32))
    with pytest.raises(lf.ConfigError):
        lf.GELU(approximate="fast")
    with pytest.raises(lf.ExactnessError):
        lf.Softmax().astype("exact")


# ---------------------------------------------------------------------- Embedding


def test_embedding_lookup_and_scatter_add_gradient():
    emb = lf.Embedding(5, 2).astype(np.float64)
    emb.weight.value = np.arange(10, dtype=np.float64).reshape(5, 2)
    ids = np.array([[1, 1, 4], [0, 1, 3]])
    out = emb(ids)
    assert out.shape == (2, 3, 2)
    np.testing.assert_array_equal(out[0, 2], [8.0, 9.0])
    emb.backward(np.ones((2, 3, 2)))
    # id 1 appears three times, 2 never
    np.testing.assert_array_equal(emb.weight.grad[:, 0], [1.0, 3.0, 0.0, 1.0, 1.0])


def test_embedding_init_is_standard_normal_and_seeded():
    a = lf.Embedding(200, 50, rng=0).weight.value
    b = lf.Embedding(200, 50, rng=0).weight.value
    np.testing.assert_array_equal(a, b)
    assert a.dtype == np.float32
    assert abs(a.mean()) < 0.02 and abs(a.std() - 1.0) < 0.02


def test_embedding_rejects_bad_ids():
    emb = lf.Embedding(4, 3)
    with pytest.raises(lf.IndexRangeError, match=r"id 4 is out of range; valid ids are 0 … 3"):
        emb(np.array([[0, 4]]))
    with pytest.raises(IndexError):
        emb(np.array([[-1, 2]]))
    with pytest.raises(lf.DtypeError, match="integer"):
        emb(np.array([[0.0, 1.0]]))


def test_embedding_exact_and_in_a_model():
    emb = lf.Embedding(3, 2).astype("exact")
    out = emb(np.array([[2, 0]]))
    assert all(isinstance(v, Fraction) for v in out.reshape(-1))
    emb.backward(np.full((1, 2, 2), Fraction(1, 3), dtype=object))
    assert emb.weight.grad[1, 0] == 0 and emb.weight.grad[2, 1] == Fraction(1, 3)
    lf.seed(0)
    model = lf.Sequential(lf.Embedding(10, 4), lf.Flatten(), lf.Linear(12, 1))
    ids = np.array([[1, 2, 3], [3, 2, 9]])
    out = model(ids)
    assert model.backward(np.ones_like(out), need_input_delta=False) is None
    assert model.layers[0].weight.grad.shape == (10, 4)
