"""Robust regression losses: quadratic near the target, linear far from it, so an outlier pulls
with a bounded force (PyTorch's ``HuberLoss`` and ``SmoothL1Loss``)."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import numpy as np

from ..errors import ConfigError
from .base import Loss, as_output, check_reduction
from .regression import _checked, _elementwise_scale


def _threshold(loss_name: str, name: str, value: Any, allow_zero: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating, Fraction)):
        raise ConfigError(f"{loss_name}: {name} must be a number, got {value!r}")
    v = float(value)
    if not np.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ConfigError(f"{loss_name}: {name} must be a finite number {bound}, got {value!r}")
    return v


def _huber(loss: Loss, output: Any, target: Any, d: float, divide: bool) -> Any:
    """Value of the Huber loss with threshold ``d`` (divided by ``d`` when ``divide``: the smooth
    L1 loss, whose ``d = 0`` is the L1 loss); its δ goes to ``loss._delta``."""
    out = as_output(loss, output)
    y = _checked(loss, out, target)
    z = out - y
    exact = out.dtype == object
    one: Any = Fraction(1) if exact else out.dtype.type(1)
    zero, half = one - one, one / 2
    dd: Any = Fraction(d) if exact else out.dtype.type(d)
    a = np.abs(z)
    if d == 0:  # smooth L1 with β = 0: |z|, slope sign(z) (0 at 0)
        elements = a
        slope = np.where(z > zero, one, np.where(z < zero, -one, zero))
        divide = False
    else:  # ½z² inside, d·(|z| − ½d) outside; the slope is clip(z, −d, d)
        elements = np.where(a < dd, half * z * z, dd * (a - half * dd))
        slope = np.where(z > dd, dd, np.where(z < -dd, -dd, z))
    scale = _elementwise_scale(out, loss.reduction)
    if divide:
        scale = scale / dd
    loss._delta = slope * scale
    if exact:
        total = elements.sum() if elements.size else zero
    else:
        total = float(elements.sum(dtype=np.float64))
    if divide:
        total = total / dd if exact else total / d
    return total / out.size if loss.reduction == "mean" else total


class HuberLoss(Loss):
    """PyTorch's ``HuberLoss``: for each element, with ``z = o − y`` and the threshold ``δ_H``
    (``delta``)::

        ℓ(z) = ½ z²                  if |z| < δ_H
               δ_H·(|z| − ½ δ_H)     otherwise
        Loss = (1/N) Σ ℓ  over all N elements ("mean")  or  Σ ℓ  ("sum")

    Backward: ``δ = clip(z, −δ_H, δ_H)/N`` (``clip(z, −δ_H, δ_H)`` for "sum"): the squared
    error's ``z`` near the target, a constant pull ``±δ_H`` beyond it. Runs exactly on Fractions.

    Args:
        reduction: ``"mean"`` (default) or ``"sum"``.
        delta: the threshold ``δ_H > 0`` (default 1).

    Shapes: as :class:`MSELoss` (the target has the output's shape).
    """

    supports_exact = True

    def __init__(self, reduction: str = "mean", delta: float = 1.0) -> None:
        super().__init__()
        self.reduction = check_reduction("HuberLoss", reduction)
        self.delta = _threshold("HuberLoss", "delta", delta, allow_zero=False)

    def forward(self, output: np.ndarray, target: Any) -> Any:
        return _huber(self, output, target, self.delta, divide=False)

    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = {} if self.reduction == "mean" else {"reduction": self.reduction}
        if self.delta != 1.0:
            config["delta"] = self.delta
        return config


class SmoothL1Loss(Loss):
    """PyTorch's ``SmoothL1Loss``: for each element, with ``z = o − y`` and the threshold ``β``
    (``beta``)::

        ℓ(z) = ½ z²/β        if |z| < β
               |z| − ½ β     otherwise
        Loss = (1/N) Σ ℓ  ("mean")  or  Σ ℓ  ("sum")

    Backward: ``δ = clip(z/β, −1, 1)/N``. It is ``HuberLoss(delta=β)/β``: the L1 loss with its
    corner rounded off; ``β = 0`` is exactly :class:`L1Loss` (δ = sign(z)/N, 0 at 0). Runs
    exactly on Fractions.

    Args:
        reduction: ``"mean"`` (default) or ``"sum"``; keyword-only (as PyTorch's, after its
            deprecated arguments).
        beta: the threshold ``β ≥ 0`` (default 1).

    Shapes: as :class:`MSELoss`.
    """

    supports_exact = True

    def __init__(self, *, reduction: str = "mean", beta: float = 1.0) -> None:
        super().__init__()
        self.reduction = check_reduction("SmoothL1Loss", reduction)
        self.beta = _threshold("SmoothL1Loss", "beta", beta, allow_zero=True)

    def forward(self, output: np.ndarray, target: Any) -> Any:
        return _huber(self, output, target, self.beta, divide=True)

    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = {} if self.reduction == "mean" else {"reduction": self.reduction}
        if self.beta != 1.0:
            config["beta"] = self.beta
        return config


__all__ = ["HuberLoss", "SmoothL1Loss"]
