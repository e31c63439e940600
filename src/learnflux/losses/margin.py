"""Margin losses: the multi-class hinge (PyTorch's ``MultiMarginLoss``)."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import numpy as np

from ..errors import ConfigError, ShapeError
from .base import Loss, as_output, check_batch, check_finite, check_reduction
from .classification import (
    _weighted_config,
    class_labels,
    class_weight,
    integer_labels,
    subtract_at,
    weight_for,
)


class MultiMarginLoss(Loss):
    """The multi-class hinge loss, PyTorch's ``MultiMarginLoss``: the score of the true class
    ``y`` should beat every other class's score by at least ``margin``. For scores ``x`` of one
    sample (``C`` classes, raw outputs of the last layer, no softmax)::

        z_i    = margin − x_y + x_i                    for each class i ≠ y
        loss_n = (w_y / C) · Σ_{i ≠ y} max(0, z_i)^p    (p = 1 or 2; w ≡ 1 without weights)
        Loss   = (1/N) Σ_n loss_n  ("mean", over the N samples)  or  Σ_n loss_n  ("sum")

    The class weight multiplies the hinge after the power (PyTorch's code; its documentation
    writes ``max(0, w_y·z_i)^p``, which differs for ``p = 2``), and the mean divides by ``N``,
    not by the weights. Backward (``g = 1/(N·C)`` for "mean", ``1/C`` for "sum")::

        δ_{n, i} = g · w_y · p · max(0, z_i)^(p − 1)    for i ≠ y with z_i > 0, else 0
        δ_{n, y} = −Σ_{i ≠ y} δ_{n, i}

    At ``z_i = 0`` exactly the hinge is off (δ 0), as PyTorch. Runs exactly on Fractions.

    Args:
        p: 1 (default, the hinge) or 2 (the squared hinge).
        margin: the margin (default 1).
        weight: one weight ``≥ 0`` per class, or None (all 1).
        reduction: ``"mean"`` (default) or ``"sum"``; keyword-only.

    Shapes: scores ``(N, C)``, integer labels ``(N,)`` in ``[0, C)`` (``(N, 1)`` accepted).
    """

    supports_exact = True

    def __init__(
        self, p: int = 1, margin: float = 1.0, weight: Any = None, *, reduction: str = "mean"
    ) -> None:
        super().__init__()
        if isinstance(p, bool) or p not in (1, 2):
            raise ConfigError(f"MultiMarginLoss: p must be 1 or 2 (as in PyTorch), got {p!r}")
        if isinstance(margin, bool) or not isinstance(
            margin, (int, float, np.integer, np.floating, Fraction)
        ):
            raise ConfigError(f"MultiMarginLoss: margin must be a number, got {margin!r}")
        if not np.isfinite(float(margin)):
            raise ConfigError(f"MultiMarginLoss: margin must be finite, got {margin!r}")
        self.p = int(p)
        self.margin = float(margin)
        self.weight = class_weight("MultiMarginLoss", weight)
        self.reduction = check_reduction("MultiMarginLoss", reduction)

    def forward(self, output: np.ndarray, target: Any) -> Any:
        out = as_output(self, output)
        if out.ndim != 2:
            raise ShapeError(
                f"{self.describe()}: expects scores of shape (batch, classes), got {tuple(out.shape)}"
            )
        check_batch(self, out)
        check_finite(self, out, "model output")
        labels, _ = class_labels(self, out, integer_labels(self, target, out), None, "scores")
        w = weight_for(self, self.weight, out)
        exact = out.dtype == object
        n, c = out.shape
        if exact:
            zero: Any = Fraction(0)
            margin: Any = Fraction(self.margin)
            g: Any = Fraction(1, n * c if self.reduction == "mean" else c)
        else:
            zero = out.dtype.type(0)
            margin = out.dtype.type(self.margin)
            g = out.dtype.type(1.0 / (n * c if self.reduction == "mean" else c))
        z = out - np.take_along_axis(out, labels, axis=1)
        z += margin  # z_i = margin − x_y + x_i
        on = z > zero
        on[np.arange(n), labels[:, 0]] = False  # the true class is not a rival
        hinge = np.where(on, z, zero)  # max(0, z_i), 0 at i = y
        terms = hinge if self.p == 1 else hinge * hinge
        slope = np.where(on, g, zero) if self.p == 1 else hinge * (2 * g)  # ∂(g·max(0, z)^p)/∂z
        if w is not None:
            wy = w.reshape(-1)[labels]  # (N, 1)
            terms = terms * wy
            slope = slope * wy
        if exact:
            value: Any = terms.sum() / (n * c if self.reduction == "mean" else c)
        else:
            value = float(terms.sum(dtype=np.float64)) / (n * c if self.reduction == "mean" else c)
        delta = slope if slope.dtype == out.dtype else slope.astype(out.dtype)
        subtract_at(delta, labels, slope.sum(axis=1, keepdims=True))
        self._delta = delta
        return value

    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = {}
        if self.p != 1:
            config["p"] = self.p
        if self.margin != 1.0:
            config["margin"] = self.margin
        return _weighted_config(self, config)


__all__ = ["MultiMarginLoss"]
