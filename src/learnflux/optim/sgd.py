"""Stochastic gradient descent, with momentum, Nesterov momentum and weight decay."""

from __future__ import annotations

from typing import Any

from .optimizer import Optimizer, ParamsLike
from .transforms import Momentum, ScaleByLearningRate, WeightDecay


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

    Made of :class:`~.transforms.WeightDecay`, :class:`~.transforms.Momentum` and
    :class:`~.transforms.ScaleByLearningRate`.
    """

    transforms = (WeightDecay(), Momentum(), ScaleByLearningRate())

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
