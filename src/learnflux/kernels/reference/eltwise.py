"""Element-wise kernels in NumPy: ReLU with its mask; GELU (exact, and the tanh approximation) with
what its backward pass needs."""

from __future__ import annotations

import math
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


# ---------------------------------------------------------------------- GELU
# erfc(z) for z ≥ 0 as  t·exp(−z² + Σ_k c_k T_k(u)),  t = 2/(2 + z),  u = 2t − 1 = (2 − z)/(2 + z):
# the Chebyshev expansion (on u ∈ [−1, 1]) of f(u) = ln(erfc(z)/t) + z², whose coefficients were
# computed for learnflux with mpmath (50 digits, 64 Chebyshev nodes) and truncated where they fall
# below 1e-19. One formula covers every z ≥ 0; the relative error is below 1e-14 for z < 6
# (checked against mpmath) and comes only from rounding z². float32 uses the first 15 terms.
_ERFC_CHEB = (
    -0.6513268598908547,
    0.6419697923564902,
    0.019476473204185836,
    -0.009561514786808632,
    -0.0009465953444820369,
    0.00036683949785276145,
    4.252332480690777e-05,
    -2.0278578112534242e-05,
    -1.6242900046470256e-06,
    1.3036558355805232e-06,
    1.5626441722066142e-08,
    -8.523809591492654e-08,
    6.5290544390988515e-09,
    5.059343495551469e-09,
    -9.91364156493033e-10,
    -2.273651222931836e-10,
    9.646791102015527e-11,
    2.3940380830391146e-12,
    -6.886027526497553e-12,
    8.944879273090725e-13,
    3.130921399342958e-13,
    -1.1270822361367252e-13,
    3.810905255189232e-16,
    7.106097613609237e-15,
    -1.5230282014571043e-15,
    -9.457494571291233e-17,
    1.210237189224279e-16,
    -2.816663087747177e-17,
    5.003005559445902e-20,
    2.3281042579529253e-18,
    -8.446077682509006e-19,
    7.376840893227907e-20,
)
_ERFC_TERMS = {np.dtype(np.float64): 32, np.dtype(np.float32): 15}


def erfc_nonneg(z: np.ndarray, z2: Optional[np.ndarray] = None) -> np.ndarray:
    """erfc(z) for z ≥ 0 (float32 or float64, same dtype out); ``z2`` = z² if already known."""
    dt = z.dtype
    coef = np.asarray(_ERFC_CHEB[: _ERFC_TERMS.get(dt, 32)], dtype=dt)
    t = 2 / (z + 2)
    u2 = 4 * t - 2  # 2u, for Clenshaw's recurrence b_k = c_k + 2u·b_(k+1) − b_(k+2)
    b1 = np.zeros_like(z)
    b2 = np.zeros_like(z)
    for ck in coef[:0:-1]:
        b = u2 * b1
        b -= b2
        b += ck
        b1, b2 = b, b1
    f = u2 * b1
    f *= 0.5
    f -= b2
    f += coef[0]
    f -= z * z if z2 is None else z2
    np.exp(f, out=f)
    f *= t
    return f


_SQRT1_2 = math.sqrt(0.5)
_INV_SQRT_2PI = 1 / math.sqrt(2 * math.pi)
_SQRT_2_OVER_PI = math.sqrt(2 / math.pi)
_GELU_C = 0.044715


def gelu_forward(
    x: np.ndarray, approximate: str, training: bool
) -> tuple[np.ndarray, Optional[tuple[np.ndarray, np.ndarray]]]:
    """``(x·Φ(x), (x, Φ(x)) in training else None)``, ``Φ(x) = 1 − ½erfc(x/√2)`` for x ≥ 0 and
    ``½erfc(−x/√2)`` below (no cancellation in the tail). ``approximate="tanh"``:
    ``(½x(1 + tanh u), (x, tanh u))``, ``u = √(2/π)(x + 0.044715x³)``. Float arrays only."""
    with np.errstate(over="ignore", under="ignore"):  # x² of a huge |x|: the limits are right
        dt = x.dtype
        if approximate == "tanh":
            x2 = x * x
            inner = x2 * dt.type(_GELU_C)
            inner += 1
            inner *= x
            inner *= dt.type(_SQRT_2_OVER_PI)
            th = np.tanh(inner, out=inner)
            out = th + 1
            out *= x
            out *= 0.5
            return out, ((x, th) if training else None)
        half_x2 = x * x
        half_x2 *= 0.5
        e = erfc_nonneg(np.abs(x) * dt.type(_SQRT1_2), half_x2)
        e *= 0.5
        cdf = np.where(x >= 0, 1 - e, e)
        return x * cdf, ((x, cdf) if training else None)


def gelu_backward(delta: np.ndarray, saved: tuple[np.ndarray, np.ndarray], approximate: str) -> np.ndarray:
    """``δx = δ ⊙ (Φ(x) + x·φ(x))``, ``φ(x) = e^(−x²/2)/√(2π)``, from ``saved = (x, Φ(x))``; for
    ``approximate="tanh"`` from ``(x, tanh u)``:
    ``δx = δ ⊙ (½(1 + tanh u) + ½x(1 − tanh² u)·√(2/π)(1 + 3·0.044715x²))``."""
    x, aux = saved
    dt = x.dtype
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        if approximate == "tanh":
            th = aux
            # 1 − tanh²u is exactly 0 long before |x| = 1e3: clipping there only avoids 0·∞
            xc = np.clip(x, -1e3, 1e3)
            d = 1 - th * th
            d *= xc
            xc *= xc
            xc *= 3 * _GELU_C
            xc += 1
            d *= xc
            d *= dt.type(_SQRT_2_OVER_PI)
            d += th
            d += 1
            d *= 0.5
            return delta * d
        pdf = x * x
        pdf *= -0.5
        np.exp(pdf, out=pdf)
        pdf *= dt.type(_INV_SQRT_2PI)
        pdf *= x
        pdf += aux
        return delta * pdf
