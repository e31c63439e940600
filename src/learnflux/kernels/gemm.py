"""The GEMM calls of the kernels. Both kernel sets multiply through :func:`matmul`, which runs
the active BLAS (:mod:`.blas`: NumPy's OpenBLAS, or Intel MKL where it is installed and faster);
these helpers also choose the operand layout BLAS runs fastest."""

from __future__ import annotations

from typing import Optional

import numpy as np

from . import blas

#: a weight gradient whose result has at most this many entries per group, summed over at least
#: ``SPLIT_MIN_LENGTH`` positions, is computed as ``SPLIT_PARTS`` partial products added up
SPLIT_MAX_RESULT = 1024
SPLIT_MIN_LENGTH = 1 << 15
SPLIT_PARTS = 8


def matmul(a: np.ndarray, b: np.ndarray, out: Optional[np.ndarray] = None) -> np.ndarray:
    """``a @ b`` for matrices or stacks of them (``(g, m, k) × (g, k, n)``), each product through
    the active BLAS (:func:`.blas.matmul`); broadcasting and other stacks run ``np.matmul``."""
    if a.ndim == 2 and b.ndim == 2:
        return blas.matmul(a, b, out)
    if blas.active() == "numpy" or a.ndim != 3 or b.ndim != 3 or a.shape[0] != b.shape[0]:
        return np.matmul(a, b, out=out)
    if out is None:
        out = np.empty((a.shape[0], a.shape[1], b.shape[2]), dtype=np.result_type(a, b))
    for i in range(a.shape[0]):
        view = out[i]
        part = blas.matmul(a[i], b[i], view if view.flags.c_contiguous else None)
        if part is not view:
            view[...] = part
    return out


def weight_grad(delta: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """``δW = δ_mat · X_colᵀ`` per group, ``(g, out_g, L) × (g, K_g, L) → (g, out_g, K_g)``. BLAS
    runs the transposed product ``X_col · δ_matᵀ`` faster when ``K_g ≥ out_g`` (measured: 20-40%
    on the benchmark's shapes), the direct one when ``K_g`` is tiny (a first layer, ``K = 9``).

    A tiny result summed over a very long ``L`` (a first layer: 16×9 entries over 64·28·30
    positions) is a "skinny" product that OpenBLAS runs at a fraction of its speed; split into
    ``SPLIT_PARTS`` stacked products over slices of ``L``, added at the end, it ran 3× faster
    (0.63 → 0.18 ms for LeNet's first layer). The sum is the same up to the order of additions."""
    g, m, length = delta.shape
    k = cols.shape[1]
    if m * k <= SPLIT_MAX_RESULT and length >= SPLIT_MIN_LENGTH:
        part = length // SPLIT_PARTS
        head = part * SPLIT_PARTS
        d4 = delta[:, :, :head].reshape(g, m, SPLIT_PARTS, part).transpose(0, 2, 1, 3)
        c4 = cols[:, :, :head].reshape(g, k, SPLIT_PARTS, part).transpose(0, 2, 3, 1)
        gw = np.matmul(d4, c4).sum(axis=1)
        if head < length:
            gw += matmul(delta[:, :, head:], cols[:, :, head:].transpose(0, 2, 1))
        return gw
    if cols.shape[1] >= delta.shape[1]:
        return matmul(cols, delta.transpose(0, 2, 1)).transpose(0, 2, 1)
    return matmul(delta, cols.transpose(0, 2, 1))
