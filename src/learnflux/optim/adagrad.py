"""Adagrad: per-coordinate learning rates from the sum of all past squared gradients."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..param import Param
from .optimizer import Optimizer, ParamsLike


class Adagrad(Optimizer):
    """Adagrad (Duchi et al., 2011), as ``torch.optim.Adagrad``.

    For every parameter ``w`` with gradient ``g``, at step ``t = 1, 2, ...`` (``α`` = ``lr``,
    ``η`` = ``lr_decay``, ``λ`` = ``weight_decay``, ``ε`` = ``eps``; ``s`` starts at
    ``initial_accumulator_value``)::

        g ← g + λ·w                     (if λ ≠ 0)
        α̃ ← α / (1 + (t − 1)·η)
        s ← s + g²
        w ← w − α̃ · g / (√s + ε)

    State per parameter: ``step`` and ``sum``.

    Args:
        params: ``model.parameters()``, a model, or a list of parameter groups (dicts).
        lr: the learning rate α.
        lr_decay: η.
        weight_decay: λ (L2 penalty added to the gradient).
        initial_accumulator_value: the starting value of ``s``.
        eps: ε, added to the denominator.
    """

    def __init__(
        self,
        params: ParamsLike,
        lr: float = 1e-2,
        lr_decay: float = 0,
        weight_decay: float = 0,
        initial_accumulator_value: float = 0,
        eps: float = 1e-10,
    ) -> None:
        super().__init__(
            params,
            {
                "lr": lr,
                "lr_decay": lr_decay,
                "weight_decay": weight_decay,
                "initial_accumulator_value": initial_accumulator_value,
                "eps": eps,
            },
        )

    def _update(self, p: Param, g: np.ndarray, group: dict[str, Any], state: dict[str, Any]) -> None:
        w = p.value
        wd = float(group["weight_decay"])
        if "step" not in state:
            state["step"] = 0
            state["sum"] = self._zeros(p, float(group["initial_accumulator_value"]))
        state["step"] += 1
        step = state["step"]
        if wd != 0:
            d = self._buffer(p, 0)
            np.multiply(w, self._s(wd, p), out=d)
            d += g
            g = d
        clr = float(group["lr"]) / (1 + (step - 1) * float(group["lr_decay"]))
        s = state["sum"]
        t = self._buffer(p, 1)
        np.multiply(g, g, out=t)
        s += t
        np.sqrt(s, out=t)
        t += self._s(group["eps"], p)
        np.divide(g, t, out=t)
        t *= self._s(clr, p)
        w -= t
