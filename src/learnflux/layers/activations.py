"""Element-wise activations. Each keeps, in the training phase, the least it needs for backward
(a boolean mask, or its own output) and computes ``δ_in = δ_out ⊙ f'(x)``."""

from __future__ import annotations

from fractions import Fraction
from typing import Any, Optional

import numpy as np

from ..layer import Layer
from ..numbers import scalar_like


class Activation(Layer):
    """Base of the element-wise activations: any input shape, output of the same shape."""

    def __init__(self) -> None:
        super().__init__()
        self._cache: Optional[np.ndarray] = None

    def _cache_attrs(self) -> tuple[str, ...]:
        return ("_cache",)

    def output_shape(self, input_shape: tuple) -> tuple:
        return tuple(input_shape)

    def summary_name(self) -> str:
        return f"{type(self).__name__}()"


class ReLU(Activation):
    """``ReLU(x) = x if x ≥ 0 else 0``.

    Backward, evaluated on the layer's input (SPEC convention 3): ``δ_in = δ_out if x ≥ 0 else 0``,
    so the derivative at exactly 0 is **1** (PyTorch uses 0 there). This is what lets the seed's
    third sample (``o2 = 0``) learn.
    """

    supports_exact = True

    def forward(self, x: np.ndarray) -> np.ndarray:
        mask = x >= 0
        if self.training:
            self._cache = mask
        if x.dtype == object:
            return np.where(mask, x, Fraction(0))
        return np.multiply(x, mask, dtype=x.dtype)

    def backward(self, delta_out: np.ndarray, need_input_delta: bool = True) -> np.ndarray:
        mask = self._cache
        self.check_trainable(mask)
        if delta_out.shape != mask.shape:
            raise self.shape_error(f"δ has shape {delta_out.shape}, expected {mask.shape}")
        if delta_out.dtype == object:
            return np.where(mask, delta_out, Fraction(0))
        return np.multiply(delta_out, mask, dtype=delta_out.dtype)


class LeakyReLU(Activation):
    """``LeakyReLU(x) = x if x ≥ 0 else negative_slope · x`` (default slope 0.01).

    Backward: ``δ_in = δ_out if x ≥ 0 else negative_slope · δ_out`` (derivative 1 at 0, as ReLU).
    In exact arithmetic the slope is read from its decimal text (0.01 → 1/100).
    """

    supports_exact = True

    def __init__(self, negative_slope: float = 0.01) -> None:
        super().__init__()
        self.negative_slope = negative_slope

    def _slope(self) -> Any:
        return scalar_like(self.negative_slope, self.dtype)

    def forward(self, x: np.ndarray) -> np.ndarray:
        mask = x >= 0
        if self.training:
            self._cache = mask
        return np.where(mask, x, x * self._slope())

    def backward(self, delta_out: np.ndarray, need_input_delta: bool = True) -> np.ndarray:
        mask = self._cache
        self.check_trainable(mask)
        if delta_out.shape != mask.shape:
            raise self.shape_error(f"δ has shape {delta_out.shape}, expected {mask.shape}")
        return np.where(mask, delta_out, delta_out * self._slope())

    def get_config(self) -> dict[str, Any]:
        return {"negative_slope": self.negative_slope}

    def summary_name(self) -> str:
        return f"LeakyReLU({self.negative_slope})"


class Sigmoid(Activation):
    """``σ(x) = 1 / (1 + e^(−x))``, computed as ``½(1 + tanh(x/2))`` (no overflow).

    Backward: ``δ_in = δ_out ⊙ σ(x)(1 − σ(x))``, from the cached output. Not exact: e^x is not a
    fraction.
    """

    def forward(self, x: np.ndarray) -> np.ndarray:
        out = np.tanh(x * 0.5)
        out += 1
        out *= 0.5
        if self.training:
            self._cache = out
        return out

    def backward(self, delta_out: np.ndarray, need_input_delta: bool = True) -> np.ndarray:
        out = self._cache
        self.check_trainable(out)
        if delta_out.shape != out.shape:
            raise self.shape_error(f"δ has shape {delta_out.shape}, expected {out.shape}")
        return delta_out * out * (1 - out)


class Tanh(Activation):
    """``tanh(x)``. Backward: ``δ_in = δ_out ⊙ (1 − tanh(x)²)``, from the cached output."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        out = np.tanh(x)
        if self.training:
            self._cache = out
        return out

    def backward(self, delta_out: np.ndarray, need_input_delta: bool = True) -> np.ndarray:
        out = self._cache
        self.check_trainable(out)
        if delta_out.shape != out.shape:
            raise self.shape_error(f"δ has shape {delta_out.shape}, expected {out.shape}")
        return delta_out * (1 - out * out)


__all__ = ["Activation", "ReLU", "LeakyReLU", "Sigmoid", "Tanh"]
