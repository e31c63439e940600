"""The optimizer contract: ``step()`` updates the weights from their gradients."""

from __future__ import annotations

from typing import Any, Iterable, Union

from ..errors import ConfigError, PhaseError
from ..param import Param


class Optimizer:
    """Base of every optimizer.

    ``params`` is an iterable of :class:`Param` (``model.parameters()``) or of parameter groups,
    dicts ``{"params": [...], "lr": ..., ...}`` whose options override the defaults (as in
    ``torch.optim``). Parameters without a gradient are skipped by ``step``.
    """

    def __init__(self, params: Iterable[Union[Param, dict]], defaults: dict[str, Any]) -> None:
        self.defaults = dict(defaults)
        self.param_groups: list[dict[str, Any]] = []
        items = list(params)
        if not items:
            raise ConfigError(f"{type(self).__name__}: got an empty list of parameters")
        if isinstance(items[0], dict):
            for group in items:
                self.add_param_group(group)
        else:
            self.add_param_group({"params": items})
        self.state: dict[int, dict[str, Any]] = {}

    def add_param_group(self, group: dict[str, Any]) -> None:
        group = dict(group)
        params = group["params"]
        group["params"] = [params] if isinstance(params, Param) else list(params)
        for p in group["params"]:
            if not isinstance(p, Param):
                raise ConfigError(
                    f"{type(self).__name__}: expected learnflux Params (model.parameters()), "
                    f"got {type(p).__name__}"
                )
        for key, value in self.defaults.items():
            group.setdefault(key, value)
        self.param_groups.append(group)

    def step(self) -> None:
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
