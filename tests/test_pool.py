"""Pooling beyond the shared harness: docs/conventions.md, 'Max pooling' (7×7 → 4×4), arg-max routing
and ties, overlapping windows, average divisors, output sizes against PyTorch, clear errors."""

from __future__ import annotations

import itertools
import json
from fractions import Fraction as F

import numpy as np
import pytest

import learnflux as lf

SEVEN = np.arange(49).reshape(1, 1, 7, 7)


def test_spec_convention_8_seven_by_seven_gives_four_by_four_exactly():
    layer = lf.MaxPool2d(2, ceil_mode=True).astype("exact")
    out = layer(SEVEN)
    assert out.shape == (1, 1, 4, 4) and layer.output_shape((1, 7, 7)) == (1, 4, 4)
    rows = [1, 3, 5, 6]  # the last window holds only row/column 6: a partial window
    assert out[0, 0].tolist() == [[F(7 * r + c) for c in rows] for r in rows]
    delta = np.array([[[[F(i + 1, 16) for i in range(4 * a, 4 * a + 4)] for a in range(4)]]], dtype=object)
    d_in = layer.backward(delta)
    expected = np.full((7, 7), F(0), dtype=object)
    for a, r in enumerate(rows):
        for b, c in enumerate(rows):
            expected[r, c] = delta[0, 0, a, b]  # each window's δ goes to its maximum only
    assert d_in[0, 0].tolist() == expected.tolist()
    assert all(isinstance(v, F) for v in d_in.reshape(-1))


def test_floor_mode_drops_the_partial_windows():
    out = lf.MaxPool2d(2)(SEVEN.astype(np.float32))
    assert out.shape == (1, 1, 3, 3)
    assert out[0, 0].tolist() == [[8, 10, 12], [22, 24, 26], [36, 38, 40]]


def test_ties_go_to_the_first_maximum_in_row_major_order():
    layer = lf.MaxPool2d(2)
    x = np.array([[[[1, 2, 5, 5], [2, 0, 5, 5], [3, 3, 3, 3], [3, 3, 3, 3]]]], dtype=np.float32)
    out = layer(x)
    d = layer.backward(np.ones_like(out))
    assert d[0, 0].tolist() == [[0, 1, 1, 0], [0, 0, 0, 0], [1, 0, 1, 0], [0, 0, 0, 0]]


def test_ties_agree_with_torch_indices():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    x = rng.integers(0, 3, size=(2, 3, 7, 9)).astype(np.float64)  # many ties
    for kwargs in (
        dict(kernel_size=2),
        dict(kernel_size=3, stride=2, padding=1, ceil_mode=True),
        dict(kernel_size=(2, 3), stride=1),
    ):
        layer = lf.MaxPool2d(**kwargs).astype(np.float64)
        out = layer(x)
        up = rng.standard_normal(out.shape)
        d = layer.backward(up)
        tx = torch.from_numpy(x).requires_grad_(True)
        t_out = torch.nn.MaxPool2d(**kwargs)(tx)
        t_out.backward(torch.from_numpy(up))
        np.testing.assert_array_equal(out, t_out.detach().numpy())
        np.testing.assert_allclose(d, tx.grad.numpy(), rtol=1e-12, atol=1e-12)


def test_overlapping_windows_sum_their_deltas():
    layer = lf.MaxPool2d(2, stride=1).astype("exact")
    x = np.array([[[[1, 2, 3], [4, 9, 5], [6, 7, 8]]]])
    out = layer(x)
    assert out[0, 0].tolist() == [[9, 9], [9, 9]]
    d = layer.backward(np.array([[[[F(1), F(2)], [F(3), F(4)]]]], dtype=object))
    assert d[0, 0].tolist() == [[0, 0, 0], [0, 10, 0], [0, 0, 0]]  # the centre won all four


def test_max_pool_padding_is_minus_infinity():
    layer = lf.MaxPool2d(3, stride=2, padding=1)
    x = -np.arange(1, 17, dtype=np.float32).reshape(1, 1, 4, 4)  # all negative
    out = layer(x)
    assert out.shape == (1, 1, 2, 2)
    assert out[0, 0].tolist() == [[-1, -2], [-5, -6]]  # never the 0 of a zero padding


def test_inference_phase_same_values_no_cache():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
    for layer in (lf.MaxPool2d(2), lf.MaxPool2d(3, 2, 1, ceil_mode=True), lf.AvgPool2d(2)):
        train = layer(x)
        layer.eval()
        np.testing.assert_array_equal(layer(x), train)
        assert layer._cache is None


def test_avg_pool_divisors_count_include_pad():
    x = np.ones((1, 1, 4, 4))
    inc = lf.AvgPool2d(3, stride=2, padding=1).astype("exact")(x)
    exc = lf.AvgPool2d(3, stride=2, padding=1, count_include_pad=False).astype("exact")(x)
    # top-left window: 4 real pixels and 5 padding zeros
    assert inc[0, 0].tolist() == [[F(4, 9), F(6, 9)], [F(6, 9), F(9, 9)]]
    assert exc[0, 0].tolist() == [[1, 1], [1, 1]]


def test_avg_pool_backward_spreads_delta_evenly():
    layer = lf.AvgPool2d(2).astype("exact")
    out = layer(np.arange(16).reshape(1, 1, 4, 4))
    assert out[0, 0].tolist() == [[F(5, 2), F(9, 2)], [F(21, 2), F(25, 2)]]
    d = layer.backward(np.array([[[[F(1), F(2)], [F(3), F(4)]]]], dtype=object))
    assert d[0, 0].tolist() == [[F(1, 4)] * 2 + [F(1, 2)] * 2] * 2 + [[F(3, 4)] * 2 + [F(1)] * 2] * 2


