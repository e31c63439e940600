"""The two kernel sets against each other: the compiled kernels must give the NumPy reference's
results (1e-5 relative in float32, 1e-12 in float64) over many random shapes, and the selection
machinery (environment variable, ``use``/``using``, ``info``) must say what runs."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import learnflux as lf
from learnflux import kernels

needs_compiled = pytest.mark.skipif(not kernels.available(), reason="compiled kernels not built")


TOL = {np.float32: dict(rtol=1e-5, atol=1e-5), np.float64: dict(rtol=1e-12, atol=1e-12)}


def _run(kset, make, x, delta_seed=1, need_input_delta=True):
    """Forward + backward of a fresh layer on one kernel set: output, input δ, gradients."""
    with kernels.using(kset):
        layer = make()
        out = layer.forward(x)
        delta = np.random.default_rng(delta_seed).standard_normal(out.shape).astype(out.dtype)
        d_in = layer.backward(delta, need_input_delta=need_input_delta)
        return out, d_in, [p.grad.copy() for p in layer.parameters()]


def _assert_same(a, b, dtype, what):
    scale = max(1.0, float(np.abs(a).max()) if a.size else 1.0)
    tol = TOL[dtype]
    np.testing.assert_allclose(b, a, rtol=tol["rtol"], atol=tol["atol"] * scale, err_msg=what)


def _compare(make, x, dtype, need_input_delta=True):
    ref = _run("numpy", make, x, need_input_delta=need_input_delta)
    got = _run("compiled", make, x, need_input_delta=need_input_delta)
    assert got[0].dtype == ref[0].dtype == dtype
    _assert_same(ref[0], got[0], dtype, "output")
    if need_input_delta:
        assert got[1].shape == x.shape and got[1].dtype == dtype
        _assert_same(ref[1], got[1], dtype, "input δ")
    else:
        assert got[1] is None
    for r, g in zip(ref[2], got[2], strict=True):
        _assert_same(r, g, dtype, "gradient")


def _maybe_strided(x, rng):
    """Half the time a non-contiguous view with the same values."""
    if rng.random() < 0.5:
        return x
    big = np.zeros(x.shape[:-1] + (2 * x.shape[-1],), x.dtype)
    big[..., ::2] = x
    return big[..., ::2]


@needs_compiled
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("seed", range(40))
@pytest.mark.usefixtures("kernel_threads")
def test_conv2d_compiled_equals_numpy(seed, dtype):
    rng = np.random.default_rng(seed)
    groups = int(rng.choice([1, 1, 2, 3]))
    cin = groups * int(rng.integers(1, 4))
    cout = groups * int(rng.integers(1, 4))
    kh, kw = (int(k) for k in rng.integers(1, 5, size=2))
    stride = tuple(int(s) for s in rng.integers(1, 4, size=2))
    dilation = tuple(int(d) for d in rng.integers(1, 3, size=2))
    padding = tuple(int(p) for p in rng.integers(0, 3, size=2))
    h = int(rng.integers(dilation[0] * (kh - 1) + 1, 14))
    w = int(rng.integers(dilation[1] * (kw - 1) + 1, 14))
    batch = int(rng.choice([1, 2, 5]))
    bias = bool(rng.random() < 0.8)
    x = _maybe_strided(rng.standard_normal((batch, cin, h, w)).astype(dtype), rng)

    def make():
        layer = lf.Conv2d(cin, cout, (kh, kw), stride, padding, dilation, groups, bias=bias, rng=seed)
        if bias:
            layer.bias.value = np.random.default_rng(seed).uniform(-1, 1, cout)
        return layer.astype(dtype)

    _compare(make, x, dtype, need_input_delta=bool(rng.random() < 0.8))


@needs_compiled
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("seed", range(30))
@pytest.mark.usefixtures("kernel_threads")
def test_maxpool2d_compiled_equals_numpy(seed, dtype):
    rng = np.random.default_rng(100 + seed)
    kh, kw = (int(k) for k in rng.integers(1, 4, size=2))
    stride = tuple(int(s) for s in rng.integers(1, 4, size=2))
    padding = (int(rng.integers(0, kh // 2 + 1)), int(rng.integers(0, kw // 2 + 1)))
    ceil = bool(rng.random() < 0.5)
    h, w = int(rng.integers(kh, 12)), int(rng.integers(kw, 12))
    shape = (int(rng.choice([1, 3])), int(rng.integers(1, 4)), h, w)
    x = rng.standard_normal(shape).astype(dtype)
    if rng.random() < 0.3:  # ties: the first maximum of a window must win in both sets
        x = np.round(x).astype(dtype)
    x = _maybe_strided(x, rng)
    _compare(lambda: lf.MaxPool2d((kh, kw), stride, padding, ceil).astype(dtype), x, dtype)


@needs_compiled
def test_maxpool2d_large_window_routes_with_int32():
    x = np.random.default_rng(0).standard_normal((2, 2, 17, 17)).astype(np.float32)
    _compare(lambda: lf.MaxPool2d(16, 1), x, np.float32)


def _pool2_input(rng, shape, dtype, values):
    x = rng.standard_normal(shape).astype(dtype)
    if values == "ties":  # few distinct values: many windows hold their maximum twice or more
        x = np.round(x).astype(dtype)
    elif values == "nan":  # the output is NaN, the winner the best offset before the first NaN
        x[rng.random(shape) < 0.15] = np.nan
    elif values == "inf":
        x[rng.random(shape) < 0.2] = -np.inf
        x[rng.random(shape) < 0.05] = np.inf
    return x


@needs_compiled
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("values", ["random", "ties", "nan", "inf"])
@pytest.mark.parametrize(
    "shape",
    [
        (1, 1, 2, 2),
        (1, 3, 5, 7),  # odd: the last row and column are in no window (δ 0 there)
        (2, 2, 28, 28),  # LeNet's maps: rows of 14 and 7 outputs (masked vector steps)
        (3, 2, 14, 14),
        (2, 3, 16, 16),  # 8 outputs a row: two rows per float32 vector
        (1, 2, 33, 35),  # 16 + 1 outputs a row, odd sizes
        (1, 1, 3, 70),  # 35 outputs: two full float32 steps and a partial one, one output row
        (2, 1, 9, 4),
    ],
)
@pytest.mark.usefixtures("kernel_threads")
def test_maxpool2x2_compiled_equals_numpy_exactly(pool2_isa, shape, values, dtype):
    """MaxPool2d(2)'s SIMD kernels against the NumPy set, bit for bit: output, winners, δx
    (also from the NumPy set's winners), the inference output, strided inputs."""
    from learnflux.kernels import compiled
    from learnflux.kernels.reference import pool as ref

    rng = np.random.default_rng(sum(shape))
    x = _maybe_strided(_pool2_input(rng, shape, dtype, values), rng)
    geo = lf.MaxPool2d(2)._geometry(shape[2], shape[3], shape[2] // 2, shape[3] // 2)
    want, want_k = ref.maxpool2d_forward(x, geo, True)
    got, got_k = compiled.maxpool2d_forward(x, geo, True)
    np.testing.assert_array_equal(got, want)  # NaN where NaN
    assert got_k.dtype == want_k.dtype == np.uint8
    np.testing.assert_array_equal(got_k, want_k)
    np.testing.assert_array_equal(compiled.maxpool2d_forward(x, geo, False)[0], want)
    delta = rng.standard_normal(want.shape).astype(dtype)
    want_dx = ref.maxpool2d_backward(delta, want_k, shape, geo)
    for d in (delta, _maybe_strided(delta, np.random.default_rng(1))):
        got_dx = compiled.maxpool2d_backward(d, want_k, shape, geo)
        assert got_dx.dtype == dtype and got_dx.flags.c_contiguous
        np.testing.assert_array_equal(got_dx, want_dx)
    h, w = 2 * geo.out_hw[0], 2 * geo.out_hw[1]
    assert not got_dx[:, :, h:].any() and not got_dx[:, :, :, w:].any()


@needs_compiled
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(1, 1, 7, 9), (1, 16, 28, 28), (5, 4, 15, 14)])
def test_maxpool2x2_layer_batch_and_odd_sizes(shape, dtype):
    """The layer end to end on both sets: batch 1, odd sizes, a forward on one set and the
    backward pass on the other."""
    x = np.random.default_rng(3).standard_normal(shape).astype(dtype)
    _compare(lambda: lf.MaxPool2d(2).astype(dtype), x, dtype)
    delta = np.random.default_rng(4).standard_normal((shape[0], shape[1], shape[2] // 2, shape[3] // 2))
    for first, second in (("compiled", "numpy"), ("numpy", "compiled")):
        got = []
        for kset in (first, second):
            layer = lf.MaxPool2d(2)
            with kernels.using(first):
                layer.forward(x)
            with kernels.using(kset):
                got.append(layer.backward(delta.astype(dtype)))
        np.testing.assert_array_equal(got[0], got[1])


@needs_compiled
@pytest.mark.parametrize(
    "args, shape", [((3, 2, 1), (2, 3, 11, 10)), ((2, 1), (1, 2, 9, 8)), ((4, 3, 2), (2, 2, 13, 12))]
)
def test_maxpool2d_generic_nan_winner_as_numpy(args, shape):
    """Overlapping or padded windows (the generic C loop): with NaNs in the input, the same
    output and the same winners as the NumPy set (the best offset before the first NaN)."""
    from learnflux.kernels import compiled
    from learnflux.kernels.reference import pool as ref

    x = np.random.default_rng(5).standard_normal(shape).astype(np.float32)
    x[np.random.default_rng(6).random(shape) < 0.2] = np.nan
    layer = lf.MaxPool2d(*args)
    out = layer.forward(x)
    geo = layer._geometry(shape[2], shape[3], *out.shape[2:])
    want, want_k = ref.maxpool2d_forward(x, geo, True)
    got, got_k = compiled.maxpool2d_forward(x, geo, True)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(got_k, want_k)


@needs_compiled
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(1, 5), (3, 4, 5, 7), (64, 16, 28, 28), (2, 3, 1, 1)])
@pytest.mark.usefixtures("kernel_threads")
def test_relu_compiled_equals_numpy(shape, dtype):
    rng = np.random.default_rng(len(shape))
    x = rng.standard_normal(shape).astype(dtype)
    x.flat[:: max(1, x.size // 7)] = 0  # the kink: ReLU'(0) = 1 in both sets
    _compare(lambda: lf.ReLU(), x, dtype)
    with kernels.using("compiled"):
        out, mask = kernels.ops().relu_forward(np.array([np.nan, -1.0, 0.0, 2.0], dtype), True)
    assert np.isnan(out[0]) and list(out[1:]) == [0, 0, 2] and list(mask) == [False, False, True, True]


@needs_compiled
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(128, 784, 512), (128, 512, 10), (1, 3, 1), (37, 13, 33), (300, 7, 9)])
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.usefixtures("kernel_threads")
def test_linear_forward_compiled_equals_numpy_bit_for_bit(shape, dtype, training):
    """The compiled output pass of Linear (bias, ReLU and mask after the GEMM; the training
    phase transposes in 8 × 8 register blocks with ragged edges) gives the NumPy kernels' bits,
    NaN and −0 included, with and without bias and ReLU."""
    n, i, o = shape
    rng = np.random.default_rng(n + i + o)
    x = rng.standard_normal((n, i)).astype(dtype)
    w = rng.standard_normal((o, i)).astype(dtype)
    x[0, 0] = np.nan
    x[-1] = 0  # a row of zeros: outputs of exactly ±0 (the bias) and the ReLU's kink
    for bias in (rng.standard_normal(o).astype(dtype), None):
        for relu in (True, False):
            got = kernels.compiled.linear_forward(x, w, bias, training, relu)
            want = kernels.reference.linear_forward(x, w, bias, training, relu)
            for g, e in zip(got, want, strict=True):
                if e is None:
                    assert g is None
                    continue
                assert g.shape == e.shape and g.dtype == e.dtype
                np.testing.assert_array_equal(g, e)
                if g.dtype != np.bool_:
                    np.testing.assert_array_equal(np.signbit(g), np.signbit(e))
                    assert g.flags.c_contiguous == e.flags.c_contiguous


