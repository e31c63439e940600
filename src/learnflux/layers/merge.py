"""Merge layers: join several branches of a graph into one."""

from __future__ import annotations

import math
from typing import Any, Optional

import numpy as np

from ..core.layer import Layer, register_layer


@register_layer
class Add(Layer):
    """``o = x₁ + x₂ + … + x_k`` (same shapes). Backward: every input receives ``δ_out`` unchanged
    (∂o/∂x_i = 1). With an identity branch this is the residual connection ``o = x + F(x)``."""

    supports_exact = True
    n_inputs = None

    def __init__(self) -> None:
        super().__init__()
        self._n: Optional[int] = None

    def output_shape(self, input_shape: list[tuple]) -> tuple:
        shapes = [tuple(s) for s in input_shape]
        if len(shapes) < 2 or any(s != shapes[0] for s in shapes):
            raise self.shape_error(f"needs at least 2 inputs of one shape, got shapes {shapes}")
        return shapes[0]

    def flops(self, input_shape: list[tuple]) -> int:
        """``k − 1`` additions per output value for ``k`` inputs."""
        return (len(input_shape) - 1) * math.prod(self.output_shape(input_shape))

    def forward(self, xs: list[np.ndarray]) -> np.ndarray:
        shapes = [x.shape for x in xs]
        if len(xs) < 2 or any(s != shapes[0] for s in shapes):
            raise self.shape_error(f"needs at least 2 inputs of one shape, got shapes {shapes}")
        if self.training:
            self._n = len(xs)
        out = xs[0] + xs[1]
        for x in xs[2:]:
            out += x
        return out

    def backward(self, delta_out: np.ndarray, need_input_delta: bool = True) -> list[np.ndarray]:
        self.check_trainable(self._n)
        return [delta_out] * self._n

    def _cache_attrs(self) -> tuple[str, ...]:
        return ("_n",)

    def summary_name(self) -> str:
        return "Add()"


@register_layer
class Concat(Layer):
    """Concatenate inputs along ``axis`` (default 1: features, or channels for images).
    Backward: ``δ_out`` is cut back into the pieces each input contributed."""

    supports_exact = True
    n_inputs = None
    flops_per_element = 0

    def __init__(self, axis: int = 1) -> None:
        super().__init__()
        if axis == 0:
            raise ValueError("Concat: axis 0 is the batch axis; use axis >= 1 (or a negative axis)")
        self.axis = axis
        self._sizes: Optional[list[int]] = None

    def forward(self, xs: list[np.ndarray]) -> np.ndarray:
        if len(xs) < 2:
            raise self.shape_error(f"needs at least 2 inputs, got {len(xs)}")
        ndim = xs[0].ndim
        axis = self.axis % ndim
        for x in xs[1:]:
            if x.ndim != ndim or x.shape[:axis] + x.shape[axis + 1 :] != (
                xs[0].shape[:axis] + xs[0].shape[axis + 1 :]
            ):
                raise self.shape_error(
                    f"inputs must agree on every axis but {self.axis}, "
                    f"got shapes {[tuple(x.shape) for x in xs]}"
                )
        if self.training:
            self._sizes = [x.shape[axis] for x in xs]
        return np.concatenate(xs, axis=axis)

    def backward(self, delta_out: np.ndarray, need_input_delta: bool = True) -> list[np.ndarray]:
        self.check_trainable(self._sizes)
        cuts = np.cumsum(self._sizes)[:-1]
        return np.split(delta_out, cuts, axis=self.axis % delta_out.ndim)

    def _cache_attrs(self) -> tuple[str, ...]:
        return ("_sizes",)

    def get_config(self) -> dict[str, Any]:
        return {"axis": self.axis}
