"""PReLU: a leaky ReLU whose negative slope is learned, PyTorch's ``nn.PReLU``."""

from __future__ import annotations

import math
import numbers
from typing import Any, Optional

import numpy as np

from ..core.layer import register_layer
from ..errors import ConfigError
from ..numbers import scalar_like
from .activations import Activation


@register_layer
class PReLU(Activation):
    """Parametric ReLU: ``PReLU(x) = x if x ≥ 0 else a·x = max(0, x) + a·min(0, x)``, with a
    learnable slope ``a``: one for every channel (``num_parameters = C``, the channel axis 1 as
    PyTorch), or one shared by all values (``num_parameters = 1``, the default).

    Backward, with ``δ = δ_out`` and ``a_c`` the slope of the value's channel:

    * ``δ_in = δ if x ≥ 0 else a_c·δ``: the derivative at exactly 0 is **1**, learnflux's rule for
      ReLU and LeakyReLU (docs/conventions.md, 'ReLU at 0'); PyTorch uses ``a`` there. Only an
      input of exactly 0 tells the two apart;
    * ``δa_c = Σ δ·min(0, x)`` over the batch and every value of channel ``c`` (over everything
      for a single slope); the inputs ``x ≥ 0`` contribute nothing.

    Args:
        num_parameters: how many slopes: 1, or the number of channels ``C`` of the input.
        init: the starting slope (0.25, as PyTorch).

    Weights: ``weight`` of shape ``(num_parameters,)``, PyTorch's name and layout.

    Input shape: ``(batch, C, ...)`` (any shape when ``num_parameters = 1``). Output shape: the
    same. Exact arithmetic: yes (comparisons and products).
    """

    supports_exact = True
    flops_per_element = 2  # as LeakyReLU: a comparison and a product
    torch_twins = ("PReLU",)

    def __init__(self, num_parameters: int = 1, init: float = 0.25) -> None:
        super().__init__()
        if not isinstance(num_parameters, (int, np.integer)) or isinstance(num_parameters, bool):
            raise ConfigError(f"PReLU: num_parameters must be a positive int, got {num_parameters!r}")
        if num_parameters < 1:
            raise ConfigError(f"PReLU: num_parameters must be a positive int, got {num_parameters!r}")
        if not isinstance(init, numbers.Real) or isinstance(init, bool) or not math.isfinite(init):
            raise ConfigError(f"PReLU: init must be a finite number, got {init!r}")
        self.num_parameters = int(num_parameters)
        self.init = float(init)
        self.add_param("weight", np.full(self.num_parameters, self.init))

    def _slopes(self, ndim: int) -> np.ndarray:
        """``a`` broadcast against an input of ``ndim`` axes (along axis 1 for several slopes)."""
        a = self.weight.value
        return a.reshape((1, -1) + (1,) * (ndim - 2)) if self.num_parameters > 1 else a.reshape(())

    def _check(self, shape: tuple) -> None:
        if self.num_parameters > 1 and (len(shape) < 2 or shape[1] != self.num_parameters):
            raise self.shape_error(
                f"expected input of shape (batch, {self.num_parameters}, ...) (one slope per channel, "
                f"axis 1), got {tuple(shape)}"
            )

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._check(x.shape)
        mask = x >= 0
        if self.training:
            self._cache = (x, mask)
        return np.where(mask, x, x * self._slopes(x.ndim))

    def backward(self, delta_out: np.ndarray, need_input_delta: bool = True) -> Optional[np.ndarray]:
        x, mask = self._saved_for(delta_out)
        negative = np.where(mask, scalar_like(0, x.dtype), x)  # min(0, x)
        axes = tuple(i for i in range(x.ndim) if i != 1 or self.num_parameters == 1)
        # np.asarray: a sum over every axis of Fractions is a plain Fraction
        self.weight.set_grad(np.asarray((delta_out * negative).sum(axis=axes)).reshape(self.num_parameters))
        if not need_input_delta:
            return None
        return np.where(mask, delta_out, delta_out * self._slopes(x.ndim))

    def output_shape(self, input_shape: tuple) -> tuple:
        self._check((1, *input_shape))
        return tuple(input_shape)

    @classmethod
    def state_shapes(cls, args: Any) -> dict[str, tuple]:
        return {"weight": (args.size("num_parameters", 1),)}

    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = {}
        if self.num_parameters != 1:
            config["num_parameters"] = self.num_parameters
        if self.init != 0.25:
            config["init"] = self.init
        return config

    def summary_name(self) -> str:
        return "PReLU(" + ", ".join(f"{k}={v!r}" for k, v in self.get_config().items()) + ")"


__all__ = ["PReLU"]