def test_global_average_pooling():
    x = np.arange(24, dtype=np.float64).reshape(2, 3, 2, 2)
    layer = lf.GlobalAvgPool2d().astype(np.float64)
    out = layer(x)
    np.testing.assert_array_equal(out, x.mean(axis=(2, 3)))
    d = layer.backward(np.ones((2, 3)))
    np.testing.assert_array_equal(d, np.full(x.shape, 0.25))
    assert lf.AdaptiveAvgPool2d(1)(x.astype(np.float32)).shape == (2, 3, 1, 1)
    assert lf.AdaptiveAvgPool2d((1, 1)).output_shape((3, 5, 5)) == (3, 1, 1)
    assert lf.GlobalAvgPool2d().output_shape((3, 5, 5)) == (3,)


@pytest.mark.parametrize(
    "size,k,s,p",
    [
        (h, k, s, p)
        for h, k, s, p in itertools.product((4, 5, 6, 7), (2, 3), (1, 2, 3), (0, 1))
        if 2 * p <= k and h + 2 * p >= k
    ],
)
def test_output_sizes_match_torch(size, k, s, p):
    torch = pytest.importorskip("torch")
    x = torch.zeros(1, 1, size, size + 1)
    for ceil in (False, True):
        for ours, theirs in (
            (lf.MaxPool2d(k, s, p, ceil), torch.nn.MaxPool2d(k, s, p, ceil_mode=ceil)),
            (lf.AvgPool2d(k, s, p, ceil), torch.nn.AvgPool2d(k, s, p, ceil_mode=ceil)),
        ):
            expected = tuple(theirs(x).shape[1:])
            assert ours.output_shape((1, size, size + 1)) == expected
            assert ours(np.zeros((1, 1, size, size + 1), dtype=np.float32)).shape[1:] == expected


def test_adaptive_average_windows_match_torch_for_every_size():
    """PyTorch's windows ⌊a·H/m⌋ … ⌈(a + 1)·H/m⌉ for outputs smaller than, equal to and larger
    than the input, divisible or not, and None (keep the input's size)."""
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(0).standard_normal((2, 2, 7, 9))
    for size in [(m_h, m_w) for m_h in (1, 2, 3, 5, 7, 10) for m_w in (1, 4, 6, 9, 11)] + [
        (None, 4),
        (3, None),
    ]:
        ours = lf.AdaptiveAvgPool2d(size).astype(np.float64)(x)
        np.testing.assert_allclose(
            ours, torch.nn.AdaptiveAvgPool2d(size)(torch.from_numpy(x)).numpy(), rtol=1e-12
        )


def test_config_round_trip_through_json():
    for layer in (
        lf.MaxPool2d(3, stride=(2, 1), padding=1, ceil_mode=True),
        lf.AvgPool2d((2, 3), count_include_pad=False),
        lf.GlobalAvgPool2d(keepdims=True),
        lf.AdaptiveAvgPool2d(1),
        lf.AdaptiveAvgPool2d((None, 3)),
    ):
        clone = type(layer).from_config(json.loads(json.dumps(layer.get_config())))
        assert clone.get_config() == layer.get_config()
        assert repr(clone) == repr(layer)
    assert lf.MaxPool2d(2).stride == (2, 2) and lf.MaxPool2d(2).get_config() == {"kernel_size": 2}


# ---------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    "make",
    [
        lambda: lf.MaxPool2d(2),
        lambda: lf.AvgPool2d(2),
        lambda: lf.GlobalAvgPool2d(),
        lambda: lf.AdaptiveAvgPool2d(1),
    ],
)
def test_rank_error_names_the_layer(make):
    layer = make()
    with pytest.raises(lf.ShapeError, match=rf"{type(layer).__name__}\(.*expected input of shape"):
        layer(np.zeros((2, 4, 4), dtype=np.float32))


def test_window_larger_than_input():
    with pytest.raises(lf.ShapeError, match=r"MaxPool2d\(kernel_size=3\).*window 3×3 is larger"):
        lf.MaxPool2d(3)(np.zeros((1, 1, 2, 5), dtype=np.float32))
    with pytest.raises(lf.ShapeError, match="larger than the padded input"):
        lf.AvgPool2d(4).output_shape((1, 3, 3))


@pytest.mark.parametrize(
    "make,match",
    [
        (lambda: lf.MaxPool2d(2, padding=2), "at most half the kernel"),
        (lambda: lf.AvgPool2d(0), "kernel_size must be a positive"),
        (lambda: lf.MaxPool2d(2, stride=0), "stride must be a positive"),
        (lambda: lf.AdaptiveAvgPool2d(0), "output_size must be a positive int"),
        (lambda: lf.AdaptiveAvgPool2d((1, 2, 3)), "output_size must be a positive int or a pair"),
    ],
)
def test_bad_arguments(make, match):
    with pytest.raises(lf.ConfigError, match=match):
        make()


def test_backward_delta_shape_checked():
    layer = lf.MaxPool2d(2)
    layer(np.zeros((1, 1, 4, 4), dtype=np.float32))
    with pytest.raises(lf.ShapeError, match="δ has shape"):
        layer.backward(np.zeros((1, 1, 4, 4), dtype=np.float32))
