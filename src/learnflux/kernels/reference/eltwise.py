"""Element-wise kernels in NumPy: ReLU with its mask."""

from __future__ import annotations

from fractions import Fraction
from typing import Optional

import numpy as np

from ..workspace import zero_row


def relu_float(x: np.ndarray) -> np.ndarray:
    """``max(x, 0)`` for a float array, NaN kept. NumPy runs ``np.maximum`` against a *scalar* 0
    through a slow broadcasting loop (measured 3× slower than a plain copy on a 3 MB map); against
    a contiguous row of zeros as long as one sample it takes the SIMD loop. The rows are shared by
    every ReLU (one per sample size and dtype, in the workspace)."""
    if x.ndim >= 2 and not x.flags.c_contiguous and x.flags.f_contiguous:
        return relu_float(x.T).T  # a Linear's output in the inference phase (see Linear.forward)
    if x.ndim < 2 or not x.flags.c_contiguous:
        return np.maximum(x, x.dtype.type(0))
    width = x.size // x.shape[0]
    return np.maximum(x.reshape(x.shape[0], width), zero_row(width, x.dtype)).reshape(x.shape)


def relu_forward(x: np.ndarray, training: bool) -> tuple[np.ndarray, Optional[np.ndarray]]:
    """``(max(x, 0), [x ≥ 0] in training else None)``; exact values stay Fractions."""
    if x.dtype == object:
        mask = x >= 0
        return np.where(mask, x, Fraction(0)), (mask if training else None)
    mask = (x >= 0) if training else None  # backward needs the input's sign (ReLU'(0) = 1)
    return relu_float(x), mask  # max(x, 0) = x·[x ≥ 0], NaN stays NaN


def relu_backward(delta: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``δx = δ ⊙ mask``."""
    if delta.dtype == object:
        return np.where(mask, delta, Fraction(0))
    return np.multiply(delta, mask, dtype=delta.dtype)
