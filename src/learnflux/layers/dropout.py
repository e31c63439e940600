"""Dropout: randomly silence inputs in the training phase (inverted dropout)."""

from __future__ import annotations

from fractions import Fraction
from typing import Any, Optional

import numpy as np

from ..core.layer import Layer, register_layer
from ..errors import ConfigError
from ..numbers import is_exact, scalar_like
from ..seeding import RngLike, get_rng


@register_layer
class Dropout(Layer):
    """Inverted dropout.

    Training phase: every element is kept with probability ``1 − p`` and scaled by ``1/(1 − p)``,
    so the expected output equals the input::

        m_i ~ Bernoulli(1 − p)        o = x ⊙ m / (1 − p)

    Backward (the same mask): ``δ_in = δ_out ⊙ m / (1 − p)``.

    Inference phase: the identity, ``o = x`` (no mask, no cache).

    Args:
        p: probability of dropping an element, in ``[0, 1]`` (``p = 1`` drops everything).
        rng: a ``numpy.random.Generator`` or an int seed for the masks. Default: the library's
            global generator (``lf.seed(n)``), so runs with the same seed draw the same masks.
            The generator is kept in ``self.rng`` (``lf.gradcheck`` replays it).

    Input shape: any, ``(batch, ...)``. Output shape: the same.
    """

    supports_exact = True
    flops_per_element = 0  # counted in the inference phase, where dropout is the identity
    torch_twins = ("Dropout",)

    def __init__(self, p: float = 0.5, rng: RngLike = None) -> None:
        super().__init__()
        p = float(p)
        if not 0.0 <= p <= 1.0:
            raise ConfigError(f"Dropout: p must be a probability in [0, 1], got {p}")
        self.p = p
        self.rng: np.random.Generator = get_rng(rng)
        self._mask: Any = None

    def _scale(self) -> Any:
        if self.p >= 1.0:
            return scalar_like(0, self.dtype)
        if is_exact(self.dtype):
            return 1 / (1 - scalar_like(self.p, self.dtype))
        return scalar_like(1.0 / (1.0 - self.p), self.dtype)

    def forward(self, x: np.ndarray) -> np.ndarray:
        if not self.training:
            return x
        if self.p == 0.0:
            self._mask = True  # the identity: nothing to remember but "forward ran"
            return x
        # float32 draws whatever the dtype: the same seed gives the same mask in every dtype
        keep = self.rng.random(x.shape, dtype=np.float32) >= np.float32(self.p)
        if x.dtype == object:
            scaled = np.where(keep, self._scale(), Fraction(0))
        else:
            scaled = np.multiply(keep, self._scale(), dtype=x.dtype)
        self._mask = scaled
        return x * scaled

    def backward(self, delta_out: np.ndarray, need_input_delta: bool = True) -> Optional[np.ndarray]:
        mask = self._mask
        self.check_trainable(mask)
        if mask is True:
            return delta_out
        if delta_out.shape != mask.shape:
            raise self.shape_error(f"δ has shape {tuple(delta_out.shape)}, expected {mask.shape}")
        return delta_out * mask

    def _cache_attrs(self) -> tuple[str, ...]:
        return ("_mask",)

    def output_shape(self, input_shape: tuple) -> tuple:
        return tuple(input_shape)

    def get_config(self) -> dict[str, Any]:
        return {"p": self.p}

    def summary_name(self) -> str:
        return f"Dropout(p={self.p})"


__all__ = ["Dropout"]
