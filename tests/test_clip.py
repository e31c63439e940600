"""Gradient clipping by global norm and by value, against torch.nn.utils."""

from __future__ import annotations

import math

import numpy as np
import pytest

import learnflux as lf
from learnflux.core.param import Param
from learnflux.errors import ConfigError, NonFiniteError

try:  # PyTorch is the parity oracle: the tests that compare with it skip without it, the rest run
    import torch
except ImportError:
    torch = None
needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch (the parity oracle) is not installed")

SHAPES = [(3, 4), (5,), (2, 2, 2)]


def make(seed=0, scale=1.0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    grads = [(scale * rng.standard_normal(s)).astype(dtype) for s in SHAPES]
    params = []
    for g in grads:
        p = Param(np.zeros(g.shape, dtype=dtype))
        p.grad = g.copy()
        params.append(p)
    tparams = []
    for g in grads:
        t = torch.zeros(g.shape, dtype=torch.from_numpy(g).dtype, requires_grad=True)
        t.grad = torch.from_numpy(g.copy())
        tparams.append(t)
    return params, tparams, grads


@needs_torch
@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, math.inf])
@pytest.mark.parametrize("max_norm", [0.5, 1e6])
def test_clip_grad_norm_matches_torch(norm_type, max_norm):
    params, tparams, grads = make(seed=int(norm_type) if norm_type != math.inf else 9)
    total = lf.clip_grad_norm_(params, max_norm, norm_type=norm_type)
    ttotal = torch.nn.utils.clip_grad_norm_(tparams, max_norm, norm_type=norm_type, foreach=False)
    assert isinstance(total, float)
    assert total == pytest.approx(float(ttotal), rel=1e-12)
    for p, t in zip(params, tparams, strict=True):
        np.testing.assert_allclose(p.grad, t.grad.numpy(), rtol=1e-12)
    if max_norm == 1e6:  # nothing to clip: the gradients are untouched
        for p, g in zip(params, grads, strict=True):
            np.testing.assert_array_equal(p.grad, g)
    else:
        assert lf.clip_grad_norm_(params, 1e9, norm_type=norm_type) == pytest.approx(max_norm, rel=1e-5)


@needs_torch
def test_clip_grad_norm_float32_skips_missing_grads_and_never_writes_into_a_grad():
    params, tparams, grads = make(seed=4, scale=10.0, dtype=np.float32)
    extra = Param(np.zeros(3, dtype=np.float32))  # no gradient: skipped
    owned = [p.grad for p in params]
    total = lf.clip_grad_norm_(params + [extra], 1.0)
    ttotal = torch.nn.utils.clip_grad_norm_(tparams, 1.0)
    assert total == pytest.approx(float(ttotal), rel=1e-5)
    assert extra.grad is None
    for p, t, g, o in zip(params, tparams, grads, owned, strict=True):
        assert p.grad.dtype == np.float32
        np.testing.assert_allclose(p.grad, t.grad.numpy(), rtol=1e-5)
        np.testing.assert_array_equal(o, g)  # the layer's array was not modified


def test_clip_grad_norm_accepts_a_model_and_reports_nonfinite():
    model = lf.Sequential(lf.Input(2), lf.Linear(2, 2))
    for p in model.parameters():
        p.grad = np.full(p.shape, 3.0, dtype=p.dtype)
    total = lf.clip_grad_norm_(model, 1.0)
    assert total == pytest.approx(math.sqrt(6 * 9), rel=1e-6)
    assert math.sqrt(
        sum(float(np.sum(p.grad.astype(np.float64) ** 2)) for p in model.parameters())
    ) == pytest.approx(1.0, rel=1e-5)
    model.parameters()[0].grad[0, 0] = np.inf
    with pytest.raises(NonFiniteError, match="norm"):
        lf.clip_grad_norm_(model, 1.0, error_if_nonfinite=True)
    with pytest.raises(ConfigError):
        lf.clip_grad_norm_(model, 1.0, norm_type=0)


@needs_torch
def test_clip_grad_value_matches_torch():
    params, tparams, grads = make(seed=2, scale=2.0)
    lf.clip_grad_value_(params, 0.7)
    torch.nn.utils.clip_grad_value_(tparams, 0.7, foreach=False)
    for p, t, g in zip(params, tparams, grads, strict=True):
        np.testing.assert_array_equal(p.grad, t.grad.numpy())
        assert np.max(np.abs(p.grad)) <= 0.7
        assert not np.array_equal(p.grad, g)
    with pytest.raises(ConfigError):
        lf.clip_grad_value_(params, -1.0)
