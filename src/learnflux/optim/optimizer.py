"""The optimizer contract: ``step()`` updates the weights from their gradients.

Every optimizer keeps, per parameter, a small state (moment estimates, step counts) allocated once
on the first step and updated in place afterwards, and can save and restore it as a plain dict of
numbers, lists and NumPy arrays (:meth:`Optimizer.state_dict`), so that training resumes exactly.
"""

from __future__ import annotations

import fnmatch
import math
from typing import Any, Iterable, Iterator, Sequence, Union

import numpy as np

from ..errors import ConfigError, ExactnessError, PhaseError, ShapeError
from ..numbers import scalar_like
from ..param import Param

ParamsLike = Union[Iterable[Union[Param, dict]], Any]


def _as_param_list(params: Any) -> list:
    """A model/layer (anything with ``params()``), a single Param, or an iterable of them."""
    if isinstance(params, Param):
        return [params]
    if hasattr(params, "params") and callable(params.params):
        return list(params.params())
    if isinstance(params, dict):
        return [params]
    return list(params)


class Optimizer:
    """Base of every optimizer.

    ``params`` is an iterable of :class:`Param` (``model.parameters()``), a model, or a list of
    parameter groups: dicts ``{"params": [...], "lr": ..., ...}`` whose options override the
    defaults (as in ``torch.optim``; see :func:`learnflux.optim.param_groups`). Parameters without
    a gradient are skipped by ``step``; a parameter in the inference phase is refused.

    Subclasses implement ``_update(p, g, group, state)`` for one parameter; ``state`` is the
    parameter's own dict (``self.state[p]``), empty on its first step.
    """

    #: whether the update only needs +, −, ×, ÷ (then it runs in exact Fraction arithmetic too)
    supports_exact = False

    def __init__(self, params: ParamsLike, defaults: dict[str, Any]) -> None:
        self.defaults = dict(defaults)
        self.param_groups: list[dict[str, Any]] = []
        self.state: dict[Param, dict[str, Any]] = {}
        self._scratch: dict[tuple[int, np.dtype], np.ndarray] = {}
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
        """Check the options of one group (subclasses extend it); raise ConfigError."""
        name = type(self).__name__
        for key in (
            "lr",
            "weight_decay",
            "eps",
            "momentum",
            "dampening",
            "lr_decay",
            "initial_accumulator_value",
        ):
            if key in group:
                try:
                    value = float(group[key])
                except (TypeError, ValueError):
                    raise ConfigError(f"{name}: {key} must be a number, got {group[key]!r}") from None
                if not value >= 0.0 or math.isinf(value):
                    raise ConfigError(f"{name}: {key} must be a finite number >= 0, got {value!r}")

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
        raise NotImplementedError

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

    # ------------------------------------------------------------------ helpers for subclasses
    def _buffer(self, p: Param, slot: int = 0) -> np.ndarray:
        """A scratch array shaped like ``p`` for the update of ``p`` (not state: its content is
        garbage on entry and is lost at the next call with the same ``slot``).

        Every parameter shares one flat buffer per ``(slot, dtype)``, sized by the largest one
        and allocated once: the scratch memory is one parameter's, not the model's."""
        key = (slot, p.dtype)
        buf = self._scratch.get(key)
        n = p.size
        if buf is None or buf.size < n:
            buf = self._scratch[key] = np.empty(n, dtype=p.dtype)
        return buf[:n].reshape(p.shape)

    @staticmethod
    def _zeros(p: Param, fill: Any = 0) -> np.ndarray:
        """A new state array shaped like ``p``, in its dtype, filled with ``fill``."""
        out = np.empty_like(p.value)
        out.fill(scalar_like(fill, p.dtype))
        return out

    @staticmethod
    def _s(value: Any, p: Param) -> Any:
        """A scalar in the arithmetic of ``p`` (float32 stays float32; exact reads decimals)."""
        return scalar_like(value, p.dtype)

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
