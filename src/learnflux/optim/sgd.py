"""Stochastic gradient descent."""

from __future__ import annotations

from typing import Any, Iterable, Union

from ..numbers import scalar_like
from ..param import Param
from .optimizer import Optimizer


class SGD(Optimizer):
    """Plain gradient descent: ``ŵ = w − α · δw`` for every parameter, ``α`` the learning rate.

    The update is done in place. In exact arithmetic ``lr`` is read as the decimal it spells
    (``1e-7`` → 1/10⁷).
    """

    def __init__(self, params: Iterable[Union[Param, dict]], lr: Any = 0.01) -> None:
        super().__init__(params, {"lr": lr})

    def step(self) -> None:
        for group in self.param_groups:
            lr = group["lr"]
            for p in group["params"]:
                g = p.grad
                if g is None:
                    continue
                self.check_phase(p)
                v = p.value
                v -= scalar_like(lr, v.dtype) * g