@needs_compiled
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(128, 512), (1, 3), (37, 13), (300, 10)])
def test_relu_backward_colsum_compiled_equals_numpy_bit_for_bit(shape, dtype):
    """ReLU's backward with the bias gradient of the Linear before it, in one C pass: the
    reference's ``δ ⊙ mask`` and ``np.sum(axis=0)`` bit for bit (a masked negative δ is −0, and a
    column of −0 sums to +0 as in NumPy)."""
    rng = np.random.default_rng(sum(shape))
    delta = rng.standard_normal(shape).astype(dtype)
    mask = rng.standard_normal(shape) > 0
    mask[:, 0] = False
    delta[:, 0] = -1  # a column of −0 after the mask
    for colsum in (np.empty(shape[1], dtype), None):
        got_sum = None if colsum is None else colsum.copy()
        got = kernels.compiled.relu_backward_colsum(delta, mask, got_sum)
        want = kernels.reference.relu_backward_colsum(delta, mask, colsum)
        np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(np.signbit(got), np.signbit(want))
        if colsum is not None:
            np.testing.assert_array_equal(got_sum, colsum)
            np.testing.assert_array_equal(np.signbit(got_sum), np.signbit(colsum))


@needs_compiled
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("c", [0.01, 1e-3 / 0.9, np.float64(0.01), np.float32(0.3), 3])
@pytest.mark.usefixtures("kernel_threads")
def test_sub_scaled_compiled_equals_numpy_bit_for_bit(dtype, c):
    """The optimizers' last step ``w ← w − c·u`` in one C pass rounds as NumPy's two passes (no
    fused multiply-add; a float64 NumPy scalar makes a float32 product in double)."""
    rng = np.random.default_rng(7)
    for size in (1, 1000, 512 * 784):
        w = rng.standard_normal(size).astype(dtype)
        u = rng.standard_normal(size).astype(dtype)
        want = w.copy()
        kernels.reference.sub_scaled(want, u, c, np.empty_like(w))
        kernels.compiled.sub_scaled(w, u, c, None)
        np.testing.assert_array_equal(w, want)


