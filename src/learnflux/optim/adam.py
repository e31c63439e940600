"""Adam and AdamW: adaptive moment estimation (with AMSGrad), coupled or decoupled weight decay."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ConfigError
from ..param import Param
from .optimizer import Optimizer, ParamsLike


class Adam(Optimizer):
    """Adam (Kingma & Ba, 2015), as ``torch.optim.Adam``.

    For every parameter ``w`` with gradient ``g``, at step ``t = 1, 2, ...`` (``α`` = ``lr``,
    ``(β₁, β₂)`` = ``betas``, ``ε`` = ``eps``, ``λ`` = ``weight_decay``; ``m``, ``v`` start at 0)::

        g ← g + λ·w                        (if λ ≠ 0; AdamW decays w instead, see below)
        m ← β₁·m + (1 − β₁)·g              first moment (running mean of g)
        v ← β₂·v + (1 − β₂)·g²             second moment (running mean of g²)
        v̂ ← max(v̂, v) if amsgrad, else v
        w ← w − α/(1 − β₁ᵗ) · m / (√v̂ / √(1 − β₂ᵗ) + ε)

    Updates are in place, in the parameter's dtype (float32 stays float32); ``m``, ``v`` (and
    ``v̂``) are allocated once. The state of a parameter is ``step``, ``exp_avg``, ``exp_avg_sq``
    (and ``max_exp_avg_sq``), as in PyTorch.

    Args:
        params: ``model.parameters()``, a model, or a list of parameter groups (dicts).
        lr: the learning rate α.
        betas: (β₁, β₂), decay rates of the two moment estimates.
        eps: ε, added to the denominator.
        weight_decay: λ (L2 penalty added to the gradient).
        amsgrad: use the maximum of all second moments so far (Reddi et al., 2018).
    """

    decoupled = False

    def __init__(
        self,
        params: ParamsLike,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0,
        amsgrad: bool = False,
    ) -> None:
        super().__init__(
            params,
            {
                "lr": lr,
                "betas": tuple(betas),
                "eps": eps,
                "weight_decay": weight_decay,
                "amsgrad": bool(amsgrad),
            },
        )

    def _validate_group(self, group: dict[str, Any]) -> None:
        super()._validate_group(group)
        betas = group["betas"]
        try:
            b1, b2 = (float(b) for b in betas)
        except (TypeError, ValueError):
            raise ConfigError(f"{type(self).__name__}: betas must be two numbers, got {betas!r}") from None
        if not (0.0 <= b1 < 1.0 and 0.0 <= b2 < 1.0):
            raise ConfigError(f"{type(self).__name__}: betas must be in [0, 1), got {tuple(betas)!r}")
        group["betas"] = tuple(betas)

    def _update(self, p: Param, g: np.ndarray, group: dict[str, Any], state: dict[str, Any]) -> None:
        w = p.value
        lr = float(group["lr"])
        beta1, beta2 = (float(b) for b in group["betas"])
        wd = float(group["weight_decay"])
        amsgrad = group["amsgrad"]
        if "step" not in state:
            state["step"] = 0
            state["exp_avg"] = self._zeros(p)
            state["exp_avg_sq"] = self._zeros(p)
            if amsgrad:
                state["max_exp_avg_sq"] = self._zeros(p)
        state["step"] += 1
        step = state["step"]
        m, v = state["exp_avg"], state["exp_avg_sq"]
        if wd != 0:
            if self.decoupled:
                w *= self._s(1 - lr * wd, p)
            else:
                d = self._buffer(p, 0)
                np.multiply(w, self._s(wd, p), out=d)
                d += g
                g = d
        t = self._buffer(p, 1)
        # m ← m + (1 − β₁)(g − m)   (torch's lerp)
        np.subtract(g, m, out=t)
        t *= self._s(1 - beta1, p)
        m += t
        # v ← β₂ v + (1 − β₂) g²
        v *= self._s(beta2, p)
        np.multiply(g, g, out=t)
        t *= self._s(1 - beta2, p)
        v += t
        bias_correction1 = 1 - beta1**step
        bias_correction2 = 1 - beta2**step
        step_size = lr / bias_correction1
        bias_correction2_sqrt = bias_correction2**0.5
        if amsgrad:
            vmax = state.get("max_exp_avg_sq")
            if vmax is None:
                vmax = state["max_exp_avg_sq"] = self._zeros(p)
            np.maximum(vmax, v, out=vmax)
            np.sqrt(vmax, out=t)
        else:
            np.sqrt(v, out=t)
        t /= self._s(bias_correction2_sqrt, p)
        t += self._s(group["eps"], p)
        np.divide(m, t, out=t)
        t *= self._s(step_size, p)
        w -= t


class AdamW(Adam):
    """AdamW (Loshchilov & Hutter, 2019): Adam with decoupled weight decay, as ``torch.optim.AdamW``.

    Same as :class:`Adam` except that the decay does not enter the gradient (so it is not
    rescaled by the adaptive denominator); the weights shrink directly before the Adam step::

        w ← w · (1 − α·λ)
        m ← β₁·m + (1 − β₁)·g ;  v ← β₂·v + (1 − β₂)·g² ;  v̂ ← max(v̂, v) if amsgrad, else v
        w ← w − α/(1 − β₁ᵗ) · m / (√v̂ / √(1 − β₂ᵗ) + ε)

    Args:
        params, lr, betas, eps, amsgrad: as :class:`Adam`.
        weight_decay: λ, decoupled (default 1e-2, as PyTorch).
    """

    decoupled = True

    def __init__(
        self,
        params: ParamsLike,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
    ) -> None:
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad)
