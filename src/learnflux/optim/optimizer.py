"""The optimizer contract: ``step()`` updates the weights from their gradients.

An optimizer is a sequence of small in-place **transforms** (:mod:`learnflux.optim.transforms`):
weight decay, momentum, Adam's moments, the learning rate... Each turns the update ``u`` of one
parameter (at first its gradient) into the next, in order; then ``w ← w − c·u``, where ``c`` is
the product of the numbers the transforms deferred (the learning rate, Adam's bias correction).
``SGD`` is ``WeightDecay, Momentum, ScaleByLearningRate``; ``AdamW`` is ``CountSteps,
WeightDecay(decoupled=True), ScaleByAdam, ScaleByLearningRate``.

Every parameter keeps one state dict (moment estimates, step counts) shared by its transforms,
allocated on its first step and updated in place afterwards; it saves and restores as a plain dict
of numbers, lists and NumPy arrays (:meth:`Optimizer.state_dict`), so that training resumes
exactly. The scalars of exact mode (Fractions) are handled in one place, :meth:`Step.number`.
"""

from __future__ import annotations

import fnmatch
import functools
import inspect
import math
from typing import Any, Callable, ClassVar, Iterable, Iterator, Sequence, Union

import numpy as np

from .. import kernels
from ..core.param import Param
from ..errors import ConfigError, ExactnessError, PhaseError, ShapeError
from ..numbers import scalar_like

ParamsLike = Union[Iterable[Union[Param, dict]], Any]


def _as_param_list(params: Any) -> list:
    """A model/layer (anything with ``parameters()``), a single Param, or an iterable of them."""
    if isinstance(params, Param):
        return [params]
    if hasattr(params, "parameters") and callable(params.parameters):
        return list(params.parameters())
    if isinstance(params, dict):
        return [params]
    return list(params)


_OBJECT = np.dtype(object)


