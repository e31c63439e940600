"""ReLU → MaxPool2d folded in the backward pass (``Sequential._relu_folds``: ``"relu_next"`` /
``"fold_prev"``): the pool's backward writes ``δx ⊙ [z ≥ 0]`` (``MaxPool2d.backward_after_relu``,
the ``relu_mask`` of ``maxpool2d_backward``) and the ReLU's own backward pass is skipped. Every
number must be the one of the layers run one after the other, bit for bit, on both kernel sets."""

from __future__ import annotations

import sys

import numpy as np
import pytest

import learnflux as lf
from learnflux import kernels

needs_compiled = pytest.mark.skipif(not kernels.available(), reason="compiled kernels not built")


def _lenet(dtype: type, hw: tuple[int, int]) -> lf.Sequential:
    rng = np.random.default_rng(0)
    h, w = (hw[0] // 2) // 2, (hw[1] // 2) // 2
    model = lf.Sequential(
        lf.Conv2d(1, 4, 3, padding=1, rng=rng),
        lf.ReLU(),
        lf.MaxPool2d(2),
        lf.Conv2d(4, 6, 3, padding=1, rng=rng),
        lf.ReLU(),
        lf.MaxPool2d(2),
        lf.Flatten(),
        lf.Linear(6 * h * w, 5, rng=rng),
        lf.ReLU(),
        lf.Linear(5, 3, rng=rng),
    )
    return model.astype(dtype)


def _run(model: lf.Sequential, x: np.ndarray, fuse: bool, record: bool) -> tuple:
    model.fuse_relu = fuse
    model.record_intermediates = record
    model.train()
    out = model.forward(x)
    d_in = model.backward(np.linspace(-1, 1, out.size).reshape(out.shape).astype(x.dtype))
    masks = [np.copy(layer._cache) for layer in model.layers if isinstance(layer, lf.ReLU)]
    return out, d_in, [p.grad.copy() for p in model.parameters()], masks


def _assert_same(got: tuple, want: tuple) -> None:
    for a, b in zip(got, want, strict=True):
        if isinstance(a, list):
            for u, v in zip(a, b, strict=True):
                np.testing.assert_array_equal(u, v)
        else:
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("kernel_set", ["compiled", "numpy"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("hw", [(28, 28), (13, 15), (9, 4)])
def test_relu_pool_folded_equals_the_layers_one_by_one(kernel_set, dtype, hw):
    if kernel_set == "compiled" and not kernels.available():
        pytest.skip("compiled kernels not built")
    x = np.random.default_rng(1).standard_normal((3, 1, *hw)).astype(dtype)
    results = []
    with kernels.using(kernel_set):
        for fuse, record in ((True, False), (False, False), (True, True)):
            model = _lenet(dtype, hw)
            # channel 1 of the second convolution: weight and bias 0, so z = 0 exactly there and
            # ReLU'(0) = 1 lets the pool's δ through
            model.layers[3].weight.value[1] = 0
            model.layers[3].bias.value[1] = 0
            results.append(_run(model, x, fuse, record))
            if fuse and not record:
                # the last Linear → ReLU folds the other way round (Linear.backward_relu)
                folds = ("", "relu_next", "fold_prev", "", "relu_next", "fold_prev", "", "fold", "relu", "")
                assert model._relu_folds() == folds
            else:
                assert model._relu_folds() == ()
    for got in (results[0], results[2]):
        _assert_same(got, results[1])
    assert results[0][3][1][:, 1].all()  # the zero channel: z = 0, mask 1
    assert results[0][1].any()


@pytest.mark.parametrize("kernel_set", ["compiled", "numpy"])
def test_batchnorm_relu_keeps_priority_over_the_pool(kernel_set):
    """VGG's BatchNorm2d → ReLU → MaxPool2d: the ReLU folds into the batch norm (``"fold"`` /
    ``"relu"``), the pool runs alone; a ReLU straight after a convolution folds into its pool."""
    if kernel_set == "compiled" and not kernels.available():
        pytest.skip("compiled kernels not built")
    rng = np.random.default_rng(2)
    layers = lambda: lf.Sequential(  # noqa: E731
        lf.Conv2d(2, 4, 3, padding=1, rng=np.random.default_rng(5)),
        lf.BatchNorm2d(4),
        lf.ReLU(),
        lf.MaxPool2d(2),
        lf.Conv2d(4, 3, 3, padding=1, rng=np.random.default_rng(6)),
        lf.ReLU(),
        lf.MaxPool2d(2),
        lf.Flatten(),
        lf.Linear(3 * 2 * 2, 2, rng=np.random.default_rng(7)),
    )
    x = rng.standard_normal((4, 2, 9, 8)).astype(np.float32)
    results = []
    with kernels.using(kernel_set):
        for fuse in (True, False):
            model = layers()
            model.layers[1].weight.value[2] = 0  # γ = 0: o = β = 0 exactly, mask 1
            results.append(_run(model, x, fuse, False))
            if fuse:
                assert model._relu_folds() == ("", "fold", "relu", "", "", "relu_next", "fold_prev", "", "")
    _assert_same(results[0], results[1])


def test_a_subclass_with_its_own_backward_runs_alone():
    class Logged(lf.MaxPool2d):
        def backward(self, delta_out, need_input_delta=True):
            return super().backward(delta_out, need_input_delta)

    model = lf.Sequential(lf.Conv2d(1, 2, 3, padding=1), lf.ReLU(), Logged(2), lf.ReLU(), lf.MaxPool2d(2))
    model.train()
    assert model._relu_folds() == ("", "", "", "relu_next", "fold_prev")


def test_a_model_whose_layers_are_replaced_decides_again():
    rng = np.random.default_rng(3)
    model = lf.Sequential(lf.Conv2d(1, 2, 3, padding=1, rng=rng), lf.ReLU(), lf.MaxPool2d(2))
    model.train()
    assert model._relu_folds() == ("", "relu_next", "fold_prev")
    model.layers[2] = lf.AvgPool2d(2)
    assert model._relu_folds() == ()


def test_the_relu_first_its_delta_is_the_model_input_delta():
    """A ReLU as the first layer: the folded pool's result is the model's input δ."""
    x = np.random.default_rng(4).standard_normal((2, 3, 6, 6))
    got = []
    for fuse in (True, False):
        model = lf.Sequential(lf.ReLU(), lf.MaxPool2d(2))
        model.fuse_relu = fuse
        model.train()
        out = model.forward(x)
        got.append(model.backward(np.ones_like(out)))
    np.testing.assert_array_equal(got[0], got[1])
    np.testing.assert_array_equal(got[0], (x >= 0) * got[0].astype(bool))


@needs_compiled
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("values", ["random", "inf"])
@pytest.mark.parametrize(
    "shape",
    [
        (1, 1, 2, 2),
        (1, 3, 5, 7),  # odd: the last row and column are in no window
        (2, 3, 28, 28),  # LeNet's maps: rows of 14 and 7 outputs
        (3, 2, 14, 14),
        (2, 3, 16, 16),  # two rows per float32 vector
        (1, 2, 33, 35),
        (1, 1, 3, 70),
        (2, 1, 9, 4),
    ],
)
@pytest.mark.usefixtures("kernel_threads")
def test_masked_pool2_backward_compiled_equals_numpy(pool2_isa, shape, values, dtype):
    """``maxpool2d_backward(…, relu_mask)`` on every instruction set against the NumPy set's two
    steps, bit for bit (``inf·0`` is NaN in both: the mask is a product)."""
    from learnflux.kernels import compiled
    from learnflux.kernels.reference import pool as ref

    rng = np.random.default_rng(sum(shape))
    x = rng.standard_normal(shape).astype(dtype)
    x[rng.random(shape) < 0.1] = 0  # ReLU'(0) = 1
    geo = lf.MaxPool2d(2)._geometry(shape[2], shape[3], shape[2] // 2, shape[3] // 2)
    _, winner = ref.maxpool2d_forward(x, geo, True)
    mask = rng.random(shape) < 0.6  # independent of the winners: every combination
    delta = rng.standard_normal(winner.shape).astype(dtype)
    if values == "inf":
        delta[rng.random(delta.shape) < 0.2] = np.inf
    if values == "inf":
        # the NumPy set's pool backward gives inf·0 = NaN beside an infinite δ's winner (its
        # products), the compiled set 0 (selects): compare with the compiled set's two steps,
        # where an infinite δ at a winner whose mask is 0 gives NaN (the ReLU's product)
        want = compiled.relu_backward(compiled.maxpool2d_backward(delta, winner, shape, geo), mask)
    else:
        want = ref.relu_backward(ref.maxpool2d_backward(delta, winner, shape, geo), mask)
        np.testing.assert_array_equal(ref.maxpool2d_backward(delta, winner, shape, geo, mask), want)
    got = compiled.maxpool2d_backward(delta, winner, shape, geo, mask)
    assert got.dtype == dtype and got.flags.c_contiguous
    np.testing.assert_array_equal(got, want)  # NaN where NaN
    # the mask as a view (a slice of a larger array) and the unmasked kernel unchanged
    wide = np.zeros((*shape[:3], shape[3] + 3), np.bool_)
    wide[..., : shape[3]] = mask
    np.testing.assert_array_equal(
        compiled.maxpool2d_backward(delta, winner, shape, geo, wide[..., : shape[3]]), want
    )
    if values != "inf":
        np.testing.assert_array_equal(
            compiled.maxpool2d_backward(delta, winner, shape, geo),
            ref.maxpool2d_backward(delta, winner, shape, geo),
        )


@needs_compiled
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("pool", [(3, 2, 0), (2, 2, 1), (3, 3, 0)])
def test_masked_generic_pool_backward_compiled_equals_numpy(pool, dtype):
    """Other windows (overlapping, padded, 3×3 tiles): the pool's backward, then the mask."""
    from learnflux.kernels import compiled
    from learnflux.kernels.reference import pool as ref

    k, s, p = pool
    layer = lf.MaxPool2d(k, s, padding=p)
    shape = (2, 3, 11, 10)
    rng = np.random.default_rng(k + s + p)
    x = rng.standard_normal(shape).astype(dtype)
    x[rng.random(shape) < 0.1] = 0
    ho, wo = layer._output_hw(11, 10)
    geo = layer._geometry(11, 10, ho, wo)
    _, winner = ref.maxpool2d_forward(x, geo, True)
    delta = rng.standard_normal(winner.shape).astype(dtype)
    mask = x >= 0
    got = compiled.maxpool2d_backward(delta, winner, shape, geo, mask)
    # bit for bit the compiled set's two steps; the NumPy set's within rounding (overlapping
    # windows sum their δ in another order)
    np.testing.assert_array_equal(
        got, compiled.relu_backward(compiled.maxpool2d_backward(delta, winner, shape, geo), mask)
    )
    want = ref.relu_backward(ref.maxpool2d_backward(delta, winner, shape, geo), mask)
    tol = 1e-6 if dtype == np.float32 else 1e-14
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol)


@needs_compiled
@pytest.mark.skipif(sys.platform != "linux", reason="mprotect through ctypes")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_masked_pool2_backward_reads_nothing_past_the_mask(pool2_isa, dtype):
    """The mask array ends at a page boundary followed by an inaccessible page: a vector load
    past its end would crash the process (the row kernels load 16 / 8 / 4 mask bytes at once
    while the array holds them, else go through a buffer)."""
    import ctypes
    import mmap

    from learnflux.kernels import compiled
    from learnflux.kernels.reference import pool as ref

    libc = ctypes.CDLL(None)
    page = mmap.PAGESIZE
    rng = np.random.default_rng(9)
    for shape in [
        (1, 1, 2, 2),
        (1, 3, 5, 7),
        (2, 3, 28, 28),
        (3, 2, 14, 14),
        (2, 3, 16, 16),
        (1, 1, 3, 70),
        (1, 1, 2, 30),
    ]:
        size = int(np.prod(shape))
        pages = (size + page - 1) // page + 1
        buf = mmap.mmap(-1, pages * page)
        addr = ctypes.addressof(ctypes.c_char.from_buffer(buf))
        assert libc.mprotect(ctypes.c_void_p(addr + (pages - 1) * page), page, 0) == 0
        mask = np.frombuffer(buf, np.bool_, count=size, offset=(pages - 1) * page - size).reshape(shape)
        mask[...] = rng.random(shape) < 0.5
        x = rng.standard_normal(shape).astype(dtype)
        geo = lf.MaxPool2d(2)._geometry(shape[2], shape[3], shape[2] // 2, shape[3] // 2)
        _, winner = ref.maxpool2d_forward(x, geo, True)
        delta = rng.standard_normal(winner.shape).astype(dtype)
        got = compiled.maxpool2d_backward(delta, winner, shape, geo, mask)
        np.testing.assert_array_equal(got, ref.maxpool2d_backward(delta, winner, shape, geo, mask))
