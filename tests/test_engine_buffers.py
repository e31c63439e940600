"""Issue 5's engine tuning: gradient buffers reused across steps, the optimizers' shared scratch,
the one-pass ReLU of the inference phase. Each test pins the behaviour a user can observe."""

from __future__ import annotations

import numpy as np
import pytest

import learnflux as lf
from learnflux.core.param import Param


def _mlp(seed: int = 0, dtype: str = "float32") -> lf.Sequential:
    lf.seed(seed)
    return lf.Sequential(lf.Linear(4, 5), lf.ReLU(), lf.Linear(5, 3)).astype(dtype)


def _step_grads(model: lf.Sequential, x: np.ndarray, accumulate: bool = False) -> None:
    out = model(x)
    model.backward(np.ones_like(out) / len(x), need_input_delta=False, accumulate=accumulate)


def _expected_grads(model: lf.Sequential, x: np.ndarray) -> dict[str, np.ndarray]:
    """The gradients of a fresh copy of ``model`` (nothing reused), by name."""
    twin = lf.Sequential.from_config(model.get_config()).astype(model.dtype)
    twin.load_state_dict(model.state_dict())
    _step_grads(twin, x)
    return {name: p.grad.copy() for name, p in twin.named_parameters()}


def test_backward_writes_into_the_previous_gradient_arrays():
    model = _mlp()
    rng = np.random.default_rng(1)
    x1, x2 = rng.standard_normal((6, 4)), rng.standard_normal((6, 4))
    _step_grads(model, x1)
    first = {name: p.grad for name, p in model.named_parameters()}
    expected = _expected_grads(model, x2)
    _step_grads(model, x2)
    for name, p in model.named_parameters():
        assert p.grad is first[name], name  # the same array: no allocation in the steady state
        assert p.grad.dtype == np.float32
        np.testing.assert_array_equal(p.grad, expected[name])


def test_a_gradient_array_from_elsewhere_is_never_written_into():
    model = _mlp()
    x = np.random.default_rng(2).standard_normal((3, 4))
    w = model.layers[0].weight
    mine = np.full(w.shape, 7.0, dtype=np.float32)
    w.grad = mine
    _step_grads(model, x)
    assert w.grad is not mine
    np.testing.assert_array_equal(mine, 7.0)
    # after zero_grad, a gradient kept by the caller is not overwritten by the next pass either
    kept = w.grad
    saved = kept.copy()
    model.zero_grad()
    _step_grads(model, 2 * x)
    assert w.grad is not kept
    np.testing.assert_array_equal(kept, saved)


def test_accumulation_still_adds_and_never_writes_into_the_first_gradient():
    model = _mlp()
    rng = np.random.default_rng(3)
    x1, x2 = rng.standard_normal((5, 4)), rng.standard_normal((5, 4))
    g1 = _expected_grads(model, x1)
    g2 = _expected_grads(model, x2)
    _step_grads(model, x1)
    first = {name: p.grad for name, p in model.named_parameters()}
    _step_grads(model, x2, accumulate=True)
    for name, p in model.named_parameters():
        np.testing.assert_allclose(p.grad, g1[name] + g2[name], rtol=1e-6)
        np.testing.assert_array_equal(first[name], g1[name])
    # back to replacing: the accumulated array (not the param's buffer) is left alone
    acc = {name: p.grad for name, p in model.named_parameters()}
    saved = {name: a.copy() for name, a in acc.items()}
    _step_grads(model, x1)
    for name, p in model.named_parameters():
        np.testing.assert_array_equal(acc[name], saved[name])
        np.testing.assert_array_equal(p.grad, g1[name])


def test_grad_buffer_is_none_for_exact_parameters():
    p = Param(np.array([1, 2], dtype=object))
    assert p.grad_buffer() is None
    q = Param(np.zeros(3, dtype=np.float32))
    buf = q.grad_buffer()
    assert buf.shape == (3,) and buf.dtype == np.float32
    q.set_grad(buf)
    assert q.grad_buffer() is buf
    q.accumulate = True
    assert q.grad_buffer() is None


@pytest.mark.parametrize(
    "make",
    [
        lambda ps: lf.SGD(ps, lr=0.1, momentum=0.9, weight_decay=0.01, nesterov=True),
        lambda ps: lf.SGD(ps, lr=0.1, momentum=0.9, dampening=0.5),
        lambda ps: lf.Adam(ps, lr=0.01, weight_decay=0.1),
    ],
)
def test_shared_scratch_gives_each_parameter_its_own_update(make):
    """One scratch buffer serves parameters of different sizes: the result equals updating each
    parameter with an optimizer of its own."""
    rng = np.random.default_rng(4)
    shapes = [(7, 3), (2,), (), (5, 5)]
    values = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    grads = [[rng.standard_normal(s).astype(np.float32) for s in shapes] for _ in range(3)]
    together = [Param(v.copy()) for v in values]
    alone = [Param(v.copy()) for v in values]
    opt = make(together)
    opts = [make([p]) for p in alone]
    for step in grads:
        for p, q, g in zip(together, alone, step, strict=True):
            p.grad = g
            q.grad = g.copy()
        opt.step()
        for o in opts:
            o.step()
    for p, q in zip(together, alone, strict=True):
        np.testing.assert_array_equal(p.value, q.value)