class Step:
    """One parameter's update in progress, handed to each transform of its optimizer in turn.

    * ``w``: the weights (``p.value``). Only a decoupled weight decay and the final ``w ← w − c·u``
      write into them.
    * ``u``: the update so far; at first the gradient. It may be the gradient or a state array, so
      a transform never writes into it: it writes its result into :meth:`spare` (or into a state
      array) and points ``u`` there.
    * ``state``: the parameter's state dict, shared by its transforms (PyTorch's names:
      ``step``, ``exp_avg``, ``momentum_buffer``...).
    * ``group``: the options of the parameter's group, read at every step (schedules change
      ``lr``, ``momentum``, ``betas``).

    A transform that only multiplies ``u`` by a number defers it (:meth:`scale_by`,
    :meth:`divide_by`): the numbers are gathered and applied once, in the final
    ``w ← w − c·u`` with ``c = (product of the factors) / (product of the divisors)``, so they
    cost no pass over the array (Adam's ``c = lr / (1 − β₁ᵗ)``, as PyTorch computes it). Before a
    transform that reads ``u``'s values the optimizer applies them (:meth:`resolve`).
    """

    __slots__ = ("p", "w", "u", "group", "state", "exact", "_scale", "_divisor", "_deferred", "_bufs")

    def __init__(
        self, p: Param, g: np.ndarray, group: dict[str, Any], state: dict[str, Any], bufs: list
    ) -> None:
        self.p = p
        self.w = p.value
        self.u = g
        self.group = group
        self.state = state
        self.exact = self.w.dtype == _OBJECT
        self._scale: Any = 1
        self._divisor: Any = 1
        self._deferred = False
        self._bufs = bufs

    # ------------------------------------------------------------------ numbers
    def number(self, value: Any) -> Any:
        """``value`` (an option: a number or a decimal string) in the parameter's arithmetic.

        A Python float for float32/float64 weights (derived scalars such as ``1 − β₁ᵗ`` are then
        computed in double precision, as PyTorch does, and NumPy rounds them to float32 where an
        array is float32); in exact mode the Fraction its decimal spells (``0.1`` is 1/10), so
        that ``1 − τ``, ``1 − αλ``... stay exact. The one place where exact scalars are made.
        """
        return scalar_like(value, _OBJECT) if self.exact else float(value)

    def option(self, name: str) -> Any:
        """The group's option ``name`` as :meth:`number` gives it."""
        return self.number(self.group[name])

    def scale_by(self, factor: Any) -> None:
        """Defer ``u ← factor·u`` to the final step (no pass over the array now)."""
        self._scale = self._scale * factor
        self._deferred = True

    def divide_by(self, divisor: Any) -> None:
        """Defer ``u ← u / divisor`` to the final step."""
        self._divisor = self._divisor * divisor
        self._deferred = True

    # ------------------------------------------------------------------ arrays
    def spare(self) -> np.ndarray:
        """A scratch array shaped like the parameter that does not hold ``u``; its content is
        garbage on entry (it is not state). The optimizer keeps two per dtype, sized by its largest
        parameter and allocated once: the scratch memory is two parameters', not the model's."""
        bufs = self._bufs
        i = 1 if self.u.base is bufs[0] else 0
        n = self.w.size
        if bufs[i].size < n:
            bufs[i] = np.empty(n, dtype=self.w.dtype)
        return bufs[i][:n].reshape(self.w.shape)

    def _owns_update(self) -> bool:
        base = self.u.base
        return base is not None and (base is self._bufs[0] or base is self._bufs[1])

    def zeros(self, fill: Any = 0) -> np.ndarray:
        """A new state array shaped like the parameter, in its dtype, filled with ``fill``."""
        out = np.empty_like(self.w)
        out.fill(scalar_like(fill, self.w.dtype))
        return out

    def resolve(self) -> None:
        """Apply the deferred numbers to ``u`` (one pass, into scratch)."""
        if not self._deferred:
            return
        c = self._scale if self._divisor == 1 else self._scale / self._divisor
        self._scale = self._divisor = 1
        self._deferred = False
        if c == 1:
            return
        if self._owns_update():
            self.u *= c
        else:
            t = self.spare()
            np.multiply(self.u, c, out=t)
            self.u = t

    def apply(self) -> None:
        """``w ← w − c·u``: the end of every step. With float weights, one kernel call
        (``sub_scaled``: the compiled kernels do it in one pass over ``w`` and ``u``, with the
        same roundings as ``t = c·u; w −= t``); exact weights resolve ``c`` first."""
        if not self._deferred:
            self.w -= self.u
            return
        if self.exact:
            self.resolve()
            self.w -= self.u
            return
        c = self._scale if self._divisor == 1 else self._scale / self._divisor
        self._scale = self._divisor = 1
        self._deferred = False
        spare = None if c == 1 or self._owns_update() else self.spare()
        kernels.ops().sub_scaled(self.w, self.u, c, spare)


class Transform:
    """One small in-place step of an update rule (the concrete ones: :mod:`.transforms`).

    A subclass implements ``__call__(step)`` on one parameter's :class:`Step` and declares:

    * ``options``: the group options it reads, with the defaults a
      :class:`~learnflux.optim.transforms.Chain` uses (:data:`REQUIRED`: none);
    * ``nonnegative``: those of them that must be finite numbers ≥ 0 (checked by
      :meth:`validate`, which a subclass extends for its other options);
    * ``exact``: it only adds, subtracts, multiplies and divides (so it runs on Fractions);
    * ``reads_update``: whether it reads ``u``'s values (deferred numbers are applied first);
    * ``needs_step``: it reads ``state["step"]``, which a transform with ``counts_steps``
      (:class:`~learnflux.optim.transforms.CountSteps`) before it counts.
    """

    options: ClassVar[dict[str, Any]] = {}
    nonnegative: ClassVar[tuple[str, ...]] = ()
    exact: ClassVar[bool] = True
    reads_update: bool = True
    needs_step: ClassVar[bool] = False
    counts_steps: ClassVar[bool] = False

    def validate(self, group: dict[str, Any], owner: str) -> None:
        """Check the options of one parameter group; raise ConfigError naming ``owner``."""
        for key in self.nonnegative:
            if key in group:
                check_option(group, key, owner)

    def __call__(self, step: Step) -> None:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


#: the default of an option that a :class:`Transform` cannot guess (``lr``)
REQUIRED: Any = inspect.Parameter.empty


