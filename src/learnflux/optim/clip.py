"""Gradient clipping: by global norm (over all parameters together) and by value."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..core.param import Param
from ..errors import ConfigError, NonFiniteError
from ..numbers import scalar_like


def _grads(params: Any) -> list[Param]:
    if isinstance(params, Param):
        plist = [params]
    elif hasattr(params, "parameters") and callable(params.parameters):
        plist = list(params.parameters())
    else:
        plist = list(params)
    return [p for p in plist if p.grad is not None]


def clip_grad_norm_(
    params: Any, max_norm: float, norm_type: float = 2.0, error_if_nonfinite: bool = False
) -> float:
    """Rescale all gradients together so that their global norm is at most ``max_norm``.

    As ``torch.nn.utils.clip_grad_norm_``: with ``‖·‖ₚ`` the ``norm_type`` norm,
    ``N = ‖(‖g₁‖ₚ, ‖g₂‖ₚ, ...)‖ₚ`` (the norm of all gradients concatenated), every gradient is
    multiplied by ``min(1, max_norm / (N + 1e-6))``. ``norm_type`` may be ``inf`` (largest
    absolute value). Parameters without a gradient are skipped. A clipped gradient is a new
    array (a layer's own buffers are never written into).

    Args:
        params: a model, a Param, or an iterable of Params.
        max_norm: the largest norm allowed.
        norm_type: p of the p-norm (2.0 by default; ``float("inf")`` for the max norm).
        error_if_nonfinite: raise :class:`NonFiniteError` when the norm is NaN or infinite
            (otherwise the gradients are scaled by a NaN/inf coefficient, as PyTorch does).

    Returns:
        The global norm ``N`` before clipping, as a Python float.
    """
    norm_type = float(norm_type)
    max_norm = float(max_norm)
    if not norm_type > 0:
        raise ConfigError(f"clip_grad_norm_: norm_type must be > 0 or inf, got {norm_type}")
    plist = _grads(params)
    if not plist:
        return 0.0
    norms = []
    for p in plist:
        g = p.grad.reshape(-1)
        if norm_type == math.inf:
            norms.append(float(np.max(np.abs(g))) if g.size else 0.0)
        elif norm_type == 2.0:
            norms.append(math.sqrt(float(np.dot(g, g))))
        elif norm_type == 1.0:
            norms.append(float(np.sum(np.abs(g))))
        else:
            norms.append(float(np.sum(np.abs(g) ** norm_type)) ** (1.0 / norm_type))
    if norm_type == math.inf:
        total = max(norms)
    else:
        total = float(np.sum(np.asarray(norms) ** norm_type) ** (1.0 / norm_type))
    if error_if_nonfinite and not math.isfinite(total):
        raise NonFiniteError(
            f"clip_grad_norm_: the total {norm_type}-norm of the gradients is {total}; "
            "set error_if_nonfinite=False to clip anyway"
        )
    coef = max_norm / (total + 1e-6)
    if coef < 1.0 or math.isnan(coef):
        for p in plist:
            p.grad = p.grad * scalar_like(coef, p.grad.dtype)
    return total


def clip_grad_value_(params: Any, clip_value: float) -> None:
    """Clamp every gradient coordinate into ``[-clip_value, clip_value]``
    (as ``torch.nn.utils.clip_grad_value_``; the clipped gradient is a new array)."""
    c = float(clip_value)
    if not c >= 0:
        raise ConfigError(f"clip_grad_value_: clip_value must be >= 0, got {clip_value!r}")
    for p in _grads(params):
        g = p.grad
        lo, hi = scalar_like(-c, g.dtype), scalar_like(c, g.dtype)
        p.grad = np.clip(g, lo, hi)