def test_relu_inference_phase_matches_training_phase():
    x = np.array([[-1.5, -0.0, 0.0, 2.0, np.float32(1e-30)]], dtype=np.float32)
    relu = lf.ReLU()
    train_out = relu.forward(x)
    relu.eval()
    infer_out = relu.forward(x)
    assert infer_out.dtype == np.float32
    np.testing.assert_array_equal(infer_out, train_out)
    np.testing.assert_array_equal(x, [[-1.5, -0.0, 0.0, 2.0, np.float32(1e-30)]])  # input intact
    assert relu._cache is None
    assert np.isnan(relu.forward(np.array([np.nan], dtype=np.float32))[0])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_mlp_inference_equals_training_output_bit_for_bit(dtype):
    """Linear computes oᵀ = W·xᵀ in both phases (a transposed view in inference, a C-ordered copy
    in training): the outputs of the two phases are identical, at any depth."""
    lf.seed(5)
    model = lf.Sequential(lf.Linear(6, 9), lf.ReLU(), lf.Linear(9, 9), lf.ReLU(), lf.Linear(9, 4)).astype(
        dtype
    )
    x = np.random.default_rng(6).standard_normal((11, 6)).astype(dtype)
    train_out = model(x)
    assert train_out.flags.c_contiguous
    infer_out = model.predict(x)
    assert infer_out.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(infer_out, train_out)
    np.testing.assert_allclose(train_out, _reference_forward(model, x), rtol=1e-5)


def _reference_forward(model: lf.Sequential, x: np.ndarray) -> np.ndarray:
    a = x.astype(np.float64)
    for layer in model.layers:
        if isinstance(layer, lf.Linear):
            a = a @ layer.weight.value.T.astype(np.float64) + layer.bias.value
        else:
            a = np.maximum(a, 0)
    return a


class _DeltaProbe(lf.Tanh):
    """Tanh that records a weak reference to every δ it receives, and, when it runs, which of
    the δ recorded earlier in this backward pass are still alive."""

    seen: list = []
    alive_when_called: list = []

    def backward(self, delta, need_input_delta=True):
        import weakref

        type(self).alive_when_called.append(sum(r() is not None for r in type(self).seen))
        type(self).seen.append(weakref.ref(delta))
        return super().backward(delta, need_input_delta)


def test_backward_frees_each_delta_once_used():
    """Peak memory of a backward pass is about one layer's δ, not the sum over layers."""
    _DeltaProbe.seen, _DeltaProbe.alive_when_called = [], []
    lf.seed(0)
    x = lf.Input(4)
    h = lf.Linear(4, 4)(x)
    for _ in range(4):
        h = _DeltaProbe()(h)
    model = lf.Model(x, lf.Linear(4, 2)(h))
    model(np.ones((3, 4), np.float32))
    model.backward(np.ones((3, 2), np.float32))
    # each probe sees no earlier δ alive except, at most, the one just handed to it
    assert len(_DeltaProbe.alive_when_called) == 4
    assert max(_DeltaProbe.alive_when_called) <= 1


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_linear_batch_of_one_gradient_is_the_outer_product(dtype):
    """Batch 1 takes the broadcast outer product instead of np.matmul (issue 5's batch-1 case)."""
    model = _mlp(dtype=dtype)
    x = np.random.default_rng(2).standard_normal((1, 4)).astype(dtype)
    expected = _expected_grads(model, np.repeat(x, 2, axis=0))  # the same sample twice: same mean
    _step_grads(model, x)
    for name, p in model.named_parameters():
        np.testing.assert_allclose(p.grad, expected[name], rtol=1e-5 if dtype == "float32" else 1e-12)
    assert lf.gradcheck(lf.Linear(4, 3), np.random.default_rng(3).standard_normal((1, 4)))


def test_relu_on_a_fortran_ordered_input_keeps_values_and_order():
    """In inference a Linear hands ReLU a Fortran-ordered array; ReLU keeps that order (so the
    next Linear reads it without a copy) and computes max(x, 0) exactly, NaN kept."""
    x = np.asfortranarray(np.random.default_rng(4).standard_normal((6, 5)).astype(np.float32))
    x[2, 3] = np.nan
    out = lf.ReLU().eval().forward(x)
    assert out.flags.f_contiguous
    np.testing.assert_array_equal(out, np.maximum(x, 0))
