"""Batch-norm statistics and backward in NumPy, over the layout ``(N, C, L)`` (channel ``c``
owns the rows ``x[:, c, :]``; ``m = N·L`` values per channel)."""

from __future__ import annotations

from typing import Optional

import numpy as np

from ...numbers import scalar_like
from .eltwise import relu_backward, relu_forward


def batchnorm_forward(
    x3: np.ndarray, gamma: Optional[np.ndarray], beta: Optional[np.ndarray], eps: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(o, x̂, μ, σ²_biased, 1/σ)`` with ``x̂ = (x − μ)/σ``, ``σ = √(σ² + ε)`` and ``o = γ·x̂ + β``
    (``o`` a copy of ``x̂`` without ``γ``). The statistics are sums over axes 0 and 2, the inner
    one contiguous; the variance is a sum of products (einsum, no temporary)."""
    dt = x3.dtype
    m = x3.shape[0] * x3.shape[2]
    inv_m = scalar_like(1.0 / m, dt)
    mean = np.einsum("ncl->c", x3) * inv_m
    xhat = x3 - mean[:, None]
    var = np.einsum("ncl,ncl->c", xhat, xhat) * inv_m
    inv_std = 1 / np.sqrt(var + scalar_like(eps, dt))
    xhat *= inv_std[:, None]
    if gamma is None:
        return xhat.copy(), xhat, mean, var, inv_std
    out = xhat * gamma[:, None]
    if beta is not None:
        out += beta[:, None]
    return out, xhat, mean, var, inv_std


def batchnorm_relu_forward(
    x3: np.ndarray, gamma: Optional[np.ndarray], beta: Optional[np.ndarray], eps: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Batch norm then ReLU: ``(ReLU(o), [o ≥ 0], x̂, μ, σ²_biased, 1/σ)`` — the batch norm of
    :func:`batchnorm_forward` followed by :func:`.eltwise.relu_forward` (the compiled kernels do
    both in one pass, with the same values)."""
    out, xhat, mean, var, inv_std = batchnorm_forward(x3, gamma, beta, eps)
    out, mask = relu_forward(out, True)
    return out, mask, xhat, mean, var, inv_std


def batchnorm_backward(
    d3: np.ndarray,
    xhat3: np.ndarray,
    gain: np.ndarray,
    need_input_delta: bool,
    relu_mask: Optional[np.ndarray] = None,
) -> tuple[Optional[np.ndarray], np.ndarray, np.ndarray]:
    """``(δx or None, Σδ, Σδ·x̂)`` per channel, ``δx = gain·(δ − mean(δ) − x̂·mean(δ·x̂))`` with
    ``gain = γ/σ``. With ``relu_mask`` (a ReLU after the batch norm, :func:`batchnorm_relu_forward`)
    ``δ`` is the ReLU's output δ and ``δ ⊙ mask`` (the ReLU's backward) stands for it."""
    if relu_mask is not None:
        d3 = relu_backward(d3, relu_mask)
    sum_d = np.einsum("ncl->c", d3)
    sum_dx = np.einsum("ncl,ncl->c", d3, xhat3)
    if not need_input_delta:
        return None, sum_d, sum_dx
    inv_m = scalar_like(1.0 / (xhat3.shape[0] * xhat3.shape[2]), d3.dtype)
    # four passes, one new array
    d_in = xhat3 * (-(sum_dx * inv_m))[:, None]
    d_in += d3
    d_in -= (sum_d * inv_m)[:, None]
    d_in *= gain[:, None]
    return d_in, sum_d, sum_dx
