"""BatchNorm → ReLU as one call (``Sequential``): the forward pass writes ReLU's output and mask in
the batch norm's output pass (``forward_relu``), the backward pass reads the ReLU's δ and mask in
the batch norm's own pass (``backward_relu``). Every number must be the one of the two layers run
one after the other, bit for bit, on both kernel sets."""

from __future__ import annotations

import numpy as np
import pytest

import learnflux as lf
from learnflux import kernels


def _net(dtype: type) -> lf.Sequential:
    rng = np.random.default_rng(0)
    model = lf.Sequential(
        lf.Conv2d(2, 4, 3, padding=1, rng=rng),
        lf.BatchNorm2d(4),
        lf.ReLU(),
        lf.Conv2d(4, 3, 3, padding=1, rng=rng),
        lf.BatchNorm2d(3),
        lf.ReLU(),
        lf.MaxPool2d(2),
        lf.Flatten(),
        lf.Linear(3 * 3 * 3, 5, rng=rng),
        lf.BatchNorm1d(5),
        lf.ReLU(),
        lf.Linear(5, 2, rng=rng),
    )
    return model.astype(dtype)


@pytest.mark.parametrize("kernel_set", ["compiled", "numpy"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_batchnorm_relu_fused_equals_the_layers_one_by_one(kernel_set, dtype):
    if kernel_set == "compiled" and not kernels.available():
        pytest.skip("compiled kernels not built")
    x = np.random.default_rng(1).standard_normal((4, 2, 6, 6)).astype(dtype)
    results = []
    with kernels.using(kernel_set):
        for fuse, record in ((True, False), (False, False), (True, True)):
            model = _net(dtype)
            model.layers[4].weight.value[1] = 0  # γ = 0: o = β = 0 exactly, ReLU'(0) = 1 lets δ through
            model.fuse_relu = fuse
            model.record_intermediates = record
            model.train()
            out = model.forward(x)
            d_in = model.backward(np.linspace(-1, 1, out.size).reshape(out.shape).astype(dtype))
            masks = [layer._cache for layer in model.layers if isinstance(layer, lf.ReLU)]
            stats = [np.copy(b) for layer in model.layers for b in layer._buffers.values()]
            results.append((out, d_in, [p.grad.copy() for p in model.parameters()], masks, stats))
            model.eval()
            results[-1] += (model.forward(x),)
            if fuse and not record:
                fused = (False, True, False, False, True, False, False, False, False, True, False, False)
                assert model._relu_fusions() == fused
                model.train()
                folds = ("", "fold", "relu", "", "fold", "relu", "", "", "", "fold", "relu", "")
                assert model._relu_folds() == folds
    ref = results[1]
    for got in (results[0], results[2]):
        for a, b in zip(got, ref, strict=True):
            if isinstance(a, list):
                for u, v in zip(a, b, strict=True):
                    np.testing.assert_array_equal(u, v)
            else:
                np.testing.assert_array_equal(a, b)
    assert results[0][3][1][:, 1].all()  # the γ = 0 channel: o = 0, mask 1


def test_a_subclass_with_its_own_backward_runs_alone():
    class Logged(lf.BatchNorm2d):
        def backward(self, delta_out, need_input_delta=True):
            return super().backward(delta_out, need_input_delta)

    model = lf.Sequential(lf.Conv2d(1, 2, 3, padding=1), Logged(2), lf.ReLU())
    model.train()
    assert model._relu_folds() == ()  # its backward runs, then the ReLU's
    assert model._relu_fusions() == (False, True, False)  # the forward it inherits still fuses


@pytest.mark.parametrize("kernel_set", ["compiled", "numpy"])
def test_batchnorm_relu_inference_phase(kernel_set):
    if kernel_set == "compiled" and not kernels.available():
        pytest.skip("compiled kernels not built")
    bn = lf.BatchNorm2d(3)
    bn.running_mean[:] = [0.5, -1.0, 0.0]
    bn.eval()
    x = np.random.default_rng(2).standard_normal((2, 3, 4, 4)).astype(np.float32)
    with kernels.using(kernel_set):
        out, mask = bn.forward_relu(x)
        np.testing.assert_array_equal(out, np.maximum(bn.forward(x), 0))
    assert mask is None


def test_a_model_whose_layers_are_replaced_decides_again():
    """``look.inference_twin`` deep-copies a model (its fusion decisions too) and swaps each batch
    norm for a frozen affine layer of the same length: the copy must not reuse the decisions."""
    rng = np.random.default_rng(3)
    model = lf.Sequential(
        lf.Conv2d(1, 2, 3, padding=1, rng=rng),
        lf.BatchNorm2d(2),
        lf.ReLU(),
        lf.Flatten(),
        lf.Linear(2 * 4 * 4, 3, rng=rng),
    )
    x = rng.standard_normal((2, 1, 4, 4)).astype(np.float32)
    model.train()
    out = model.forward(x)
    model.backward(np.ones_like(out))  # the decisions are cached now
    model.eval()
    model.forward(x)
    d1 = lf.look.saliency(model, x, target=0)
    assert d1.shape == x.shape
