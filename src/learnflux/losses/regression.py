"""Regression losses."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import numpy as np

from .base import Loss, as_output, check_batch, check_finite, check_reduction


def _checked(loss: Loss, out: np.ndarray, target: Any) -> np.ndarray:
    """The target matched to ``out``, both checked: a batch, no NaN or infinity."""
    check_batch(loss, out)
    check_finite(loss, out, "model output")
    y = loss.match_target(out, target)
    check_finite(loss, y, "target")
    return y


class SquaredError(Loss):
    """The series' loss: ``Loss(o, y) = ½ Σ_neurons (o − y)²`` per sample, **mean** over the batch.

    Backward: ``δ = (1/n)(o − y)`` with ``n`` the batch size: for one sample, simply ``o − y``
    (the article's ``δ4 = o3 − y``). Runs exactly on Fractions.
    """

    supports_exact = True

    def forward(self, output: np.ndarray, target: Any) -> Any:
        output = as_output(self, output)
        y = _checked(self, output, target)
        n = output.shape[0]
        diff = output - y
        if output.dtype == object:
            self._delta = diff / n
            return (diff * diff).sum() / (2 * n)
        self._delta = diff * output.dtype.type(1.0 / n) if n != 1 else diff
        flat = diff.reshape(-1)
        return float(np.dot(flat, flat)) * 0.5 / n


def _elementwise_scale(out: np.ndarray, reduction: str, factor: int = 1) -> Any:
    """``factor / N`` (mean over the ``N`` elements) or ``factor`` (sum), in the output's
    arithmetic (a Fraction in exact mode, a float32 scalar for float32 outputs)."""
    if reduction == "mean":
        n = max(out.size, 1)
        return Fraction(factor, n) if out.dtype == object else out.dtype.type(factor / n)
    return Fraction(factor) if out.dtype == object else out.dtype.type(factor)


class MSELoss(Loss):
    """PyTorch's mean squared error: ``Loss = (1/N) Σ (o − y)²`` over **all** ``N`` elements of
    the output (batch × outputs), no ½. With ``reduction="sum"``: ``Σ (o − y)²``.

    Backward: ``δ = (2/N)(o − y)`` (``2(o − y)`` for ``"sum"``).

    Unlike the series' :class:`SquaredError` (``½(o − y)²`` summed over output neurons, mean over
    the batch), the value also divides by the number of outputs per sample and has no ½: for an
    output of width ``D``, ``MSELoss = (2/D)·SquaredError``. Runs exactly on Fractions.

    Args:
        reduction: ``"mean"`` (default) or ``"sum"``.

    Shapes: output ``(batch, ...)``, target of the same shape (``(batch,)`` is accepted for an
    output ``(batch, 1)``).
    """

    supports_exact = True

    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        self.reduction = check_reduction("MSELoss", reduction)

    def forward(self, output: np.ndarray, target: Any) -> Any:
        out = as_output(self, output)
        y = _checked(self, out, target)
        diff = out - y
        if out.dtype == object:
            self._delta = diff * _elementwise_scale(out, self.reduction, 2)
            total = (diff * diff).sum() if diff.size else Fraction(0)
            return total / out.size if self.reduction == "mean" and out.size else total
        flat = diff.reshape(-1)
        total = float(np.dot(flat, flat))
        diff *= _elementwise_scale(out, self.reduction, 2)
        self._delta = diff
        return total / max(out.size, 1) if self.reduction == "mean" else total

    def get_config(self) -> dict[str, Any]:
        return {} if self.reduction == "mean" else {"reduction": self.reduction}


class L1Loss(Loss):
    """Mean absolute error, PyTorch's ``L1Loss``: ``Loss = (1/N) Σ |o − y|`` over all ``N``
    elements (``Σ |o − y|`` with ``reduction="sum"``).

    Backward: ``δ = sign(o − y)/N`` (``sign(o − y)`` for ``"sum"``), with ``sign(0) = 0`` as
    PyTorch (the subgradient that leaves a perfect prediction alone). Runs exactly on Fractions.

    Args:
        reduction: ``"mean"`` (default) or ``"sum"``.

    Shapes: as :class:`MSELoss`.
    """

    supports_exact = True

    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        self.reduction = check_reduction("L1Loss", reduction)

    def forward(self, output: np.ndarray, target: Any) -> Any:
        out = as_output(self, output)
        y = _checked(self, out, target)
        diff = out - y
        scale = _elementwise_scale(out, self.reduction)
        if out.dtype == object:
            zero = Fraction(0)
            self._delta = np.where(diff > zero, scale, np.where(diff < zero, -scale, zero))
            total = np.abs(diff).sum() if diff.size else zero
            return total / out.size if self.reduction == "mean" and out.size else total
        total = float(np.abs(diff).sum(dtype=np.float64))
        delta = np.sign(diff, out=diff)
        delta *= scale
        self._delta = delta
        return total / max(out.size, 1) if self.reduction == "mean" else total

    def get_config(self) -> dict[str, Any]:
        return {} if self.reduction == "mean" else {"reduction": self.reduction}