def check_option(
    group: dict[str, Any], key: str, owner: str, low: float = 0.0, high: float = math.inf
) -> float:
    """``group[key]`` as a float, or a ConfigError: it must be a finite number in ``[low, high]``."""
    try:
        value = float(group[key])
    except (TypeError, ValueError):
        raise ConfigError(f"{owner}: {key} must be a number, got {group[key]!r}") from None
    if high == math.inf:
        if not value >= low or math.isinf(value):
            raise ConfigError(f"{owner}: {key} must be a finite number >= {low:g}, got {value!r}")
    elif not low <= value <= high:
        raise ConfigError(f"{owner}: {key} must be in [{low:g}, {high:g}], got {group[key]!r}")
    return value


class Optimizer:
    """Base of every optimizer.

    ``params`` is an iterable of :class:`Param` (``model.parameters()``), a model, or a list of
    parameter groups: dicts ``{"params": [...], "lr": ..., ...}`` whose options override the
    defaults (as in ``torch.optim``; see :func:`learnflux.optim.param_groups`). Parameters without
    a gradient are skipped by ``step``; a parameter in the inference phase is refused.

    A subclass lists its ``transforms`` (run in order on every parameter, then ``w ← w − c·u``,
    see :class:`Step`) and passes its ``defaults``: every option the transforms read.
    ``state[p]`` is the parameter's own dict, empty before its first step. (A subclass may instead
    override ``_update(p, g, group, state)``, the update of one parameter.)
    """

    #: the steps of the update rule, run in order on each parameter with a gradient
    transforms: tuple[Transform, ...] = ()
    #: whether the update only needs +, −, ×, ÷ (then it runs in exact Fraction arithmetic too);
    #: for a subclass that lists its transforms: whether every one of them is exact
    supports_exact: bool = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "transforms" in cls.__dict__:
            cls.supports_exact = all(t.exact for t in cls.transforms)

    def __init__(self, params: ParamsLike, defaults: dict[str, Any]) -> None:
        check_transforms(self.transforms, type(self).__name__)
        self.defaults = dict(defaults)
        self.param_groups: list[dict[str, Any]] = []
        self.state: dict[Param, dict[str, Any]] = {}
        self._scratch: dict[np.dtype, list[np.ndarray]] = {}
        items = _as_param_list(params)
        if not items:
            raise ConfigError(f"{type(self).__name__}: got an empty list of parameters")
        if isinstance(items[0], dict):
            for group in items:
                self.add_param_group(group)
        else:
            self.add_param_group({"params": items})

    # ------------------------------------------------------------------ groups
    def add_param_group(self, group: dict[str, Any]) -> None:
        """Add a group of parameters with its own options (missing options take the defaults)."""
        if not isinstance(group, dict) or "params" not in group:
            raise ConfigError(
                f"{type(self).__name__}: a parameter group is a dict with a 'params' key, got {group!r}"
            )
        group = dict(group)
        group["params"] = _as_param_list(group["params"])
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        for p in group["params"]:
            if not isinstance(p, Param):
                raise ConfigError(
                    f"{type(self).__name__}: expected learnflux Params (model.parameters()), "
                    f"got {type(p).__name__}"
                )
            if id(p) in seen:
                raise ConfigError(
                    f"{type(self).__name__}: {p.describe()} appears in more than one parameter group"
                )
            seen.add(id(p))
        unknown = (
            set(group)
            - set(self.defaults)
            - {"params", "initial_lr", "max_lr", "min_lr", "max_momentum", "base_momentum", "name"}
        )
        if unknown:
            raise ConfigError(
                f"{type(self).__name__}: unknown option(s) {sorted(unknown)} in a parameter "
                f"group; expected some of {sorted(self.defaults)}"
            )
        for key, value in self.defaults.items():
            group.setdefault(key, value)
        self._validate_group(group)
        self.param_groups.append(group)

    def _validate_group(self, group: dict[str, Any]) -> None:
        """Check the options of one group (each transform checks its own); raise ConfigError."""
        for transform in self.transforms:
            transform.validate(group, type(self).__name__)

    def params(self) -> Iterator[Param]:
        for group in self.param_groups:
            yield from group["params"]

    # ------------------------------------------------------------------ stepping
    def step(self) -> None:
        """Update every parameter that has a gradient, in place."""
        exact_ok = self.supports_exact
        states = self.state
        for group in self.param_groups:
            for p in group["params"]:
                g = p.grad
                if g is None:
                    continue
                if not p.training:
                    self.check_phase(p)
                value = p.value
                if g.shape != value.shape:
                    raise ShapeError(
                        f"{type(self).__name__}.step: {p.describe()} has shape {value.shape} "
                        f"but its gradient has shape {g.shape}"
                    )
                if not exact_ok and value.dtype == object:
                    raise ExactnessError(
                        f"{type(self).__name__} needs square roots and cannot run in exact "
                        f"arithmetic ({p.describe()}); use SGD, or float64"
                    )
                state = states.get(p)
                if state is None:
                    state = states[p] = {}
                self._update(p, g, group, state)

    def _update(self, p: Param, g: np.ndarray, group: dict[str, Any], state: dict[str, Any]) -> None:
        """Run the transforms on one parameter, then ``w ← w − c·u``."""
        bufs = self._scratch.get(p.dtype)
        if bufs is None:
            bufs = self._scratch[p.dtype] = [np.empty(0, p.dtype), np.empty(0, p.dtype)]
        step = Step(p, g, group, state, bufs)
        for transform in self.transforms:
            if step._deferred and transform.reads_update:
                step.resolve()
            transform(step)
        step.apply()

    def zero_grad(self) -> None:
        """Forget every gradient (only needed when accumulating gradients over batches)."""
        for group in self.param_groups:
            for p in group["params"]:
                p.grad = None

    def check_phase(self, p: Param) -> None:
        if not p.training:
            raise PhaseError(
                f"{type(self).__name__}.step: {p.describe()} is in the inference phase; "
                "weights are frozen there (call model.train() to update them)"
            )

    # ------------------------------------------------------------------ saving and resuming
    def state_dict(self) -> dict[str, Any]:
        """The optimizer's state as plain data: ``{"state": {index: {name: array|number}},
        "param_groups": [{option: value, "params": [index, ...]}]}``.

        Parameters are numbered in the order of the groups (as ``torch.optim``); arrays are
        copies, so later steps do not change a saved state.
        """
        index: dict[int, int] = {}
        groups = []
        for group in self.param_groups:
            entry: dict[str, Any] = {}
            for key, value in group.items():
                if key == "params":
                    continue
                entry[key] = list(value) if isinstance(value, tuple) else value
            ids = []
            for p in group["params"]:
                index.setdefault(id(p), len(index))
                ids.append(index[id(p)])
            entry["params"] = ids
            groups.append(entry)
        state: dict[int, dict[str, Any]] = {}
        for p in self.params():
            st = self.state.get(p)
            if not st:
                continue
            state[index[id(p)]] = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in st.items()}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore a state saved by :meth:`state_dict` (from an optimizer of the same kind over
        parameters of the same shapes, in the same groups)."""
        name = type(self).__name__
        try:
            saved_groups = state_dict["param_groups"]
            saved_state = state_dict["state"]
        except (KeyError, TypeError):
            raise ConfigError(
                f"{name}.load_state_dict: expected a dict with 'state' and 'param_groups'"
            ) from None
        if len(saved_groups) != len(self.param_groups):
            raise ConfigError(
                f"{name}.load_state_dict: the saved state has {len(saved_groups)} parameter "
                f"group(s), this optimizer has {len(self.param_groups)}"
            )
        by_index: dict[int, Param] = {}
        for i, (saved, group) in enumerate(zip(saved_groups, self.param_groups, strict=True)):
            if len(saved["params"]) != len(group["params"]):
                raise ConfigError(
                    f"{name}.load_state_dict: parameter group {i} holds {len(saved['params'])} "
                    f"parameter(s) in the saved state, {len(group['params'])} here"
                )
            for idx, p in zip(saved["params"], group["params"], strict=True):
                by_index[int(idx)] = p
        new_state: dict[Param, dict[str, Any]] = {}
        for idx, st in saved_state.items():
            p = by_index.get(int(idx))
            if p is None:
                raise ConfigError(f"{name}.load_state_dict: state for unknown parameter {idx}")
            entry = {}
            for key, value in st.items():
                if isinstance(value, np.ndarray) or isinstance(value, list):
                    arr = np.array(value, dtype=p.dtype)
                    if arr.shape != p.value.shape:
                        raise ConfigError(
                            f"{name}.load_state_dict: state '{key}' of {p.describe()} has shape "
                            f"{arr.shape}, the parameter has shape {p.value.shape}"
                        )
                    entry[key] = arr
                else:
                    entry[key] = value
            new_state[p] = entry
        for saved, group in zip(saved_groups, self.param_groups, strict=True):
            for key, value in saved.items():
                if key == "params":
                    continue
                default = self.defaults.get(key, group.get(key))
                group[key] = tuple(value) if isinstance(default, tuple) else value
        self.state = new_state
        self._scratch = {}

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            opts = ", ".join(f"{k}={v!r}" for k, v in group.items() if k != "params")
            lines.append(f"  group {i}: {len(group['params'])} params, {opts}")
        return "\n".join(lines + [")"])


def check_transforms(transforms: Sequence[Transform], owner: str) -> None:
    """A transform that reads the step count needs a CountSteps before it."""
    counted = False
    for transform in transforms:
        if not isinstance(transform, Transform):
            raise ConfigError(f"{owner}: expected transforms, got {type(transform).__name__}")
        if transform.needs_step and not counted:
            raise ConfigError(f"{owner}: {transform!r} reads the step count; put CountSteps() before it")
        counted = counted or transform.counts_steps


def with_defaults(init: Callable[..., None], **defaults: Any) -> Callable[..., None]:
    """``init`` (a constructor) with other default values: the same code and arguments, and the
    signature ``inspect`` shows (the config reader's checks, the documentation) says the new
    defaults. ``AdamW.__init__`` is ``Adam.__init__`` with ``weight_decay=1e-2``."""
    sig = inspect.signature(init)
    unknown = set(defaults) - set(sig.parameters)
    if unknown:
        raise TypeError(f"{init.__qualname__} has no argument(s) {sorted(unknown)}")
    sig = sig.replace(
        parameters=[q.replace(default=defaults.get(q.name, q.default)) for q in sig.parameters.values()]
    )

    @functools.wraps(init)
    def __init__(*args: Any, **kwargs: Any) -> None:
        bound = sig.bind(*args, **kwargs)
        bound.apply_defaults()
        init(*bound.args, **bound.kwargs)

    __init__.__signature__ = sig  # type: ignore[attr-defined]
    return __init__


def param_groups(
    params: Any,
    weight_decay: float,
    no_decay: Sequence[str] = ("bias", "norm"),
    **options: Any,
) -> list[dict[str, Any]]:
    """Split parameters into two groups: with weight decay, and without (biases, norm layers).

    ``params`` is a model (or layer) or an iterable of Params. A parameter goes to the
    no-decay group when one of the ``no_decay`` patterns matches it:

    * the pattern equals its name inside its layer (``"bias"``, ``"weight"``);
    * the pattern appears (case-insensitive) in the class name of its layer (``"norm"`` matches
      ``BatchNorm2d`` and ``LayerNorm``, ``"embedding"`` matches ``Embedding``);
    * the pattern, a shell-style wildcard, matches its full name in the model (``"3.*"``,
      ``"*.bias"``; only when ``params`` is a model).

    ``options`` (``lr=...``, ``momentum=...``) are set on both groups. Empty groups are left out.
    Example::

        opt = lf.AdamW(lf.optim.param_groups(model, weight_decay=0.05), lr=1e-3)
    """
    full_names: dict[int, str] = {}
    if hasattr(params, "named_parameters") and callable(params.named_parameters):
        for full, p in params.named_parameters():
            full_names[id(p)] = full
    plist = _as_param_list(params)
    patterns = [no_decay] if isinstance(no_decay, str) else list(no_decay)

    def excluded(p: Param) -> bool:
        owner = type(p.owner).__name__.lower() if p.owner is not None else ""
        full = full_names.get(id(p), p.name)
        for pat in patterns:
            if pat == p.name or (pat.lower() in owner) or fnmatch.fnmatchcase(full, pat):
                return True
        return False

    decay = [p for p in plist if not excluded(p)]
    keep = [p for p in plist if excluded(p)]
    groups = []
    if decay:
        groups.append({"params": decay, "weight_decay": weight_decay, **options})
    if keep:
        groups.append({"params": keep, "weight_decay": 0.0, **options})
    if not groups:
        raise ConfigError("param_groups: got an empty list of parameters")
    return groups
