"""Learning-rate schedules, with the names, arguments and values of ``torch.optim.lr_scheduler``.

A schedule changes ``group["lr"]`` of every parameter group of an optimizer. Create it after
the optimizer (this sets the first learning rate), call ``optimizer.step()`` then
``scheduler.step()`` once per epoch (or per batch, for :class:`OneCycleLR`);
``get_last_lr()`` gives the current rates. Also reachable as ``lf.optim.lr_scheduler``::

    opt = lf.SGD(model.parameters(), lr=0.1, momentum=0.9)
    sched = lf.optim.schedules.CosineAnnealingLR(opt, T_max=20)
    for epoch in range(20):
        train_one_epoch(...)
        sched.step()

Like PyTorch, the chainable schedules (StepLR, MultiStepLR, ExponentialLR, CosineAnnealingLR,
LinearLR) compute each rate from the current ``group["lr"]``, so two of them can be combined.
``state_dict()`` / ``load_state_dict()`` save and restore a schedule as a plain dict.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any, Iterable, Literal, Optional, Sequence, Union

from ..errors import ConfigError
from .optimizer import Optimizer

__all__ = [
    "LRScheduler",
    "StepLR",
    "MultiStepLR",
    "ExponentialLR",
    "CosineAnnealingLR",
    "CosineAnnealingWarmRestarts",
    "LinearLR",
    "OneCycleLR",
    "ReduceLROnPlateau",
]


def _check_optimizer(optimizer: Any, name: str) -> None:
    if not isinstance(optimizer, Optimizer):
        raise ConfigError(f"{name}: expected a learnflux optimizer, got {type(optimizer).__name__}")


class LRScheduler:
    """Base of the schedules: ``step()`` advances ``last_epoch`` and sets each group's ``lr``
    to ``get_lr()``.

    Args:
        optimizer: the optimizer whose learning rates are scheduled.
        last_epoch: index of the last epoch seen (``-1`` starts afresh; a value ≥ 0 resumes and
            needs ``initial_lr`` in every group).
    """

    def __init__(self, optimizer: Optimizer, last_epoch: int = -1) -> None:
        _check_optimizer(optimizer, type(self).__name__)
        self.optimizer = optimizer
        if last_epoch == -1:
            for group in optimizer.param_groups:
                group.setdefault("initial_lr", group["lr"])
        else:
            for i, group in enumerate(optimizer.param_groups):
                if "initial_lr" not in group:
                    raise ConfigError(
                        f"{type(self).__name__}: resuming with last_epoch={last_epoch} needs "
                        f"'initial_lr' in parameter group {i} (load the optimizer state first)"
                    )
        self.base_lrs: list[float] = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = last_epoch
        self._step_count = 0
        self._is_initial = True
        try:
            self.step()
        finally:
            self._is_initial = False

    def get_lr(self) -> list[float]:
        """The learning rates for ``self.last_epoch`` (called by ``step``)."""
        raise NotImplementedError

    def _group_lrs(self) -> list[float]:
        return [group["lr"] for group in self.optimizer.param_groups]

    def step(self) -> None:
        """Advance one epoch (or one batch, for per-batch schedules) and set the new rates."""
        self._step_count += 1
        self.last_epoch += 1
        values = self.get_lr()
        for group, lr in zip(self.optimizer.param_groups, values, strict=True):
            group["lr"] = lr
        self._last_lr = self._group_lrs()

    def get_last_lr(self) -> list[float]:
        """The learning rates set by the last ``step`` (one per parameter group)."""
        return list(self._last_lr)

    def state_dict(self) -> dict[str, Any]:
        """Everything but the optimizer, as plain data."""
        out = {}
        for key, value in self.__dict__.items():
            if key == "optimizer":
                continue
            if isinstance(value, Counter):
                value = dict(value)
            elif isinstance(value, list):
                value = list(value)
            out[key] = value
        return out

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.__dict__.update(state_dict)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(last_epoch={self.last_epoch}, lr={self.get_last_lr()})"


class StepLR(LRScheduler):
    """Multiply the rate by ``gamma`` every ``step_size`` epochs:
    ``lr(t) = lr₀ · γ^⌊t / step_size⌋``.

    Args:
        optimizer: the optimizer.
        step_size: the period of the decay, in epochs.
        gamma: the factor γ.
        last_epoch: see :class:`LRScheduler`.
    """

    def __init__(
        self, optimizer: Optimizer, step_size: int, gamma: float = 0.1, last_epoch: int = -1
    ) -> None:
        if int(step_size) != step_size or step_size <= 0:
            raise ConfigError(f"StepLR: step_size must be a positive integer, got {step_size!r}")
        self.step_size = int(step_size)
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        if self.last_epoch == 0 or self.last_epoch % self.step_size != 0:
            return self._group_lrs()
        return [lr * self.gamma for lr in self._group_lrs()]


class MultiStepLR(LRScheduler):
    """Multiply the rate by ``gamma`` at each milestone epoch:
    ``lr(t) = lr₀ · γ^(number of milestones ≤ t)``.

    Args:
        optimizer: the optimizer.
        milestones: epoch indices (a milestone listed twice decays twice).
        gamma: the factor γ.
        last_epoch: see :class:`LRScheduler`.
    """

    def __init__(
        self,
        optimizer: Optimizer,
        milestones: Iterable[int],
        gamma: float = 0.1,
        last_epoch: int = -1,
    ) -> None:
        self.milestones = Counter(int(m) for m in milestones)
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        if self.last_epoch not in self.milestones:
            return self._group_lrs()
        factor = self.gamma ** self.milestones[self.last_epoch]
        return [lr * factor for lr in self._group_lrs()]

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        self.milestones = Counter({int(k): v for k, v in dict(self.milestones).items()})


class ExponentialLR(LRScheduler):
    """Multiply the rate by ``gamma`` every epoch: ``lr(t) = lr₀ · γᵗ``.

    Args:
        optimizer: the optimizer.
        gamma: the factor γ.
        last_epoch: see :class:`LRScheduler`.
    """

    def __init__(self, optimizer: Optimizer, gamma: float, last_epoch: int = -1) -> None:
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        if self._is_initial:
            return self._group_lrs()
        return [lr * self.gamma for lr in self._group_lrs()]


class CosineAnnealingLR(LRScheduler):
    """Cosine annealing from the initial rate down to ``eta_min`` over ``T_max`` epochs:
    ``lr(t) = η_min + (lr₀ − η_min) · (1 + cos(π t / T_max)) / 2`` (then back up, periodically,
    if stepped past ``T_max``, as PyTorch). Computed recursively from the current rate, as
    PyTorch does, so it chains with other schedules.

    Args:
        optimizer: the optimizer.
        T_max: the number of epochs of the half period.
        eta_min: the lowest rate η_min.
        last_epoch: see :class:`LRScheduler`.
    """

    def __init__(self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0, last_epoch: int = -1) -> None:
        if T_max <= 0:
            raise ConfigError(f"CosineAnnealingLR: T_max must be > 0, got {T_max!r}")
        self.T_max = T_max
        self.eta_min = eta_min
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        t, T, eta = self.last_epoch, self.T_max, self.eta_min
        if self._is_initial:
            return self._group_lrs()
        if self._step_count == 1 and t > 0:
            return [eta + (base - eta) * (1 + math.cos(t * math.pi / T)) / 2 for base in self.base_lrs]
        if (t - 1 - T) % (2 * T) == 0:
            return [
                lr + (base - eta) * (1 - math.cos(math.pi / T)) / 2
                for base, lr in zip(self.base_lrs, self._group_lrs(), strict=True)
            ]
        return [
            (1 + math.cos(math.pi * t / T)) / (1 + math.cos(math.pi * (t - 1) / T)) * (lr - eta) + eta
            for lr in self._group_lrs()
        ]


class CosineAnnealingWarmRestarts(LRScheduler):
    """Cosine annealing with warm restarts (SGDR, Loshchilov & Hutter 2017):
    ``lr = η_min + (lr₀ − η_min) · (1 + cos(π T_cur / T_i)) / 2``, where ``T_cur`` counts the
    epochs since the last restart and the period ``T_i`` starts at ``T_0`` and is multiplied
    by ``T_mult`` at each restart.

    Args:
        optimizer: the optimizer.
        T_0: the length of the first period, in epochs.
        T_mult: the factor applied to the period after each restart (an integer ≥ 1).
        eta_min: the lowest rate η_min.
        last_epoch: see :class:`LRScheduler`.
    """

    def __init__(
        self,
        optimizer: Optimizer,
        T_0: int,
        T_mult: int = 1,
        eta_min: float = 0.0,
        last_epoch: int = -1,
    ) -> None:
        if not isinstance(T_0, int) or T_0 <= 0:
            raise ConfigError(f"CosineAnnealingWarmRestarts: T_0 must be a positive integer, got {T_0!r}")
        if not isinstance(T_mult, int) or T_mult < 1:
            raise ConfigError(f"CosineAnnealingWarmRestarts: T_mult must be an integer >= 1, got {T_mult!r}")
        self.T_0 = T_0
        self.T_i = T_0
        self.T_mult = T_mult
        self.eta_min = eta_min
        self.T_cur = last_epoch
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        return [
            self.eta_min + (base - self.eta_min) * (1 + math.cos(math.pi * self.T_cur / self.T_i)) / 2
            for base in self.base_lrs
        ]

    def step(self) -> None:
        self._step_count += 1
        if self.last_epoch < 0:
            epoch = 0
            self.T_i = self.T_0
            self.T_cur = 0
        else:
            epoch = self.last_epoch + 1
            self.T_cur = self.T_cur + 1
            if self.T_cur >= self.T_i:
                self.T_cur = self.T_cur % self.T_i
                self.T_i = self.T_i * self.T_mult
        self.last_epoch = epoch
        for group, lr in zip(self.optimizer.param_groups, self.get_lr(), strict=True):
            group["lr"] = lr
        self._last_lr = self._group_lrs()


class LinearLR(LRScheduler):
    """Linear change of the rate's factor from ``start_factor`` to ``end_factor`` over
    ``total_iters`` epochs (a linear warm-up with the defaults), then constant:
    ``lr(t) = lr₀ · (s + (e − s) · min(t, total_iters) / total_iters)``.

    Args:
        optimizer: the optimizer.
        start_factor: s, in (0, 1].
        end_factor: e, in [0, 1].
        total_iters: the number of epochs of the ramp.
        last_epoch: see :class:`LRScheduler`.
    """

    def __init__(
        self,
        optimizer: Optimizer,
        start_factor: float = 1.0 / 3,
        end_factor: float = 1.0,
        total_iters: int = 5,
        last_epoch: int = -1,
    ) -> None:
        if start_factor > 1.0 or start_factor <= 0:
            raise ConfigError(f"LinearLR: start_factor must be in (0, 1], got {start_factor!r}")
        if end_factor > 1.0 or end_factor < 0:
            raise ConfigError(f"LinearLR: end_factor must be in [0, 1], got {end_factor!r}")
        self.start_factor = start_factor
        self.end_factor = end_factor
        self.total_iters = total_iters
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        if self.last_epoch == 0:
            return [lr * self.start_factor for lr in self._group_lrs()]
        if self._is_initial or self.last_epoch > self.total_iters:
            return self._group_lrs()
        s, e = self.start_factor, self.end_factor
        factor = 1.0 + (e - s) / (self.total_iters * s + (self.last_epoch - 1) * (e - s))
        return [lr * factor for lr in self._group_lrs()]


def _per_group(name: str, optimizer: Optimizer, value: Union[float, Sequence[float]]) -> list:
    n = len(optimizer.param_groups)
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise ConfigError(f"expected {n} values for {name} (one per group), got {len(value)}")
        return list(value)
    return [value] * n


class OneCycleLR(LRScheduler):
    """The 1cycle policy (Smith & Topin, 2018), stepped once per **batch**.

    The rate rises from ``max_lr / div_factor`` to ``max_lr`` during the first ``pct_start``
    of the ``total_steps``, then anneals down to ``max_lr / (div_factor · final_div_factor)``
    (``three_phase``: back to the initial rate, then down to the minimum). Each phase goes from
    a to b with ``anneal_strategy``: ``"cos"``: ``b + (a − b)(1 + cos(π·pct))/2``, or
    ``"linear"``: ``a + (b − a)·pct``. With ``cycle_momentum`` the momentum (SGD, RMSprop) or
    β₁ (Adam) moves the opposite way, between ``max_momentum`` and ``base_momentum``.

    Args:
        optimizer: the optimizer.
        max_lr: the peak rate (or one per group).
        total_steps: the number of batches of the whole run, or give ``epochs`` and
            ``steps_per_epoch``.
        pct_start: the fraction of the steps spent rising.
        anneal_strategy: ``"cos"`` or ``"linear"``.
        cycle_momentum: cycle the momentum / β₁ too.
        base_momentum, max_momentum: the momentum range (or one per group).
        div_factor: initial rate = max_lr / div_factor.
        final_div_factor: final rate = initial rate / final_div_factor.
        three_phase: use the three-phase schedule of fastai.
        last_epoch: see :class:`LRScheduler`.
    """

    def __init__(
        self,
        optimizer: Optimizer,
        max_lr: Union[float, Sequence[float]],
        total_steps: Optional[int] = None,
        epochs: Optional[int] = None,
        steps_per_epoch: Optional[int] = None,
        pct_start: float = 0.3,
        anneal_strategy: Literal["cos", "linear"] = "cos",
        cycle_momentum: bool = True,
        base_momentum: Union[float, Sequence[float]] = 0.85,
        max_momentum: Union[float, Sequence[float]] = 0.95,
        div_factor: float = 25.0,
        final_div_factor: float = 1e4,
        three_phase: bool = False,
        last_epoch: int = -1,
    ) -> None:
        _check_optimizer(optimizer, "OneCycleLR")
        if total_steps is not None:
            if not isinstance(total_steps, int) or total_steps <= 0:
                raise ConfigError(f"OneCycleLR: total_steps must be a positive integer, got {total_steps!r}")
            self.total_steps = total_steps
        elif epochs is not None and steps_per_epoch is not None:
            if not isinstance(epochs, int) or epochs <= 0:
                raise ConfigError(f"OneCycleLR: epochs must be a positive integer, got {epochs!r}")
            if not isinstance(steps_per_epoch, int) or steps_per_epoch <= 0:
                raise ConfigError(
                    f"OneCycleLR: steps_per_epoch must be a positive integer, got {steps_per_epoch!r}"
                )
            self.total_steps = epochs * steps_per_epoch
        else:
            raise ConfigError("OneCycleLR: give total_steps, or epochs and steps_per_epoch")
        if not 0 <= pct_start <= 1:
            raise ConfigError(f"OneCycleLR: pct_start must be in [0, 1], got {pct_start!r}")
        if anneal_strategy not in ("cos", "linear"):
            raise ConfigError(
                f"OneCycleLR: anneal_strategy must be 'cos' or 'linear', got {anneal_strategy!r}"
            )
        self.anneal_strategy = anneal_strategy
        pct_start = float(pct_start)
        if three_phase:
            self._phases = [
                [
                    float(pct_start * self.total_steps) - 1,
                    "initial_lr",
                    "max_lr",
                    "max_momentum",
                    "base_momentum",
                ],
                [
                    float(2 * pct_start * self.total_steps) - 2,
                    "max_lr",
                    "initial_lr",
                    "base_momentum",
                    "max_momentum",
                ],
                [self.total_steps - 1, "initial_lr", "min_lr", "max_momentum", "max_momentum"],
            ]
        else:
            self._phases = [
                [
                    float(pct_start * self.total_steps) - 1,
                    "initial_lr",
                    "max_lr",
                    "max_momentum",
                    "base_momentum",
                ],
                [self.total_steps - 1, "max_lr", "min_lr", "base_momentum", "max_momentum"],
            ]
        try:
            max_lrs = _per_group("max_lr", optimizer, max_lr)
            if last_epoch == -1:
                for m, group in zip(max_lrs, optimizer.param_groups, strict=True):
                    group["initial_lr"] = m / div_factor
                    group["max_lr"] = m
                    group["min_lr"] = group["initial_lr"] / final_div_factor
            self.cycle_momentum = bool(cycle_momentum)
            if self.cycle_momentum:
                if "momentum" not in optimizer.defaults and "betas" not in optimizer.defaults:
                    raise ConfigError(
                        f"OneCycleLR: {type(optimizer).__name__} has neither momentum nor betas; "
                        "use cycle_momentum=False"
                    )
                self.use_beta1 = "betas" in optimizer.defaults
                maxes = _per_group("max_momentum", optimizer, max_momentum)
                bases = _per_group("base_momentum", optimizer, base_momentum)
                if last_epoch == -1:
                    for mm, bm, group in zip(maxes, bases, optimizer.param_groups, strict=True):
                        if self.use_beta1:
                            group["betas"] = (mm, *group["betas"][1:])
                        else:
                            group["momentum"] = mm
                        group["max_momentum"] = mm
                        group["base_momentum"] = bm
        except ConfigError as err:
            if str(err).startswith("OneCycleLR"):
                raise
            raise ConfigError(f"OneCycleLR: {err}") from None
        super().__init__(optimizer, last_epoch)

    def _anneal(self, start: float, end: float, pct: float) -> float:
        if self.anneal_strategy == "cos":
            return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)
        return (end - start) * pct + start

    def get_lr(self) -> list[float]:
        step_num = self.last_epoch
        if step_num > self.total_steps:
            raise ConfigError(f"OneCycleLR: stepped {step_num} times, but total_steps is {self.total_steps}")
        lrs = []
        for group in self.optimizer.param_groups:
            start_step = 0.0
            for i, (end_step, lr_a, lr_b, mom_a, mom_b) in enumerate(self._phases):
                if step_num <= end_step or i == len(self._phases) - 1:
                    pct = (step_num - start_step) / (end_step - start_step)
                    lr = self._anneal(group[lr_a], group[lr_b], pct)
                    if self.cycle_momentum:
                        mom = self._anneal(group[mom_a], group[mom_b], pct)
                    break
                start_step = end_step
            lrs.append(lr)
            if self.cycle_momentum:
                if self.use_beta1:
                    group["betas"] = (mom, *group["betas"][1:])
                else:
                    group["momentum"] = mom
        return lrs


class ReduceLROnPlateau(LRScheduler):
    """Divide the rate by ``1/factor`` when a metric has stopped improving for ``patience``
    epochs. Call ``step(metric)`` after each validation.

    A value improves on the best so far ``b`` when it is below ``b·(1 − threshold)`` (mode
    ``"min"``, ``threshold_mode="rel"``), below ``b − threshold`` (``"abs"``), or above
    ``b·(1 + threshold)`` / ``b + threshold`` in mode ``"max"``. After more than ``patience``
    epochs without improvement each group's rate becomes ``max(lr·factor, min_lr)`` (changes
    smaller than ``eps`` are ignored), then ``cooldown`` epochs pass before counting again.

    Args:
        optimizer: the optimizer.
        mode: ``"min"`` (a loss) or ``"max"`` (an accuracy).
        factor: the factor applied to the rate (< 1).
        patience: the number of epochs without improvement tolerated.
        threshold: the smallest significant improvement.
        threshold_mode: ``"rel"`` or ``"abs"``.
        cooldown: the number of epochs to wait after a reduction.
        min_lr: the lowest rate (or one per group).
        eps: the smallest change of rate applied.
    """

    def __init__(
        self,
        optimizer: Optimizer,
        mode: Literal["min", "max"] = "min",
        factor: float = 0.1,
        patience: int = 10,
        threshold: float = 1e-4,
        threshold_mode: Literal["rel", "abs"] = "rel",
        cooldown: int = 0,
        min_lr: Union[float, Sequence[float]] = 0,
        eps: float = 1e-8,
    ) -> None:
        # no LRScheduler.__init__: the rates change only when the metric plateaus
        _check_optimizer(optimizer, "ReduceLROnPlateau")
        if factor >= 1.0:
            raise ConfigError(f"ReduceLROnPlateau: factor must be < 1, got {factor!r}")
        if mode not in ("min", "max"):
            raise ConfigError(f"ReduceLROnPlateau: mode must be 'min' or 'max', got {mode!r}")
        if threshold_mode not in ("rel", "abs"):
            raise ConfigError(
                f"ReduceLROnPlateau: threshold_mode must be 'rel' or 'abs', got {threshold_mode!r}"
            )
        self.optimizer = optimizer
        self.factor = factor
        if isinstance(min_lr, (list, tuple)):
            self.min_lrs = _per_group("min_lr", optimizer, min_lr)
            self.default_min_lr = None
        else:
            self.default_min_lr = min_lr
            self.min_lrs = [min_lr] * len(optimizer.param_groups)
        self.mode = mode
        self.patience = patience
        self.threshold = threshold
        self.threshold_mode = threshold_mode
        self.cooldown = cooldown
        self.eps = eps
        self.last_epoch = 0
        self.best = math.inf if mode == "min" else -math.inf
        self.cooldown_counter = 0
        self.num_bad_epochs = 0
        self._last_lr = [group["lr"] for group in optimizer.param_groups]

    def _is_better(self, a: float, best: float) -> bool:
        if self.mode == "min" and self.threshold_mode == "rel":
            return a < best * (1.0 - self.threshold)
        if self.mode == "min":
            return a < best - self.threshold
        if self.threshold_mode == "rel":
            return a > best * (self.threshold + 1.0)
        return a > best + self.threshold

    @property
    def in_cooldown(self) -> bool:
        return self.cooldown_counter > 0

    def step(self, metrics: float) -> None:  # type: ignore[override]
        """Record one epoch's metric and reduce the rates if it has plateaued."""
        current = float(metrics)
        self.last_epoch += 1
        if self._is_better(current, self.best):
            self.best = current
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1
        if self.in_cooldown:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0
        if self.num_bad_epochs > self.patience:
            if len(self.min_lrs) != len(self.optimizer.param_groups):
                if self.default_min_lr is None:
                    raise ConfigError(
                        "ReduceLROnPlateau: the optimizer's number of parameter groups changed; "
                        "give one min_lr per group"
                    )
                self.min_lrs = [self.default_min_lr] * len(self.optimizer.param_groups)
            for i, group in enumerate(self.optimizer.param_groups):
                old = float(group["lr"])
                new = max(old * self.factor, self.min_lrs[i])
                if old - new > self.eps:
                    group["lr"] = new
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def get_last_lr(self) -> list[float]:
        return list(self._last_lr)

    def state_dict(self) -> dict[str, Any]:
        return {
            k: (list(v) if isinstance(v, list) else v) for k, v in self.__dict__.items() if k != "optimizer"
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.__dict__.update(state_dict)
