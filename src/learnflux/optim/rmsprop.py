"""RMSprop: divide the gradient by a running root mean square of its recent values."""

from __future__ import annotations

from .optimizer import Optimizer, ParamsLike
from .transforms import CountSteps, Momentum, ScaleByLearningRate, ScaleByRMS, WeightDecay


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

    Made of :class:`~.transforms.CountSteps`, :class:`~.transforms.WeightDecay`,
    :class:`~.transforms.ScaleByRMS`, :class:`~.transforms.Momentum` and
    :class:`~.transforms.ScaleByLearningRate`.
    """

    transforms = (CountSteps(), WeightDecay(), ScaleByRMS(), Momentum(), ScaleByLearningRate())

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
