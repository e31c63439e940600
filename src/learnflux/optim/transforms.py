"""The small in-place steps the optimizers are made of, and :class:`Chain` to make your own.

Each transform turns the update ``u`` of one parameter (at first its gradient ``g``) into the next,
reading its options from the parameter's group at every step and keeping what it remembers in the
parameter's one state dict (under PyTorch's names); the optimizer then does ``w ← w − c·u``, ``c``
the product of the numbers the transforms deferred (see :class:`~learnflux.optim.optimizer.Step`).
The built-in optimizers are::

    SGD     = WeightDecay(), Momentum(), ScaleByLearningRate()
    Adam    = CountSteps(), WeightDecay(), ScaleByAdam(), ScaleByLearningRate()
    AdamW   = CountSteps(), WeightDecay(decoupled=True), ScaleByAdam(), ScaleByLearningRate()
    RMSprop = CountSteps(), WeightDecay(), ScaleByRMS(), Momentum(), ScaleByLearningRate()
    Adagrad = CountSteps(), WeightDecay(), ScaleByAdagrad(), ScaleByLearningRate()

(optax writes ``adamw = chain(scale_by_adam, add_decayed_weights, scale_by_learning_rate)``: the
decay added to Adam's direction; ``Chain(params, [CountSteps(), ScaleByAdam(), WeightDecay(),
ScaleByLearningRate()])`` is that rule, equal to PyTorch's AdamW up to rounding.)

Every array operation writes into a state array or one of two scratch arrays (no temporaries), in
the parameter's dtype; the transforms marked exact only add, subtract, multiply and divide, so a
chain of them also runs on exact (Fraction) weights.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ..errors import ConfigError
from .optimizer import REQUIRED, Optimizer, ParamsLike, Step, Transform, check_option, check_transforms

__all__ = [
    "Chain",
    "CountSteps",
    "Momentum",
    "ScaleByAdagrad",
    "ScaleByAdam",
    "ScaleByLearningRate",
    "ScaleByRMS",
    "Step",
    "Transform",
    "WeightDecay",
]


class CountSteps(Transform):
    """``t ← t + 1``: the steps this parameter has taken, ``state["step"]`` (read by Adam's bias
    correction and Adagrad's rate decay; RMSprop keeps it, as PyTorch does)."""

    reads_update = False
    counts_steps = True

    def __call__(self, step: Step) -> None:
        step.state["step"] = step.state.get("step", 0) + 1


class WeightDecay(Transform):
    """Weight decay λ (``weight_decay``); nothing when λ = 0.

    Coupled (the default: SGD, Adam, RMSprop, Adagrad), the gradient of an L2 penalty ½λ‖w‖²
    enters the update::

        u ← u + λ·w

    Decoupled (``decoupled=True``: AdamW, Loshchilov & Hutter 2019), the weights shrink directly,
    by the learning rate α (``lr``) times λ, so that no later transform rescales the decay::

        w ← w·(1 − α·λ)
    """

    options = {"weight_decay": 0}
    nonnegative = ("weight_decay",)

    def __init__(self, decoupled: bool = False) -> None:
        self.decoupled = bool(decoupled)
        self.reads_update = not self.decoupled
        if self.decoupled:
            self.options = {"weight_decay": 0, "lr": REQUIRED}

    def __call__(self, step: Step) -> None:
        lam = step.option("weight_decay")
        if lam == 0:
            return
        if self.decoupled:
            step.w *= 1 - step.option("lr") * lam
            return
        d = step.spare()
        np.multiply(step.w, lam, out=d)
        d += step.u
        step.u = d

    def __repr__(self) -> str:
        return "WeightDecay(decoupled=True)" if self.decoupled else "WeightDecay()"


class Momentum(Transform):
    """Momentum μ (``momentum``) with dampening τ (``dampening``) and Nesterov's variant
    (``nesterov``), as ``torch.optim.SGD``; nothing when μ = 0. The buffer ``b`` is
    ``state["momentum_buffer"]``::

        b ← u                      on the first step
        b ← μ·b + (1 − τ)·u        afterwards
        u ← u + μ·b  (Nesterov)    or    u ← b

    (RMSprop's momentum is this one with τ = 0, on its normalised update ``u = g/d``.) An optimizer
    without ``dampening`` or ``nesterov`` options reads them as 0 and False.
    """

    options = {"momentum": 0, "dampening": 0, "nesterov": False}
    nonnegative = ("momentum", "dampening")

    def validate(self, group: dict[str, Any], owner: str) -> None:
        super().validate(group, owner)
        if group.get("nesterov") and (float(group["momentum"]) <= 0 or float(group.get("dampening", 0)) != 0):
            raise ConfigError(f"{owner}: Nesterov momentum requires a momentum > 0 and zero dampening")

    def __call__(self, step: Step) -> None:
        mu = step.option("momentum")
        if mu == 0:
            return
        u = step.u
        buf = step.state.get("momentum_buffer")
        if buf is None:
            buf = step.state["momentum_buffer"] = np.array(u, dtype=step.w.dtype, copy=True)
        else:
            buf *= mu
            tau = step.number(step.group.get("dampening", 0))
            if tau == 0:
                buf += u
            else:
                t = step.spare()
                np.multiply(u, 1 - tau, out=t)
                buf += t
        if step.group.get("nesterov"):
            t = step.spare()
            np.multiply(buf, mu, out=t)
            t += u
            step.u = t
        else:
            step.u = buf


def _mean_into(avg: np.ndarray, u: np.ndarray, decay: Any, t: np.ndarray) -> None:
    """A running mean, in place: ``avg ← avg + (1 − decay)·(u − avg)`` (= ``decay·avg + (1 −
    decay)·u``; Adam's ``m``, centered RMSprop's ``ḡ``); ``t`` is scratch."""
    np.subtract(u, avg, out=t)
    t *= 1 - decay
    avg += t


def _mean_square_into(avg: np.ndarray, u: np.ndarray, decay: Any, t: np.ndarray) -> None:
    """A running mean square, in place: ``avg ← decay·avg + (1 − decay)·u²`` (Adam's ``v``,
    RMSprop's ``s``); ``t`` is scratch."""
    avg *= decay
    np.multiply(u, u, out=t)
    t *= 1 - decay
    avg += t


class ScaleByAdam(Transform):
    """Adam's moments (Kingma & Ba, 2015) with bias correction, and AMSGrad (Reddi et al., 2018).

    At step ``t`` (β₁, β₂ = ``betas``, ε = ``eps``; ``m`` = ``exp_avg`` and ``v`` = ``exp_avg_sq``
    start at 0, ``v̂`` = ``max_exp_avg_sq``)::

        m ← β₁·m + (1 − β₁)·u          first moment (computed as m + (1 − β₁)(u − m), torch's lerp)
        v ← β₂·v + (1 − β₂)·u²         second moment
        v̂ ← max(v̂, v) if amsgrad, else v
        u ← m / (√v̂ / √(1 − β₂ᵗ) + ε) / (1 − β₁ᵗ)

    The division by ``1 − β₁ᵗ`` is deferred, so with a learning rate after it the step is
    PyTorch's ``α/(1 − β₁ᵗ) · m / (√v̂/√(1 − β₂ᵗ) + ε)``. Needs square roots: not exact.
    """

    options = {"betas": (0.9, 0.999), "eps": 1e-8, "amsgrad": False}
    nonnegative = ("eps",)
    exact = False
    needs_step = True

    def validate(self, group: dict[str, Any], owner: str) -> None:
        super().validate(group, owner)
        betas = group["betas"]
        try:
            b1, b2 = (float(b) for b in betas)
        except (TypeError, ValueError):
            raise ConfigError(f"{owner}: betas must be two numbers, got {betas!r}") from None
        if not (0.0 <= b1 < 1.0 and 0.0 <= b2 < 1.0):
            raise ConfigError(f"{owner}: betas must be in [0, 1), got {tuple(betas)!r}")
        group["betas"] = tuple(betas)

    def __call__(self, step: Step) -> None:
        state = step.state
        m = state.get("exp_avg")
        if m is None:
            m = state["exp_avg"] = step.zeros()
            state["exp_avg_sq"] = step.zeros()
        v = state["exp_avg_sq"]
        betas = step.group["betas"]
        beta1, beta2 = step.number(betas[0]), step.number(betas[1])
        k = state["step"]
        u = step.u
        t = step.spare()
        _mean_into(m, u, beta1, t)
        _mean_square_into(v, u, beta2, t)
        if step.group["amsgrad"]:
            vmax = state.get("max_exp_avg_sq")
            if vmax is None:
                vmax = state["max_exp_avg_sq"] = step.zeros()
            np.maximum(vmax, v, out=vmax)
            np.sqrt(vmax, out=t)
        else:
            np.sqrt(v, out=t)
        t /= (1 - beta2**k) ** 0.5
        t += step.option("eps")
        np.divide(m, t, out=t)
        step.u = t
        step.divide_by(1 - beta1**k)


class ScaleByRMS(Transform):
    """RMSprop's running mean square (Hinton, 2012), as ``torch.optim.RMSprop``.

    With ρ = ``alpha``, ε = ``eps``; ``s`` = ``square_avg`` and ``ḡ`` = ``grad_avg`` start at 0::

        s ← ρ·s + (1 − ρ)·u²
        ḡ ← ρ·ḡ + (1 − ρ)·u                (centered only; computed as ḡ + (1 − ρ)(u − ḡ))
        u ← u / (√(s − ḡ²) + ε)   if centered,   else   u / (√s + ε)

    Centered divides by an estimate of the standard deviation of ``u`` instead of its root mean
    square. Needs square roots: not exact.
    """

    options = {"alpha": 0.99, "eps": 1e-8, "centered": False}
    nonnegative = ("eps",)
    exact = False

    def validate(self, group: dict[str, Any], owner: str) -> None:
        super().validate(group, owner)
        check_option(group, "alpha", owner, 0.0, 1.0)

    def __call__(self, step: Step) -> None:
        state = step.state
        sq = state.get("square_avg")
        if sq is None:
            sq = state["square_avg"] = step.zeros()
        rho = step.option("alpha")
        u = step.u
        t = step.spare()
        _mean_square_into(sq, u, rho, t)
        if step.group["centered"]:
            ga = state.get("grad_avg")
            if ga is None:
                ga = state["grad_avg"] = step.zeros()
            _mean_into(ga, u, rho, t)
            np.multiply(ga, ga, out=t)
            np.subtract(sq, t, out=t)
            np.sqrt(t, out=t)
        else:
            np.sqrt(sq, out=t)
        t += step.option("eps")
        np.divide(u, t, out=t)
        step.u = t


class ScaleByAdagrad(Transform):
    """Adagrad (Duchi et al., 2011), as ``torch.optim.Adagrad``: per-coordinate rates from the sum
    ``s`` of all squared updates (``sum``, starting at ``initial_accumulator_value``), with the
    rate decay η (``lr_decay``) at step ``t``::

        s ← s + u²
        u ← u / (√s + ε) / (1 + (t − 1)·η)

    The last division is deferred: with a learning rate after it, the rate is PyTorch's
    ``α̃ = α / (1 + (t − 1)·η)``. Needs square roots: not exact.
    """

    options = {"lr_decay": 0, "initial_accumulator_value": 0, "eps": 1e-10}
    nonnegative = ("lr_decay", "initial_accumulator_value", "eps")
    exact = False
    needs_step = True

    def __call__(self, step: Step) -> None:
        state = step.state
        s = state.get("sum")
        if s is None:
            s = state["sum"] = step.zeros(step.option("initial_accumulator_value"))
        u = step.u
        t = step.spare()
        np.multiply(u, u, out=t)
        s += t
        np.sqrt(s, out=t)
        t += step.option("eps")
        np.divide(u, t, out=t)
        step.u = t
        step.divide_by(1 + (state["step"] - 1) * step.option("lr_decay"))


class ScaleByLearningRate(Transform):
    """The learning rate α (``lr``), read from the parameter's group at every step (so the
    schedules of :mod:`learnflux.optim.schedules` act on it)::

        u ← α·u

    Deferred to the final ``w ← w − c·u``: it costs no pass over the array.
    """

    options = {"lr": REQUIRED}
    nonnegative = ("lr",)
    reads_update = False

    def __call__(self, step: Step) -> None:
        step.scale_by(step.option("lr"))


class Chain(Optimizer):
    """An optimizer made of the given transforms, run in order on every parameter (as optax's
    ``chain``), then ``w ← w − c·u``. SGD with decoupled weight decay::

        sgdw = Chain(
            model.parameters(),
            [WeightDecay(decoupled=True), Momentum(), ScaleByLearningRate()],
            lr=0.1, momentum=0.9, weight_decay=1e-4,
        )

    ``options`` are the defaults of the parameter groups: the options the transforms read, each at
    the default of the first transform reading it when not given (``lr`` has none). Parameter
    groups, ``state_dict``, ``load_state_dict``, schedules and exact arithmetic (when every
    transform is exact) work as for the built-in optimizers.
    """

    def __init__(self, params: ParamsLike, transforms: Sequence[Transform], **options: Any) -> None:
        self.transforms = tuple(transforms)
        check_transforms(self.transforms, "Chain")
        defaults: dict[str, Any] = {}
        for transform in self.transforms:
            for key, value in transform.options.items():
                defaults.setdefault(key, value)
        unknown = set(options) - set(defaults)
        if unknown:
            raise ConfigError(
                f"Chain: option(s) {sorted(unknown)} are read by none of its transforms; expected "
                f"some of {sorted(defaults)}"
            )
        defaults.update(options)
        missing = sorted(key for key, value in defaults.items() if value is REQUIRED)
        if missing:
            raise ConfigError(f"Chain: option(s) {missing} have no default; give them (lr=...)")
        self.supports_exact = all(t.exact for t in self.transforms)
        super().__init__(params, defaults)

    def __repr__(self) -> str:
        head = f"Chain({list(self.transforms)!r}) ("
        return head + super().__repr__().split(" (", 1)[1]
