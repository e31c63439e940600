"""Adam and AdamW: adaptive moment estimation (with AMSGrad), coupled or decoupled weight decay."""

from __future__ import annotations

from .optimizer import Optimizer, ParamsLike, with_defaults
from .transforms import CountSteps, ScaleByAdam, ScaleByLearningRate, WeightDecay


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

    Made of :class:`~.transforms.CountSteps`, :class:`~.transforms.WeightDecay`,
    :class:`~.transforms.ScaleByAdam` and :class:`~.transforms.ScaleByLearningRate`.
    """

    transforms = (CountSteps(), WeightDecay(), ScaleByAdam(), ScaleByLearningRate())

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

    Adam's transforms with ``WeightDecay(decoupled=True)``, and Adam's constructor with another
    default.
    """

    transforms = (CountSteps(), WeightDecay(decoupled=True), ScaleByAdam(), ScaleByLearningRate())
    __init__ = with_defaults(Adam.__init__, weight_decay=1e-2)
