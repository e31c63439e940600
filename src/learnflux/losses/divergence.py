"""Divergences between distributions: PyTorch's ``KLDivLoss``."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ConfigError, DataError
from .base import Loss, check_batch, check_finite, check_probabilities
from .classification import _float_output

KL_REDUCTIONS = ("mean", "batchmean", "sum")


class KLDivLoss(Loss):
    """The Kullback-Leibler divergence ``KL(y ‖ p)``, PyTorch's ``KLDivLoss``. The model outputs
    **log-probabilities** ``x = log p`` (a ``LogSoftmax`` layer); the target ``y`` holds
    probabilities (or their logarithms with ``log_target=True``). For each element::

        ℓ = y·(ln y − x)        (0 where y = 0)          log_target=False
        ℓ = e^y·(y − x)                                   log_target=True

        Loss = Σ ℓ / N_r    with N_r = the number of elements ("mean"), the batch size
                            ("batchmean": the true KL divergence per sample), or 1 ("sum")

    ``"mean"`` is PyTorch's default but divides by every element, not by the samples: use
    ``"batchmean"`` for the divergence itself. Backward (the loss is linear in ``x``)::

        δ = −y/N_r      (−e^y/N_r with log_target=True)

    so over a ``LogSoftmax`` it becomes ``(softmax·Σ_c y_c − y)/N_r``, the cross-entropy's δ.

    Args:
        reduction: ``"mean"`` (default), ``"batchmean"`` or ``"sum"``; keyword-only.
        log_target: the target holds ``ln y`` (finite, ≤ 0) instead of ``y`` (in ``[0, 1]``).

    Shapes: log-probabilities ``(N, ...)`` and a target of the same shape. The rows need not
    sum to 1 (PyTorch does not ask it). Not exact (log and exp).
    """

    def __init__(self, *, reduction: str = "mean", log_target: bool = False) -> None:
        super().__init__()
        if reduction not in KL_REDUCTIONS:
            hint = " (a loss returns one number per batch)" if reduction == "none" else ""
            raise ConfigError(
                f"KLDivLoss: reduction must be 'mean', 'batchmean' or 'sum', got {reduction!r}{hint}"
            )
        if not isinstance(log_target, (bool, np.bool_)):
            raise ConfigError(f"KLDivLoss: log_target must be true or false, got {log_target!r}")
        self.reduction = reduction
        self.log_target = bool(log_target)

    def forward(self, output: np.ndarray, target: Any) -> float:
        out = _float_output(self, output)
        check_batch(self, out)
        check_finite(self, out, "model output")
        y = self.match_target(out, target)
        if self.log_target:
            check_finite(self, y, "target")
            if float(y.max()) > 0:
                raise DataError(
                    f"{self.describe()}: with log_target=True the target holds log-probabilities "
                    f"(<= 0), got {float(y.max()):.6g}"
                )
            weight = np.exp(y)  # the probabilities e^y
            elements = y - out
        else:
            check_probabilities(self, y, axis=None)
            weight = y
            elements = np.zeros_like(y)
            np.log(y, out=elements, where=y > 0)  # ln y where y > 0; y·ln y = 0 at y = 0
            elements -= out
        elements *= weight
        value = float(elements.sum(dtype=np.float64))
        n = {"mean": out.size, "batchmean": out.shape[0], "sum": 1}[self.reduction]
        delta = out.dtype.type(0) - weight  # −y (+0, not −0, where y = 0)
        if n != 1:
            delta *= out.dtype.type(1.0 / n)
            value /= n
        self._delta = delta
        return value

    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = {} if self.reduction == "mean" else {"reduction": self.reduction}
        if self.log_target:
            config["log_target"] = True
        return config


__all__ = ["KLDivLoss"]
