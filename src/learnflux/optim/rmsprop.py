"""RMSprop: divide the gradient by a running root mean square of its recent values."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ConfigError
from ..param import Param
from .optimizer import Optimizer, ParamsLike


class RMSprop(Optimizer):
    """RMSprop (Hinton, 2012), as ``torch.optim.RMSprop``.

    For every parameter ``w`` with gradient ``g`` (``α`` = ``lr``, ``ρ`` = ``alpha``,
    ``ε`` = ``eps``, ``λ`` = ``weight_decay``, ``μ`` = ``momentum``; ``s``, ``ḡ``, ``b`` start
    at 0)::

        g ← g + λ·w                          (if λ ≠ 0)
        s ← ρ·s + (1 − ρ)·g²                 running mean of g²
        ḡ ← ρ·ḡ + (1 − ρ)·g                  (centered only) running mean of g
        d ← √(s − ḡ²) + ε  if centered, else √s + ε
        b ← μ·b + g/d ;  w ← w − α·b          (if μ > 0)
        w ← w − α·g/d                         (otherwise)

    State per parameter: ``step``, ``square_avg`` (and ``grad_avg``, ``momentum_buffer``).

    Args:
        params: ``model.parameters()``, a model, or a list of parameter groups (dicts).
        lr: the learning rate α.
        alpha: ρ, the smoothing constant of the running means.
        eps: ε, added to the denominator.
        weight_decay: λ (L2 penalty added to the gradient).
        momentum: μ.
        centered: normalise by an estimate of the variance of g instead of its raw second moment.
    """

    def __init__(
        self,
        params: ParamsLike,
        lr: float = 1e-2,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0,
        momentum: float = 0,
        centered: bool = False,
    ) -> None:
        super().__init__(
            params,
            {
                "lr": lr,
                "alpha": alpha,
                "eps": eps,
                "weight_decay": weight_decay,
                "momentum": momentum,
                "centered": bool(centered),
            },
        )

    def _validate_group(self, group: dict[str, Any]) -> None:
        super()._validate_group(group)
        if not 0.0 <= float(group["alpha"]) <= 1.0:
            raise ConfigError(f"RMSprop: alpha must be in [0, 1], got {group['alpha']!r}")

    def _update(self, p: Param, g: np.ndarray, group: dict[str, Any], state: dict[str, Any]) -> None:
        w = p.value
        alpha = float(group["alpha"])
        wd = float(group["weight_decay"])
        momentum = float(group["momentum"])
        centered = group["centered"]
        if "step" not in state:
            state["step"] = 0
            state["square_avg"] = self._zeros(p)
            if momentum > 0:
                state["momentum_buffer"] = self._zeros(p)
            if centered:
                state["grad_avg"] = self._zeros(p)
        state["step"] += 1
        if wd != 0:
            d = self._buffer(p, 0)
            np.multiply(w, self._s(wd, p), out=d)
            d += g
            g = d
        sq = state["square_avg"]
        t = self._buffer(p, 1)
        sq *= self._s(alpha, p)
        np.multiply(g, g, out=t)
        t *= self._s(1 - alpha, p)
        sq += t
        if centered:
            ga = state.get("grad_avg")
            if ga is None:
                ga = state["grad_avg"] = self._zeros(p)
            np.subtract(g, ga, out=t)
            t *= self._s(1 - alpha, p)
            ga += t
            np.multiply(ga, ga, out=t)
            np.subtract(sq, t, out=t)
            np.sqrt(t, out=t)
        else:
            np.sqrt(sq, out=t)
        t += self._s(group["eps"], p)
        np.divide(g, t, out=t)
        if momentum > 0:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = self._zeros(p)
            buf *= self._s(momentum, p)
            buf += t
            np.multiply(buf, self._s(group["lr"], p), out=t)
        else:
            t *= self._s(group["lr"], p)
        w -= t
