"""Conv2d beyond the shared harness: the series' 3×3 "same" example by hand in exact arithmetic,
a naive loop reference, shapes, initialisation, configuration and clear errors."""

from __future__ import annotations

import json
from fractions import Fraction as F

import numpy as np
import pytest

import learnflux as lf
from learnflux import kernels
from learnflux.numbers import exact_array


def naive_conv(x, w, b, stride, pads, dilation, groups):
    """Direct transcription of the forward formula (loops), float64."""
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    top, bottom, left, right = pads
    xp = np.zeros((n, c, h + top + bottom, wd + left + right))
    xp[:, :, top : top + h, left : left + wd] = x
    sh, sw = stride
    dh, dw = dilation
    ho = (xp.shape[2] - dh * (kh - 1) - 1) // sh + 1
    wo = (xp.shape[3] - dw * (kw - 1) - 1) // sw + 1
    og = o // groups
    out = np.zeros((n, o, ho, wo))
    for oc in range(o):
        g = oc // og
        for a in range(ho):
            for bb in range(wo):
                for ci in range(cg):
                    for i in range(kh):
                        for j in range(kw):
                            out[:, oc, a, bb] += (
                                w[oc, ci, i, j] * xp[:, g * cg + ci, a * sh + i * dh, bb * sw + j * dw]
                            )
        if b is not None:
            out[:, oc] += b[oc]
    return out


# ---------------------------------------------------------------------- the hand example
def hand_layer():
    """The docs' walk-through: one 3×3 kernel, "same" padding, bias 1/2, in exact arithmetic."""
    layer = lf.Conv2d(1, 1, 3, padding="same").astype("exact")
    layer.weight.value = np.array([[[[1, 0, -1], [2, 1, 0], [0, -1, 1]]]])
    layer.bias.value = np.array([F(1, 2)])
    return layer


HAND_X = np.array([[[[1, 2, 0], [0, 1, 3], [2, 0, 1]]]])


def test_hand_example_forward_exact():
    layer = hand_layer()
    out = layer(HAND_X)
    # e.g. the centre: 1·1 + 2·0 + 0·(−1) + 0·2 + 1·1 + 3·0 + 2·0 + 0·(−1) + 1·1 + ½ = 7/2;
    # the top-left corner sees only x[0:2, 0:2] against K[1:3, 1:3]: 1·1 + 2·0 + 0·(−1) + 1·1 + ½
    expected = [[F(5, 2), F(13, 2), F(3, 2)], [F(-7, 2), F(7, 2), F(13, 2)], [F(3, 2), F(3, 2), F(5, 2)]]
    assert out.dtype == object
    assert out[0, 0].tolist() == expected
    assert all(isinstance(v, F) for v in out.reshape(-1))


def test_hand_example_backward_exact():
    layer = hand_layer()
    out = layer(HAND_X)
    d_in = layer.backward(np.full(out.shape, F(1, 4), dtype=object))
    # δx: each pixel sums K over the taps that reached it, times 1/4 (centre: ΣK = 3 → 3/4)
    assert d_in[0, 0].tolist() == [
        [F(1), F(3, 4), F(0)],
        [F(3, 4), F(3, 4), F(0)],
        [F(1, 2), F(3, 4), F(1, 4)],
    ]
    # δW[i, j]: the 3×3 block of the padded input at (i, j), summed, times 1/4 (centre: Σx = 10)
    assert layer.weight.grad[0, 0].tolist() == [
        [F(1), F(7, 4), F(3, 2)],
        [F(3, 2), F(5, 2), F(7, 4)],
        [F(3, 4), F(7, 4), F(5, 4)],
    ]
    assert layer.bias.grad.tolist() == [F(9, 4)]  # nine positions × 1/4
    assert all(isinstance(v, F) for v in d_in.reshape(-1))


def test_exact_sgd_step_on_hand_example():
    model = lf.Sequential(hand_layer())
    model.astype("exact")
    out = model(HAND_X)
    model.backward(np.full(out.shape, F(1, 4), dtype=object))
    lf.SGD(model.parameters(), lr=F(1, 10)).step()
    assert model.layers[0].bias.value.tolist() == [F(1, 2) - F(9, 40)]


