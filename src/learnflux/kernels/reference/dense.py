"""The dense (Linear) layer's forward pass, the optimizers' last step and the check of a model's
input for NaN and infinity, in NumPy."""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from ..gemm import matmul
from .eltwise import relu_backward, relu_forward


def linear_forward(
    x: np.ndarray, weight: np.ndarray, bias: Optional[np.ndarray], training: bool, relu: bool
) -> tuple[np.ndarray, Optional[np.ndarray]]:
    """``o = x · Wᵀ + b`` for ``x`` of shape ``(batch, in)`` and, with ``relu``, ``ReLU(o)``;
    returns ``(output, mask)``, the mask ``[o ≥ 0]`` (ReLU's backward, ReLU'(0) = 1) in training
    with ``relu``, else None.

    The product runs as ``oᵀ = W · xᵀ``: OpenBLAS runs this operand order (untransposed W) about
    10% faster than ``x · Wᵀ`` on the benchmark's shapes. The result is a transposed view, ``(batch,
    out)`` in Fortran order; the next Linear reads it as a plain C-ordered ``xᵀ``, so in the
    inference phase a chain of Linear layers never transposes anything. The training phase copies
    it to C order: the backward products ``δᵀ · x`` are fastest with C-ordered operands. Both
    phases compute the same product, so their outputs are bit-identical."""
    out = matmul(weight, x.T).T
    if training:
        out = np.ascontiguousarray(out)
    if bias is not None:
        out += bias
    if not relu:
        return out, None
    return relu_forward(out, training)


def relu_backward_colsum(delta: np.ndarray, mask: np.ndarray, colsum: Optional[np.ndarray]) -> np.ndarray:
    """``δz = δ ⊙ mask`` (ReLU's backward, :func:`relu_backward`) for a ``(batch, out)`` δ and,
    when ``colsum`` is given, ``Σ_batch δz`` written into it (the bias gradient of the Linear
    layer before the ReLU)."""
    dz = relu_backward(delta, mask)
    if colsum is not None:
        np.sum(dz, axis=0, out=colsum)
    return dz


def sub_scaled(w: np.ndarray, u: np.ndarray, c: Any, spare: Optional[np.ndarray]) -> None:
    """``w ← w − c·u`` in place (the end of every optimizer step): ``t = c·u`` into ``spare``
    (an array shaped like ``w``, or None: into ``u`` itself, which the caller owns), then
    ``w −= t``; ``c == 1`` skips the product."""
    if c != 1:
        if spare is None:
            u *= c
        else:
            np.multiply(u, c, out=spare)
            u = spare
    w -= u


def surely_finite(arr: np.ndarray) -> bool:
    """True when the float array ``arr`` holds no NaN and no infinity (False: it may hold one).

    One BLAS dot product ``Σ x²``, the cheapest full pass in NumPy (about 3× faster than
    ``arr.sum()`` on a batch of images): a NaN or ±inf makes it NaN or inf. Finite values so large
    that ``Σ x²`` overflows (above ~1e19 in float32) also answer False, which only sends the caller
    to its element-wise check."""
    flat = arr.reshape(-1)
    with np.errstate(over="ignore"):
        return bool(np.isfinite(np.dot(flat, flat)))
