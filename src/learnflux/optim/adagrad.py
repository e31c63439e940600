"""Adagrad: per-coordinate learning rates from the sum of all past squared gradients."""

from __future__ import annotations

from .optimizer import Optimizer, ParamsLike
from .transforms import CountSteps, ScaleByAdagrad, ScaleByLearningRate, WeightDecay


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

    Made of :class:`~.transforms.CountSteps`, :class:`~.transforms.WeightDecay`,
    :class:`~.transforms.ScaleByAdagrad` and :class:`~.transforms.ScaleByLearningRate`.
    """

    transforms = (CountSteps(), WeightDecay(), ScaleByAdagrad(), ScaleByLearningRate())

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