# ---------------------------------------------------------------------- against loops
CONFIGS = [
    dict(in_channels=2, out_channels=3, kernel_size=3, padding="same"),
    dict(in_channels=2, out_channels=2, kernel_size=4, padding="same", dilation=(1, 2)),
    dict(in_channels=4, out_channels=2, kernel_size=(2, 3), stride=(2, 1), padding=(1, 0), groups=2),
    dict(in_channels=3, out_channels=6, kernel_size=3, stride=3, groups=3, bias=False),
    dict(in_channels=1, out_channels=2, kernel_size=1),
]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: json.dumps(c))
def test_matches_naive_loops(config):
    rng = np.random.default_rng(0)
    layer = lf.Conv2d(**config, rng=1).astype(np.float64)
    if layer.use_bias:
        layer.bias.value = rng.standard_normal(layer.out_channels)
    x = rng.standard_normal((2, layer.in_channels, 7, 8))
    out = layer(x)
    ref = naive_conv(
        x,
        layer.weight.value,
        layer.bias.value if layer.use_bias else None,
        layer.stride,
        layer._pads,
        layer.dilation,
        layer.groups,
    )
    np.testing.assert_allclose(out, ref, rtol=1e-12, atol=1e-12)
    assert out.shape[1:] == layer.output_shape(x.shape[1:])


def test_same_padding_keeps_size_and_splits_odd_total_like_torch():
    layer = lf.Conv2d(1, 1, 4, padding="same")
    assert layer._pads == (1, 2, 1, 2)  # total 3: 1 before, 2 after (PyTorch's split)
    assert layer.output_shape((1, 5, 6)) == (1, 5, 6)
    assert lf.Conv2d(1, 1, 3, padding="same", dilation=2)._pads == (2, 2, 2, 2)


@pytest.mark.parametrize(
    "kwargs,input_shape,expected",
    [
        (dict(kernel_size=3), (2, 8, 8), (4, 6, 6)),
        (dict(kernel_size=3, stride=2, padding=1), (2, 7, 7), (4, 4, 4)),
        (dict(kernel_size=(3, 1), stride=(1, 2), padding=(0, 1)), (2, 5, 4), (4, 3, 3)),
        (dict(kernel_size=3, dilation=3), (2, 9, 10), (4, 3, 4)),
        (dict(kernel_size=5, padding="valid"), (2, 5, 5), (4, 1, 1)),
    ],
)
def test_output_shape_formula(kwargs, input_shape, expected):
    layer = lf.Conv2d(2, 4, **kwargs)
    assert layer.output_shape(input_shape) == expected
    out = layer(np.zeros((1, *input_shape), dtype=np.float32))
    assert out.shape == (1, *expected)


def test_need_input_delta_false_skips_input_delta_but_fills_gradients():
    rng = np.random.default_rng(1)
    layer = lf.Conv2d(2, 3, 3, padding=1)
    x = rng.standard_normal((2, 2, 5, 5)).astype(np.float32)
    out = layer(x)
    assert layer.backward(np.ones_like(out), need_input_delta=False) is None
    assert layer.weight.grad.shape == (3, 2, 3, 3) and layer.bias.grad.shape == (3,)
    assert layer.weight.grad.dtype == np.float32


def test_float32_end_to_end():
    rng = np.random.default_rng(2)
    layer = lf.Conv2d(3, 4, 3, stride=2, padding=1, groups=1)
    x = rng.standard_normal((2, 3, 9, 9)).astype(np.float32)
    out = layer(x)
    d = layer.backward(np.ones_like(out))
    assert out.dtype == d.dtype == layer.weight.grad.dtype == layer.bias.grad.dtype == np.float32


