"""Stochastic gradient descent, with momentum, Nesterov momentum and weight decay."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ConfigError
from ..param import Param
from .optimizer import Optimizer, ParamsLike


class SGD(Optimizer):
    """Gradient descent, as ``torch.optim.SGD``.

    For every parameter ``w`` with gradient ``g`` (``α`` = ``lr``, ``μ`` = ``momentum``,
    ``τ`` = ``dampening``, ``λ`` = ``weight_decay``, ``b`` the momentum buffer)::

        g ← g + λ·w                                  (if λ ≠ 0: L2 penalty ½λ‖w‖²)
        b ← g                  on the first step      (if μ ≠ 0)
        b ← μ·b + (1 − τ)·g    afterwards
        g ← g + μ·b  (nesterov)   or   g ← b           (if μ ≠ 0)
        w ← w − α·g

    With the defaults this is plain descent ``ŵ = w − α·δw``. The update is done in place.
    SGD only adds and multiplies, so it also runs in exact arithmetic, where ``lr`` (and every
    option) is read as the decimal it spells (``1e-7`` → 1/10⁷).

    Args:
        params: ``model.parameters()``, a model, or a list of parameter groups (dicts).
        lr: the learning rate α.
        momentum: μ (0 = no momentum).
        dampening: τ, damps the gradient entering the momentum buffer.
        nesterov: Nesterov momentum (needs ``momentum > 0`` and ``dampening = 0``).
        weight_decay: λ, an L2 penalty added to the gradient.
    """

    supports_exact = True

    def __init__(
        self,
        params: ParamsLike,
        lr: Any = 0.01,
        momentum: float = 0,
        dampening: float = 0,
        nesterov: bool = False,
        weight_decay: float = 0,
    ) -> None:
        super().__init__(
            params,
            {
                "lr": lr,
                "momentum": momentum,
                "dampening": dampening,
                "nesterov": bool(nesterov),
                "weight_decay": weight_decay,
            },
        )

    def _validate_group(self, group: dict[str, Any]) -> None:
        super()._validate_group(group)
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ConfigError("SGD: Nesterov momentum requires a momentum > 0 and zero dampening")

    def _update(self, p: Param, g: np.ndarray, group: dict[str, Any], state: dict[str, Any]) -> None:
        v = p.value
        lr = self._s(group["lr"], p)
        wd = group["weight_decay"]
        momentum = group["momentum"]
        if wd != 0:
            d = self._buffer(p, 0)
            np.multiply(v, self._s(wd, p), out=d)
            d += g
            g = d
        if momentum != 0:
            mu = self._s(momentum, p)
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = np.array(g, dtype=p.dtype, copy=True)
            else:
                buf *= mu
                dampening = group["dampening"]
                if dampening == 0:
                    buf += g
                else:
                    t = self._buffer(p, 1)
                    np.multiply(g, self._s(1, p) - self._s(dampening, p), out=t)
                    buf += t
            if group["nesterov"]:
                t = self._buffer(p, 1)
                np.multiply(buf, mu, out=t)
                t += g
                g = t
            else:
                g = buf
        t = self._buffer(p, 1)
        np.multiply(g, lr, out=t)
        v -= t
