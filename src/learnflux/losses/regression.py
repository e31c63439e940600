"""Regression losses."""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import Loss


class SquaredError(Loss):
    """The series' loss: ``Loss(o, y) = ½ Σ_neurons (o − y)²`` per sample, **mean** over the batch.

    Backward: ``δ = (1/n)(o − y)`` with ``n`` the batch size: for one sample, simply ``o − y``
    (the article's ``δ4 = o3 − y``). Runs exactly on Fractions.
    """

    supports_exact = True

    def forward(self, output: np.ndarray, target: Any) -> Any:
        y = self.match_target(output, target)
        n = output.shape[0]
        diff = output - y
        if output.dtype == object:
            self._delta = diff / n
            return (diff * diff).sum() / (2 * n)
        self._delta = diff * output.dtype.type(1.0 / n) if n != 1 else diff
        flat = diff.reshape(-1)
        return float(np.dot(flat, flat)) * 0.5 / n