def test_init_torch_default_bounds_zero_bias_and_seeding():
    layer = lf.Conv2d(4, 8, 3, groups=2, rng=3)
    bound = 1 / np.sqrt(2 * 3 * 3)  # fan_in = in/groups · kh · kw
    w = layer.weight.value
    assert w.shape == (8, 2, 3, 3) and w.dtype == np.float32
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.8 * bound
    assert np.all(layer.bias.value == 0)  # docs/conventions.md, 'Initialisation' (PyTorch draws them)
    np.testing.assert_array_equal(w, lf.Conv2d(4, 8, 3, groups=2, rng=3).weight.value)
    lf.seed(5)
    a = lf.Conv2d(1, 2, 3).weight.value
    lf.seed(5)
    np.testing.assert_array_equal(a, lf.Conv2d(1, 2, 3).weight.value)
    assert np.all(lf.Conv2d(1, 2, 3, init="zeros").weight.value == 0)


def test_config_round_trip_through_json():
    layer = lf.Conv2d(4, 6, (3, 2), stride=(2, 1), padding=(1, 0), dilation=2, groups=2, bias=False)
    config = json.loads(json.dumps(layer.get_config()))
    clone = lf.Conv2d.from_config(config)
    for attr in (
        "in_channels",
        "out_channels",
        "kernel_size",
        "stride",
        "padding",
        "dilation",
        "groups",
        "use_bias",
    ):
        assert getattr(clone, attr) == getattr(layer, attr)
    same = lf.Conv2d.from_config(json.loads(json.dumps(lf.Conv2d(1, 2, 3, padding="same").get_config())))
    assert same.padding == "same" and same._pads == (1, 1, 1, 1)
    assert "3×3" in repr(lf.Conv2d(1, 2, 3)) and "1 → 2" in repr(lf.Conv2d(1, 2, 3))


def test_small_cnn_model_gradcheck_and_exact_run():
    lf.seed(0)
    model = lf.Sequential(
        lf.Conv2d(1, 2, 3, padding="same"),
        lf.ReLU(),
        lf.MaxPool2d(2, ceil_mode=True),
        lf.Conv2d(2, 3, 2, stride=2),
        lf.GlobalAvgPool2d(),
        lf.Linear(3, 2),
    )
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 1, 7, 7))
    assert lf.gradcheck(model, x)
    exact = model.astype("exact")
    out = exact(np.round(x * 4) / 4)
    assert out.dtype == object and out.shape == (2, 2)
    assert all(isinstance(v, F) for v in out.reshape(-1))


# ---------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    "shape,match",
    [
        ((3, 5, 5), r"Conv2d\(2 → 4, 3×3\).*expected input of shape \(batch, 2, height, width\)"),
        ((1, 3, 5, 5), r"expected input of shape \(batch, 2, height, width\), got \(1, 3, 5, 5\)"),
        ((1, 2, 2, 5), r"kernel 3×3.*larger than the padded input 2×5"),
    ],
)
def test_shape_errors_name_the_layer(shape, match):
    layer = lf.Conv2d(2, 4, 3)
    with pytest.raises(lf.ShapeError, match=match):
        layer(np.zeros(shape, dtype=np.float32))


def test_output_shape_errors():
    with pytest.raises(lf.ShapeError, match="larger than the padded input"):
        lf.Conv2d(1, 1, 5, dilation=2).output_shape((1, 8, 8))
    with pytest.raises(lf.ShapeError, match="expected input"):
        lf.Conv2d(1, 1, 3).output_shape((2, 8, 8))


def test_backward_delta_shape_checked():
    layer = lf.Conv2d(1, 2, 3)
    out = layer(np.zeros((1, 1, 5, 5), dtype=np.float32))
    with pytest.raises(lf.ShapeError, match="δ has shape"):
        layer.backward(np.zeros((1, 2, 4, 4), dtype=np.float32))
    assert out.shape == (1, 2, 3, 3)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(in_channels=3, out_channels=4, kernel_size=3, groups=2), "divisible by groups"),
        (dict(in_channels=4, out_channels=3, kernel_size=3, groups=2), "divisible by groups"),
        (dict(in_channels=2, out_channels=2, kernel_size=3, stride=2, padding="same"), "needs stride 1"),
        (dict(in_channels=2, out_channels=2, kernel_size=3, padding="full"), "'same', 'valid'"),
        (dict(in_channels=2, out_channels=2, kernel_size=0), "kernel_size must be a positive"),
        (dict(in_channels=2, out_channels=2, kernel_size=(3, 3, 3)), "kernel_size"),
        (dict(in_channels=2, out_channels=2, kernel_size=3, padding=-1), "non-negative"),
        (dict(in_channels=0, out_channels=2, kernel_size=3), "in_channels must be a positive"),
        (dict(in_channels=2, out_channels=2, kernel_size=3, stride=1.5), "stride"),
    ],
)
def test_bad_arguments_raise_config_error(kwargs, match):
    with pytest.raises(lf.ConfigError, match=match):
        lf.Conv2d(**kwargs)