@needs_compiled
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.usefixtures("kernel_threads")
def test_surely_finite_compiled_finds_every_nan_and_infinity(dtype):
    """The compiled input check (one pass over the bits) finds a NaN or ±inf wherever it is, in C-
    and Fortran-ordered arrays, and answers True for large finite values (the NumPy kernels'
    dot product may answer False there: it only sends the caller to its element-wise check)."""
    rng = np.random.default_rng(3)
    check = kernels.compiled.surely_finite
    for n in (1, 7, 1000, 300_001):
        x = rng.standard_normal(n).astype(dtype)
        assert check(x) and kernels.reference.surely_finite(x)
        for bad in (np.nan, np.inf, -np.inf):
            for pos in (0, n // 2, n - 1):
                y = x.copy()
                y[pos] = bad
                assert not check(y) and not kernels.reference.surely_finite(y)
    big = np.full((300, 700), np.finfo(dtype).max / 2, dtype)
    assert check(big) and check(np.asfortranarray(big))  # a strided view runs the reference
    big[123, 456] = np.nan
    assert not check(big) and not check(np.asfortranarray(big)) and not check(big[:, ::2])


@needs_compiled
@pytest.mark.parametrize("approximate", ["none", "tanh"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("seed", range(12))
@pytest.mark.usefixtures("kernel_threads")
def test_gelu_compiled_equals_numpy(seed, dtype, approximate):
    rng = np.random.default_rng(200 + seed)
    shape = tuple(int(d) for d in rng.integers(1, 9, size=int(rng.integers(1, 5))))
    if seed == 0:
        shape = (32, 64, 512)  # the language model's size: split over the kernel threads
    scale = float(rng.choice([1.0, 3.0, 10.0, 40.0]))  # ±10 and ±40 reach both tails
    x = (rng.standard_normal(shape) * scale).astype(dtype)
    x.flat[:: max(1, x.size // 5)] = 0
    _compare(lambda: lf.GELU(approximate).astype(dtype), _maybe_strided(x, rng), dtype)


@needs_compiled
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gelu_tails_compiled_equals_numpy_relative(dtype):
    """Far in the negative tail the output is tiny: compared relative to itself, not to the
    array's largest value (float32 to 1e-5, float64 to 1e-12), down to where Φ(x) leaves the
    normal numbers (x = −12 in float32, −37 in float64)."""
    low = 12.0 if dtype == np.float32 else 37.0
    x = np.concatenate([-np.geomspace(1e-30, low, 300), np.geomspace(1e-30, 40, 300), [0.0, -40.0]])
    x = x.astype(dtype)
    got = {}
    for name in ("numpy", "compiled"):
        with kernels.using(name):
            out, saved = kernels.ops().gelu_forward(x, "none", True)
            got[name] = out, saved[1], kernels.ops().gelu_backward(np.ones_like(x), saved, "none")
    rtol = {np.float32: 1e-5, np.float64: 1e-12}[dtype]
    for r, g in zip(got["numpy"], got["compiled"], strict=True):
        assert g.dtype == dtype
        np.testing.assert_allclose(g, r, rtol=rtol, atol=0)
    assert list(got["compiled"][0][-3:]) == [40, 0, 0]  # GELU(40) = 40, GELU(0) = 0, GELU(−40) = −0


@needs_compiled
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "make, shape",
    [
        (lambda: lf.BatchNorm2d(3), (4, 3, 5, 7)),
        (lambda: lf.BatchNorm2d(2, affine=False), (1, 2, 3, 3)),
        (lambda: lf.BatchNorm2d(16), (64, 16, 16, 16)),
        (lambda: lf.BatchNorm1d(5), (7, 5)),
        (lambda: lf.BatchNorm1d(4), (3, 4, 6)),
    ],
)
@pytest.mark.usefixtures("kernel_threads")
def test_batchnorm_compiled_equals_numpy(make, shape, dtype):
    rng = np.random.default_rng(5)
    x = (rng.standard_normal(shape) * 3 + 1).astype(dtype)

    def made():
        layer = make().astype(dtype)
        if layer.affine:
            layer.weight.value = rng.uniform(0.5, 2, layer.num_features)
            layer.bias.value = rng.uniform(-1, 1, layer.num_features)
        return layer

    rng = np.random.default_rng(6)
    ref = _run("numpy", made, x)
    rng = np.random.default_rng(6)
    got = _run("compiled", made, x)
    for r, g in zip([ref[0], ref[1], *ref[2]], [got[0], got[1], *got[2]], strict=True):
        _assert_same(r, g, dtype, "batch norm")


@needs_compiled
def test_exact_arithmetic_keeps_the_object_path_on_the_compiled_set():
    from fractions import Fraction as F

    with kernels.using("compiled"):
        model = lf.Sequential(lf.Conv2d(1, 2, 3, padding=1, rng=0), lf.ReLU(), lf.MaxPool2d(2)).astype(
            "exact"
        )
        out = model(np.full((1, 1, 4, 4), F(1, 3), dtype=object))
    assert isinstance(out.flat[0], F)


@needs_compiled
def test_the_other_kernel_set_can_run_the_backward_pass():
    """The routing of max pooling has one format: a forward pass on one set, backward on the
    other (a user switching sets between the two) gives the same δ."""
    x = np.random.default_rng(0).standard_normal((2, 3, 6, 6)).astype(np.float32)
    delta = np.ones((2, 3, 3, 3), np.float32)
    results = []
    for first, second in (("compiled", "numpy"), ("numpy", "compiled")):
        layer = lf.MaxPool2d(2)
        with kernels.using(first):
            layer.forward(x)
        with kernels.using(second):
            results.append(layer.backward(delta))
    np.testing.assert_array_equal(results[0], results[1])
    conv = lf.Conv2d(3, 2, 3, rng=0)
    with kernels.using("compiled"):
        out = conv.forward(x)
    with kernels.using("numpy"):  # the compiled cache is read by the compiled backward
        assert conv.backward(np.ones_like(out)).shape == x.shape


@needs_compiled
@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="needs Linux's /proc")
def test_no_thread_is_left_running_after_a_call():
    """The pool's workers ("lfk-worker") sleep between calls: none is left spinning to slow the
    next BLAS product, and the pool does not grow from call to call."""
    import time

    def workers() -> list[str]:
        states = []
        for tid in os.listdir("/proc/self/task"):
            try:
                with open(f"/proc/self/task/{tid}/comm") as f:
                    if f.read().strip() != "lfk-worker":
                        continue
                with open(f"/proc/self/task/{tid}/stat") as f:
                    states.append(f.read().rsplit(")", 1)[1].split()[0])
            except OSError:  # the thread ended meanwhile
                pass
        return states

    x = np.random.default_rng(0).standard_normal((64, 16, 28, 28)).astype(np.float32)
    previous = kernels.info()["threads"]
    kernels.set_threads(2)  # the calls below split over two threads
    try:
        with kernels.using("compiled"):
            kernels.ops().relu_forward(x, True)
            before = len(workers())
            assert before >= 1
            for _ in range(3):
                kernels.ops().relu_forward(x, True)
                kernels.ops().maxpool2d_forward(x, lf.MaxPool2d(2)._geometry(28, 28, 14, 14), True)
            time.sleep(0.05)
            states = workers()
        assert len(states) == before
        assert all(s == "S" for s in states), states  # asleep, not running
    finally:
        kernels.set_threads(previous)


def test_use_using_and_info():
    start = kernels.active()
    with kernels.using("numpy") as name:
        assert name == "numpy" == kernels.active()
        assert kernels.info()["kernels"] == "numpy" and kernels.info()["reason"] == "kernels.use('numpy')"
    assert kernels.active() == start
    with pytest.warns(RuntimeWarning, match="not one of"), kernels.using("fastest"):
        assert kernels.active() in ("numpy", "compiled")
    info = lf.info()
    assert info["kernels"] == kernels.active() and info["reason"]


@pytest.mark.parametrize("value, expected", [("numpy", "numpy"), ("auto", None), ("compiled", None)])
def test_environment_variable_chooses_the_set(value, expected):
    expected = expected or ("compiled" if kernels.available() else "numpy")
    code = "import learnflux as lf; print(lf.info()['kernels'])"
    env = dict(os.environ, LEARNFLUX_KERNELS=value)
    done = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", code], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == expected


@needs_compiled
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "args, kwargs, shape",
    [
        ((1, 16, 3), dict(padding=1), (4, 1, 28, 28)),  # LeNet's first layer
        ((16, 32, 3), dict(padding=1), (3, 16, 14, 14)),  # LeNet's second
        ((3, 32, 3), dict(padding=1), (2, 3, 32, 32)),  # VGG's first (few taps: _c/thinconv.c)
        ((5, 7, 3), dict(padding=1), (2, 5, 9, 11)),  # K = 45: thin forward, direct δW
        ((3, 5, 3), dict(padding="same", dilation=2), (2, 3, 9, 7)),
        ((2, 4, (2, 3)), dict(padding=(1, 0), bias=False), (1, 2, 6, 5)),
        ((3, 2, 1), dict(), (3, 3, 4, 4)),
        ((1, 3, 4), dict(padding="same"), (2, 1, 7, 8)),  # even kernel: asymmetric padding
        ((5, 13, (3, 2)), dict(padding=(2, 1), dilation=(1, 2)), (9, 5, 5, 11)),  # odd tiles
        ((7, 9, 5), dict(padding=(0, 4)), (1, 7, 5, 3)),  # a kernel as tall as the input
        ((4, 3, 3), dict(padding=(2, 2)), (2, 4, 1, 1)),  # 1×1 input, the kernel's full reach
    ],
)
@pytest.mark.usefixtures("kernel_threads")
def test_direct_convolution_equals_numpy(args, kwargs, shape, dtype, dconv_isa):
    """Stride 1, one group: the compiled set convolves directly (_c/dconv.c: no columns, no
    BLAS), forward, δW, δb and δx, on every instruction set this CPU has."""
    rng = np.random.default_rng(3)
    x = _maybe_strided(rng.standard_normal(shape).astype(dtype), rng)

    def make():
        layer = lf.Conv2d(*args, rng=2, **kwargs)
        if layer.use_bias:
            layer.bias.value = np.random.default_rng(4).uniform(-1, 1, layer.out_channels)
        return layer.astype(dtype)

    with kernels.using("compiled"):
        probe = make()
        probe.forward(x)
        assert probe._cache[0] == "compiled" and probe._cache[1] == "direct"  # no columns kept
    _compare(make, x, dtype)


@needs_compiled
@pytest.mark.parametrize("seed", range(14))
@pytest.mark.usefixtures("kernel_threads")
def test_winograd_convolution_equals_numpy(seed, dconv_isa, monkeypatch):
    """float32 3×3 convolutions at stride 1, padding 1, with enough channels run Winograd F(2×2,
    3×3) forward and for δx (_c/wino.c) and for δW and δb (_c/winowg.c): the NumPy results within the float32
    tolerance, on random sizes (odd and even maps: tiles cut at the border; batch 1; channel
    counts that are not multiples of a vector, down to 1: the channel rule is lowered to 1 here),
    with and without bias, on every instruction set; the last seeds on VGG-like sizes at the
    default rule (blocks of tiles split between the threads)."""
    from learnflux.kernels import compiled

    rng = np.random.default_rng(100 + seed)
    if seed < 12:
        monkeypatch.setattr(compiled, "WINOGRAD_MIN_CHANNELS", 1)
        n = 1 if seed % 4 == 0 else int(rng.integers(2, 5))
        c, o = (int(v) for v in rng.integers(1, 41, size=2))
        h, w = (int(v) for v in rng.integers(1, 20, size=2))
    else:
        n, c, o = 3, 32 + seed, 64 - seed
        h, w = (16, 16) if seed % 2 else (15, 13)
    bias = seed % 3 != 1
    x = _maybe_strided(rng.standard_normal((n, c, h, w)).astype(np.float32), rng)

    def make():
        layer = lf.Conv2d(c, o, 3, padding=1, bias=bias, rng=seed)
        if bias:
            layer.bias.value = np.random.default_rng(4).uniform(-1, 1, o)
        return layer.astype(np.float32)

    assert compiled._winograd(make().geometry, x)
    _compare(make, x, np.float32)


@needs_compiled
@pytest.mark.parametrize("seed", range(6))
@pytest.mark.usefixtures("kernel_threads")
def test_winograd_relu_mask_is_that_of_its_output(seed, dconv_isa):
    """The fused ReLU of the Winograd path: output max(z, 0) and mask [z ≥ 0] of the very z the
    unfused call returns (bit for bit, z = 0 included), and z within the float32 tolerance of the
    direct convolution's."""
    from learnflux.kernels import _lfk

    rng = np.random.default_rng(200 + seed)
    n, c, o = int(rng.integers(1, 4)), int(rng.integers(16, 37)), int(rng.integers(1, 37))
    h, w = (int(v) for v in rng.integers(1, 18, size=2))
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    weight = rng.standard_normal((o, c, 3, 3)).astype(np.float32)
    weight[: o // 3] = 0  # z = b exactly: with b = 0, ReLU'(0) = 1 must be in the mask
    b = rng.uniform(-1, 1, o).astype(np.float32)
    b[: o // 6] = 0
    geom = (n, c, h, w, o, h, w, 3, 3, 1, 1, 1, 1)
    z = np.empty((n, o, h, w), np.float32)
    _lfk.wino_fwd(x, weight, b, z, geom, False)
    out, mask = np.empty_like(z), np.empty(z.shape, np.bool_)
    _lfk.wino_fwd(x, weight, b, out, geom, True, mask)
    np.testing.assert_array_equal(mask, z >= 0)
    np.testing.assert_array_equal(out, np.maximum(z, 0))
    direct = np.empty_like(z)
    _lfk.dconv_fwd(x, weight, b, direct, False, geom, False)
    _assert_same(direct, z, np.float32, "Winograd against direct")
    with pytest.raises(ValueError, match="not a 3x3"):
        _lfk.wino_fwd(x, weight, b, z, (n, c, h, w, o, h, w, 3, 3, 1, 1, 0, 0), False)


@needs_compiled
@pytest.mark.usefixtures("kernel_threads")
def test_winograd_every_map_width(dconv_isa):
    """Every map width from 1 to 34 and odd and even heights, batch 3: tile rows split between
    blocks and samples, and the maps whose tile rows are half or a quarter of a vector (two or
    four tile rows transformed in one vector: widths 15-16 and 7-8 with AVX-512, 7-8 and 3-4 with
    AVX2, 3-4 and 1-2 with the baseline) against the direct convolution."""
    from learnflux.kernels import _lfk

    rng = np.random.default_rng(9)
    for w in range(1, 35):
        for h in (w, 9, 2):
            n, c, o = 3, 5, 11
            x = rng.standard_normal((n, c, h, w)).astype(np.float32)
            weight = rng.standard_normal((o, c, 3, 3)).astype(np.float32)
            b = rng.standard_normal(o).astype(np.float32)
            geom = (n, c, h, w, o, h, w, 3, 3, 1, 1, 1, 1)
            got, want = np.empty((2, n, o, h, w), np.float32)
            _lfk.wino_fwd(x, weight, b, got, geom, False)
            _lfk.dconv_fwd(x, weight, b, want, False, geom, False)
            _assert_same(want, got, np.float32, f"{h}x{w}")


def _wgrad64(x, d):
    """δW (O, C, 3, 3) and δb of a 3×3, stride-1, padding-1 convolution, in float64."""
    h, w = x.shape[2:]
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (1, 1), (1, 1)))
    d64 = d.astype(np.float64)
    gw = np.empty((d.shape[1], x.shape[1], 3, 3))
    for i in range(3):
        for j in range(3):
            gw[:, :, i, j] = np.einsum("nohw,nchw->oc", d64, xp[:, :, i : i + h, j : j + w])
    return gw, d64.sum(axis=(0, 2, 3))


@needs_compiled
@pytest.mark.parametrize("seed", range(10))
def test_winograd_weight_gradient_equals_float64(seed, dconv_isa):
    """_lfk.wino_wgrad (_c/winowg.c: U[ξ] = Σ_tiles (A δ Aᵀ)[ξ]·(Bᵀ d B)[ξ], δW = Gᵀ U G) against
    a float64 gradient within the float32 tolerance, on random sizes (odd maps: δ tiles cut at the
    border; batch 1; channel counts that are not multiples of a vector or of the micro-kernel's
    rows; without δb), on every instruction set; and bit for bit the same on one thread as on
    two (the tiles are summed in fixed slots)."""
    from learnflux.kernels import _lfk

    rng = np.random.default_rng(300 + seed)
    n = 1 if seed % 3 == 0 else int(rng.integers(2, 6))
    c, o = (int(v) for v in rng.integers(1, 70, size=2))
    h, w = (int(v) for v in rng.integers(1, 24, size=2))
    if seed == 9:  # a VGG layer's shape: blocks of tiles in several slots (one thread, two)
        n, c, o, h, w = 40, 64, 128, 8, 8
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    d = rng.standard_normal((n, o, h, w)).astype(np.float32)
    geom = (n, c, h, w, o, h, w, 3, 3, 1, 1, 1, 1)
    want, want_b = _wgrad64(x, d)
    runs = []
    for threads in (1, 2):
        before = kernels.info()["threads"]
        kernels.set_threads(threads)
        try:
            gw, db = np.empty((o, c, 3, 3), np.float32), np.empty(o, np.float32)
            _lfk.wino_wgrad(x, d, gw, db if seed % 4 else None, geom)
        finally:
            kernels.set_threads(before)
        runs.append((gw, db))
        _assert_same(want, gw, np.float32, f"δW {n, c, o, h, w}")
        if seed % 4:
            _assert_same(want_b, db, np.float32, "δb")
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    with pytest.raises(ValueError, match="not a 3x3"):
        _lfk.wino_wgrad(x, d, gw, None, (n, c, h, w, o, h, w, 3, 3, 1, 1, 0, 0))


@needs_compiled
def test_winograd_weight_gradient_matches_pytorch_float32():
    """δW and δb of a VGG layer (64 → 64 channels, 16×16, batch 8) on the Winograd path against
    PyTorch's float32 (oneDNN) and float64 gradients: both within the float32 tolerance."""
    torch = pytest.importorskip("torch")
    from learnflux.kernels import compiled

    rng = np.random.default_rng(12)
    x = rng.standard_normal((8, 64, 16, 16)).astype(np.float32)
    delta = rng.standard_normal((8, 64, 16, 16)).astype(np.float32)
    with kernels.using("compiled"):
        layer = lf.Conv2d(64, 64, 3, padding=1, rng=5).astype(np.float32)
        assert compiled._winograd(layer.geometry, x)
        layer.forward(x)
        layer.backward(delta, need_input_delta=False)
    for dtype in (torch.float32, torch.float64):
        twin = torch.nn.Conv2d(64, 64, 3, padding=1).to(dtype)
        with torch.no_grad():
            twin.weight.copy_(torch.from_numpy(layer.weight.value))
        twin(torch.from_numpy(x).to(dtype)).backward(torch.from_numpy(delta).to(dtype))
        _assert_same(twin.weight.grad.double().numpy(), layer.weight.grad, np.float32, f"δW {dtype}")
        _assert_same(twin.bias.grad.double().numpy(), layer.bias.grad, np.float32, f"δb {dtype}")


@needs_compiled
def test_winograd_layer_matches_pytorch():
    """A VGG-like float32 layer on the Winograd path (32 → 40 channels, 11×12, batch 2) against
    PyTorch's float64 convolution: output, δx and δW within the float32 tolerance."""
    torch = pytest.importorskip("torch")
    from learnflux.kernels import compiled

    rng = np.random.default_rng(11)
    x = rng.standard_normal((2, 32, 11, 12)).astype(np.float32)
    delta = rng.standard_normal((2, 40, 11, 12)).astype(np.float32)
    with kernels.using("compiled"):
        layer = lf.Conv2d(32, 40, 3, padding=1, rng=3).astype(np.float32)
        layer.bias.value = rng.uniform(-1, 1, 40).astype(np.float32)
        assert compiled._winograd(layer.geometry, x)
        out = layer.forward(x)
        d_in = layer.backward(delta)
    twin = torch.nn.Conv2d(32, 40, 3, padding=1).double()
    with torch.no_grad():
        twin.weight.copy_(torch.from_numpy(layer.weight.value.astype(np.float64)))
        twin.bias.copy_(torch.from_numpy(layer.bias.value.astype(np.float64)))
    xt = torch.from_numpy(x.astype(np.float64)).requires_grad_(True)
    yt = twin(xt)
    yt.backward(torch.from_numpy(delta.astype(np.float64)))
    _assert_same(yt.detach().numpy(), out, np.float32, "output")
    _assert_same(xt.grad.numpy(), d_in, np.float32, "input δ")
    _assert_same(twin.weight.grad.numpy(), layer.weight.grad, np.float32, "weight gradient")


@needs_compiled
def test_winograd_conv_relu_fused_equals_the_layers_one_by_one(monkeypatch):
    """Conv2d → ReLU on the Winograd path: the fused call (ReLU in the output transform) gives
    bit for bit the outputs, masks, input δ and gradients of the two layers run one by one."""
    from learnflux.kernels import compiled

    monkeypatch.setattr(compiled, "WINOGRAD_MIN_CHANNELS", 16)
    x = np.random.default_rng(7).standard_normal((2, 16, 9, 10)).astype(np.float32)
    results = []
    with kernels.using("compiled"):
        for fuse in (True, False):
            rng = np.random.default_rng(0)
            model = lf.Sequential(lf.Conv2d(16, 17, 3, padding=1, rng=rng), lf.ReLU()).astype(np.float32)
            model.layers[0].weight.value[:3] = 0  # z = b: the mask's ReLU'(0) = 1 where b = 0
            model.layers[0].bias.value[:2] = 0
            model.fuse_relu = fuse
            model.train()
            assert compiled._winograd(model.layers[0].geometry, x)
            out = model.forward(x)
            d_in = model.backward(np.ones_like(out))
            assert model._relu_fusions()[0] == fuse
            results.append((out, d_in, model.layers[1]._cache, [p.grad.copy() for p in model.parameters()]))
    for a, b in zip(results[0][:3], results[1][:3], strict=True):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(results[0][3], results[1][3], strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("cin", [1, 16])  # the thin kernels, the direct ones
def test_direct_convolution_of_an_empty_batch(cin):
    """A batch of 0 samples: an empty output and zero gradients (the weight gradient's slots of
    samples once divided by a count of 0 slots: SIGFPE)."""
    conv = lf.Conv2d(cin, 4, 3, padding=1, rng=0).astype(np.float32)
    with kernels.using("compiled"):
        out = conv.forward(np.zeros((0, cin, 5, 5), np.float32))
        d_in = conv.backward(np.zeros_like(out))
    assert out.shape == (0, 4, 5, 5) and d_in.shape == (0, cin, 5, 5)
    assert not conv.weight.grad.any() and not conv.bias.grad.any()


@needs_compiled
@pytest.mark.parametrize("cin", [1, 3, 16])  # the thin kernels (K = 9, 27), the direct ones
def test_direct_weight_gradient_does_not_depend_on_the_thread_count(cin):
    """δW and δb are summed in fixed slots of samples, added in slot order: bit-identical results
    on 1, 2 or 3 kernel threads."""
    rng = np.random.default_rng(7)
    # large enough to be split over the threads (LF_PAR_MIN), an odd batch for uneven slots
    x = rng.standard_normal((41, cin, 24, 23)).astype(np.float32)
    delta = rng.standard_normal((41, 16, 24, 23)).astype(np.float32)
    before = kernels.info()["threads"]
    grads = []
    try:
        for threads in (1, 2, 3):
            kernels.set_threads(threads)
            conv = lf.Conv2d(cin, 16, 3, padding=1, rng=0).astype(np.float32)
            with kernels.using("compiled"):
                conv.forward(x)
                conv.backward(delta, need_input_delta=False)
            grads.append((conv.weight.grad.copy(), conv.bias.grad.copy()))
    finally:
        kernels.set_threads(before)
    for gw, gb in grads[1:]:
        np.testing.assert_array_equal(gw, grads[0][0])
        np.testing.assert_array_equal(gb, grads[0][1])


class _CountingLfk:
    """``_lfk`` with a count of the calls per kernel name (which path a layer took)."""

    def __init__(self, lfk):
        self._lfk, self.calls = lfk, {}

    def __getattr__(self, name):
        fn = getattr(self._lfk, name)

        def counted(*args):
            self.calls[name] = self.calls.get(name, 0) + 1
            return fn(*args)

        return counted


@needs_compiled
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("seed", range(24))
@pytest.mark.usefixtures("kernel_threads")
def test_thin_convolution_equals_numpy(seed, dtype, dconv_isa, monkeypatch):
    """Few taps (``C·kh·kw ≤ THIN_K_MAX``: an image model's first layer): _c/thinconv.c runs the
    forward pass (bias, fused ReLU and its mask) and δW, δb; δx, where asked for, stays with the
    direct kernels. Random 1–3 channels, 1×1 to 5×5 kernels, padding 0–2, dilation, odd sizes,
    batch 1–5, with and without bias, on every instruction set and thread count."""
    from learnflux.kernels import compiled

    rng = np.random.default_rng(100 + seed)
    cin, cout = int(rng.integers(1, 4)), int(rng.choice([1, 3, 4, 7, 16, 17]))
    kh, kw = (int(rng.choice([1, 3, 5])) for _ in range(2))
    cin = min(cin, compiled.THIN_K_MAX // (kh * kw))
    dilation = tuple(int(d) for d in rng.choice([1, 1, 2], size=2))
    # the direct kernels take top/left padding up to the kernel's reach
    padding = (
        min(int(rng.integers(0, 3)), dilation[0] * (kh - 1)),
        min(int(rng.integers(0, 3)), dilation[1] * (kw - 1)),
    )
    h = int(rng.integers(max(1, dilation[0] * (kh - 1) + 1 - 2 * padding[0]), 20))
    w = int(rng.integers(max(1, dilation[1] * (kw - 1) + 1 - 2 * padding[1]), 20))
    batch, bias = int(rng.choice([1, 2, 5])), bool(rng.random() < 0.7)
    x = _maybe_strided(rng.standard_normal((batch, cin, h, w)).astype(dtype), rng)
    need_input_delta = bool(rng.random() < 0.5)

    def make():
        layer = lf.Conv2d(cin, cout, (kh, kw), 1, padding, dilation, bias=bias, rng=seed)
        if bias:
            layer.bias.value = np.random.default_rng(seed).uniform(-1, 1, cout)
        return layer.astype(dtype)

    counting = _CountingLfk(compiled._lfk)
    monkeypatch.setattr(compiled, "_lfk", counting)
    _compare(make, x, dtype, need_input_delta=need_input_delta)
    assert counting.calls.get("thin_fwd") == 1 and counting.calls.get("thin_wgrad") == 1, counting.calls
    assert counting.calls.get("dconv_fwd", 0) == int(need_input_delta)  # δx: the direct kernels

    # the fused ReLU: output and mask [z ≥ 0] from the same z as the unfused forward pass
    tol = TOL[dtype]["rtol"]
    layer = make()
    for training in (True, False):
        layer.training = training
        with kernels.using("compiled"):
            z = layer.forward(x)
            out, mask = layer.forward_relu(x)
        with kernels.using("numpy"):
            ref, ref_mask = layer.forward_relu(x)
        np.testing.assert_array_equal(out, np.where(z < 0, 0, z))
        np.testing.assert_allclose(out, ref, rtol=tol, atol=tol * max(1.0, float(np.abs(ref).max())))
        if training:
            np.testing.assert_array_equal(mask, z >= 0)
            assert (mask == ref_mask)[np.abs(z) > tol].all()
        else:
            assert mask is None


@needs_compiled
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("keep_max, chunk", [(0, 1), (0, 700), (1 << 30, 1)])
@pytest.mark.usefixtures("kernel_threads")
def test_conv2d_in_blocks_of_samples_equals_numpy(keep_max, chunk, dtype, monkeypatch):
    """Large layers run in blocks of samples and rebuild their columns in the backward pass;
    small ones keep them: the same results either way, whatever the block size."""
    from learnflux.kernels import compiled

    monkeypatch.setattr(compiled, "KEEP_COLS_MAX", keep_max)
    monkeypatch.setattr(compiled, "CHUNK_ELEMS", chunk)
    x = np.random.default_rng(5).standard_normal((5, 4, 7, 6)).astype(dtype)
    # strided or grouped layers (the direct convolution takes stride 1, one group), and padding
    # wider than the kernel's reach
    for kwargs in (
        dict(stride=2, padding=1),
        dict(stride=2, groups=2),
        dict(padding=3, dilation=1, bias=False),
    ):

        def make(kwargs=kwargs):
            layer = lf.Conv2d(4, 6, 3, rng=1, **kwargs)
            if layer.use_bias:
                layer.bias.value = np.random.default_rng(2).uniform(-1, 1, 6)
            return layer.astype(dtype)

        _compare(make, x, dtype)


def test_malloc_tuning_is_reported_and_can_be_switched_off():
    assert kernels.info()["malloc"] == kernels.MALLOC
    code = "import learnflux.kernels as k; print(k.MALLOC)"
    env = {**os.environ, "LEARNFLUX_MALLOC_TUNING": "0"}
    off = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert off.stdout.strip() == "LEARNFLUX_MALLOC_TUNING=0: glibc's defaults"
    env = {k: v for k, v in os.environ.items() if k not in ("LEARNFLUX_MALLOC_TUNING", "GLIBC_TUNABLES")}
    env["MALLOC_TRIM_THRESHOLD_"] = "131072"
    kept = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert kept.stdout.strip() == "the environment tunes malloc"


def _conv_relu_net(seed: int, dtype) -> lf.Sequential:
    rng = np.random.default_rng(seed)
    model = lf.Sequential(
        lf.Conv2d(3, 4, 3, padding=1, rng=rng),
        lf.ReLU(),
        lf.MaxPool2d(2),
        lf.Conv2d(4, 5, 3, stride=2, padding=1, rng=rng),  # not a direct convolution
        lf.ReLU(),
        lf.Conv2d(5, 3, 1, bias=False, rng=rng),
        lf.ReLU(),
        lf.Flatten(),
        lf.Linear(3 * 2 * 2, 2, rng=rng),
    )
    return model.astype(dtype)


@pytest.mark.parametrize("kernel_set", ["compiled", "numpy"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fused_conv_relu_equals_the_layers_one_by_one(kernel_set, dtype):
    """Sequential runs Conv2d → ReLU as one call unless a trace records: the outputs, input δ,
    gradients and ReLU masks are bit-identical either way, ReLU'(0) = 1 included (the last
    convolution's pre-activations are exactly 0 for half the channels)."""
    if kernel_set == "compiled" and not kernels.available():
        pytest.skip("compiled kernels not built")
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 3, 8, 8)).astype(dtype)
    results = []
    with kernels.using(kernel_set):
        for fuse, record in ((True, False), (False, False), (True, True)):
            model = _conv_relu_net(0, dtype)
            model.layers[5].weight.value[:2] = 0  # z = 0 exactly: ReLU'(0) = 1 must let δ through
            model.fuse_relu = fuse
            model.record_intermediates = record
            model.train()
            out = model.forward(x)
            d_in = model.backward(np.ones_like(out))
            masks = [layer._cache for layer in model.layers if isinstance(layer, lf.ReLU)]
            results.append((out, d_in, [p.grad.copy() for p in model.parameters()], masks))
            model.eval()
            results[-1] += (model.forward(x),)
    assert model._relu_fusions() == (True, False, False, True, False, True, False, False, False)
    ref = results[1]
    for got in (results[0], results[2]):
        np.testing.assert_array_equal(got[0], ref[0])
        np.testing.assert_array_equal(got[1], ref[1])
        for a, b in zip(got[2], ref[2], strict=True):
            np.testing.assert_array_equal(a, b)
        for a, b in zip(got[3], ref[3], strict=True):
            np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(got[4], ref[4])
    assert results[0][3][2][:, :2].all()  # the zero pre-activations' mask is 1


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "shape, out_ch, kwargs",
    [
        ((1, 1, 5, 5), 3, {"padding": 1}),
        ((2, 3, 7, 6), 5, {"padding": 2, "dilation": 2}),
        ((3, 2, 9, 4), 17, {}),
    ],
)
def test_conv2d_relu_forward_compiled_equals_numpy(dtype, shape, out_ch, kwargs):
    if not kernels.available():
        pytest.skip("compiled kernels not built")
    rng = np.random.default_rng(0)
    conv = lf.Conv2d(shape[1], out_ch, 3, rng=rng, **kwargs).astype(dtype)
    x = rng.standard_normal(shape).astype(dtype)[..., ::-1]  # non-contiguous
    tol = 1e-5 if dtype == np.float32 else 1e-12
    for training in (True, False):
        conv.training = training
        got = {}
        for name in ("compiled", "numpy"):
            with kernels.using(name):
                got[name] = conv.forward_relu(x)
        np.testing.assert_allclose(got["compiled"][0], got["numpy"][0], rtol=tol, atol=tol)
        if training:
            z = got["numpy"][0]
            agree = got["compiled"][1] == got["numpy"][1]
            assert agree[z > tol].all()  # masks may differ only where z rounds to about 0
        else:
            assert got["compiled"][1] is None and got["numpy"][1] is None
