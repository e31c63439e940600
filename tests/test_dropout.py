"""Dropout beyond the shared harness: statistics of the masks, reproducibility from a seed, the
identity in the inference phase, and the backward pass using the forward's mask."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

import learnflux as lf


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_fraction_dropped_is_p_and_mean_is_preserved(p):
    x = np.ones((200, 500), dtype=np.float32)
    out = lf.Dropout(p, rng=0)(x)
    dropped = np.mean(out == 0)
    n = x.size
    assert abs(dropped - p) < 5 * np.sqrt(p * (1 - p) / n)  # five standard errors
    # kept values are scaled by 1/(1 − p), so the mean stays ≈ 1
    kept = out[out != 0]
    np.testing.assert_allclose(kept, 1 / (1 - p), rtol=1e-6)
    assert abs(out.mean() - 1.0) < 5 * np.sqrt(p / (1 - p) / n)


def test_backward_uses_the_forward_mask():
    layer = lf.Dropout(0.5, rng=3).astype(np.float64)
    x = np.random.default_rng(0).standard_normal((4, 10))
    out = layer(x)
    delta = np.random.default_rng(1).standard_normal((4, 10))
    d_in = layer.backward(delta)
    kept = out != 0
    np.testing.assert_allclose(d_in[kept], 2.0 * delta[kept])
    np.testing.assert_array_equal(d_in[~kept], 0.0)
    np.testing.assert_allclose(out[kept], 2.0 * x[kept])


def test_same_seed_same_masks_different_seed_different_masks():
    x = np.ones((8, 16), dtype=np.float32)
    a = lf.Dropout(0.5, rng=7)(x)
    b = lf.Dropout(0.5, rng=7)(x)
    c = lf.Dropout(0.5, rng=8)(x)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    # successive batches draw new masks
    layer = lf.Dropout(0.5, rng=7)
    assert not np.array_equal(layer(x), layer(x))


def test_global_seed_makes_runs_reproducible_even_if_the_layer_was_built_before():
    x = np.ones((4, 32), dtype=np.float32)
    layer = lf.Dropout(0.5)  # draws from the global generator
    lf.seed(123)
    first = layer(x)
    lf.seed(123)
    second = layer(x)
    np.testing.assert_array_equal(first, second)
    lf.seed(123)
    np.testing.assert_array_equal(lf.Dropout(0.5)(x), first)


def test_masks_agree_across_dtypes_for_one_seed():
    x = np.ones((3, 20))
    m32 = lf.Dropout(0.4, rng=5)(x.astype(np.float32))
    m64 = lf.Dropout(0.4, rng=5).astype(np.float64)(x)
    np.testing.assert_array_equal(m32 != 0, m64 != 0)


def test_inference_phase_is_the_identity():
    layer = lf.Dropout(0.9, rng=0)
    x = np.random.default_rng(0).standard_normal((5, 5)).astype(np.float32)
    layer.eval()
    assert layer(x) is x
    model = lf.Sequential(lf.Linear(5, 5), lf.Dropout(0.9))
    np.testing.assert_array_equal(model.predict(x), model.layers[0].eval()(x))


def test_p_one_drops_everything_and_p_zero_is_the_identity():
    x = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    everything = lf.Dropout(1.0)
    np.testing.assert_array_equal(everything(x), 0.0)
    np.testing.assert_array_equal(everything.backward(np.ones_like(x)), 0.0)
    nothing = lf.Dropout(0.0)
    np.testing.assert_array_equal(nothing(x), x)
    np.testing.assert_array_equal(nothing.backward(x), x)


def test_exact_arithmetic_scales_by_an_exact_fraction():
    layer = lf.Dropout(0.25, rng=0).astype("exact")
    x = np.full((2, 8), Fraction(3), dtype=object)
    out = layer(x)
    assert set(out.reshape(-1)) <= {Fraction(0), Fraction(4)}  # 3 / (1 − 1/4) = 4


def test_gradcheck_replays_the_mask():
    report = lf.gradcheck(lf.Dropout(0.5, rng=2), np.random.default_rng(0).standard_normal((3, 6)))
    assert report.passed, str(report)


def test_invalid_p_is_rejected():
    with pytest.raises(lf.ConfigError, match="probability"):
        lf.Dropout(1.5)
    with pytest.raises(lf.ConfigError):
        lf.Dropout(-0.1)
    with pytest.raises(lf.PhaseError, match="before forward"):
        lf.Dropout(0.5).backward(np.ones((2, 2), dtype=np.float32))