def test_backward_before_forward_and_in_inference():
    layer = lf.Conv2d(1, 1, 3)
    with pytest.raises(lf.PhaseError, match="before forward"):
        layer.backward(np.zeros((1, 1, 1, 1), dtype=np.float32))
    layer(np.zeros((1, 1, 3, 3), dtype=np.float32))
    layer.eval()
    assert layer._cache is None
    with pytest.raises(lf.PhaseError, match="inference phase"):
        layer.backward(np.zeros((1, 1, 1, 1), dtype=np.float32))


# ---------------------------------------------------------------------- the stride-1 fast path
@pytest.mark.parametrize("chunk", [1, 700, 1 << 20])
@pytest.mark.parametrize(
    "kwargs",
    [
        dict(in_channels=3, out_channels=4, kernel_size=3, padding=1),
        dict(in_channels=4, out_channels=6, kernel_size=(3, 2), padding=(1, 0), groups=2),
        dict(in_channels=2, out_channels=3, kernel_size=3, padding=2, dilation=2),
        dict(in_channels=2, out_channels=2, kernel_size=4, padding="same", bias=False),
        dict(in_channels=3, out_channels=2, kernel_size=1),
    ],
)
@pytest.mark.parametrize("need_input_delta", [True, False])
def test_flat_path_matches_general_path_in_blocks(kwargs, chunk, need_input_delta, monkeypatch):
    """The float stride-1 path (flat-shifted rows, processed in blocks of samples, shared work
    buffers) gives the general im2col path's output and gradients, whatever the block size
    (1 element → one sample per block), and twice in a row (buffers reused)."""
    from learnflux.kernels.reference import conv as conv_ref

    monkeypatch.setattr(conv_ref, "CHUNK_ELEMS", chunk)
    monkeypatch.setattr(conv_ref, "FLAT_MAX_WASTE", 1.0)  # small test maps: force the path
    monkeypatch.setattr(kernels, "_state", dict(kernels._state))
    kernels.use("numpy")  # the NumPy kernels' two paths (restored by monkeypatch)
    rng = np.random.default_rng(3)
    layer = lf.Conv2d(**kwargs, rng=1).astype("float64")
    if layer.use_bias:
        layer.bias.value = rng.uniform(-1, 1, layer.out_channels)
    for _ in range(2):
        x = rng.standard_normal((5, layer.in_channels, 6, 7))
        ho, wo = layer.output_shape(x.shape[1:])[1:]
        out = layer.forward(x)
        assert layer._cache[0] == "flat"
        delta = rng.standard_normal(out.shape)
        d_in = layer.backward(delta, need_input_delta=need_input_delta)
        grads = [p.grad.copy() for p in layer.parameters()]
        bias = layer.bias.value if layer.use_bias else None
        ref, layer._cache = conv_ref._forward_general(
            x, layer.weight.value, bias, layer.geometry, True, ho, wo
        )
        ref_d_in = layer.backward(delta, need_input_delta=need_input_delta)
        np.testing.assert_allclose(out, ref, rtol=1e-12, atol=1e-12)
        for got, p in zip(grads, layer.parameters(), strict=True):
            np.testing.assert_allclose(got, p.grad, rtol=1e-12, atol=1e-12)
        if need_input_delta:
            assert d_in.shape == x.shape and d_in.flags.c_contiguous
            np.testing.assert_allclose(d_in, ref_d_in, rtol=1e-12, atol=1e-12)
        else:
            assert d_in is None
        if need_input_delta and chunk == 1:  # an independent reference: the exact general path
            exact = lf.Conv2d(**kwargs).astype("exact")
            exact.load_state_dict(layer.state_dict())
            exact.forward(exact_array(x))
            ex_d_in = exact.backward(exact_array(delta))
            assert isinstance(ex_d_in.flat[0], F)
            np.testing.assert_allclose(d_in, ex_d_in.astype(float), rtol=1e-10, atol=1e-10)
            np.testing.assert_allclose(grads[0], exact.weight.grad.astype(float), rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(
            out,
            naive_conv(
                x,
                layer.weight.value,
                layer.bias.value if layer.use_bias else None,
                (1, 1),
                layer._pads,
                layer.dilation,
                layer.groups,
            ),
            rtol=1e-10,
            atol=1e-10,
        )


@kernels.using("numpy")
def test_flat_path_keeps_float32():
    layer = lf.Conv2d(3, 4, 3, padding=1)
    x = np.random.default_rng(0).random((4, 3, 20, 20), dtype=np.float32)
    out = layer.forward(x)
    assert layer._cache[0] == "flat"
    d_in = layer.backward(np.ones_like(out))
    assert out.dtype == d_in.dtype == layer.weight.grad.dtype == layer.bias.grad.dtype == np.float32


@kernels.using("numpy")
def test_path_choice_by_wasted_columns():
    """Stride 1 on a wide map takes the fast path; a narrow map (wasted columns > 1/8 of the row),
    a strided convolution and exact arithmetic take the general one."""
    layer = lf.Conv2d(2, 2, 3, padding=1)
    layer.forward(np.zeros((1, 2, 28, 28), dtype=np.float32))
    assert layer._cache[0] == "flat"
    layer.forward(np.zeros((1, 2, 14, 14), dtype=np.float32))
    assert layer._cache[0] == "general"
    strided = lf.Conv2d(2, 2, 3, padding=1, stride=2)
    strided.forward(np.zeros((1, 2, 28, 28), dtype=np.float32))
    assert strided._cache[0] == "general"
    exact = lf.Conv2d(1, 1, 1).astype("exact")
    exact.forward(np.full((1, 1, 2, 2), F(1, 3), dtype=object))
    assert exact._cache[0] == "general"


@pytest.mark.parametrize("length", [1 << 15, (1 << 15) + 5])  # with and without a remainder
@pytest.mark.parametrize("groups", [1, 2])
def test_weight_grad_split_into_parts_equals_one_product(length, groups):
    """A tiny gradient over a long reduction is summed in parts (conv.weight_grad): same result."""
    from learnflux.kernels.gemm import weight_grad

    rng = np.random.default_rng(5)
    delta = rng.standard_normal((groups, 4, length))
    cols = rng.standard_normal((groups, 9, length))
    expected = np.einsum("gml,gkl->gmk", delta, cols)
    np.testing.assert_allclose(weight_grad(delta, cols), expected, rtol=1e-12, atol=1e-9)


def test_first_layer_gradient_on_a_large_batch_matches_torch():
    """LeNet's first layer on a batch large enough to take the split weight-gradient path."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(6)
    x = rng.standard_normal((48, 1, 28, 28))
    layer = lf.Conv2d(1, 16, 3, padding=1, rng=0).astype("float64")
    ref = torch.nn.Conv2d(1, 16, 3, padding=1).double()
    with torch.no_grad():
        ref.weight.copy_(torch.from_numpy(layer.weight.value))
        ref.bias.copy_(torch.from_numpy(layer.bias.value))
    out = layer.forward(x)
    delta = rng.standard_normal(out.shape)
    layer.backward(delta, need_input_delta=False)
    ref(torch.from_numpy(x)).backward(torch.from_numpy(delta))
    np.testing.assert_allclose(layer.weight.grad, ref.weight.grad.numpy(), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(layer.bias.grad, ref.bias.grad.numpy(), rtol=1e-10, atol=1e-10)
