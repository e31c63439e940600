"""The GEMM calls of the kernels. Both kernel sets multiply through NumPy's BLAS (OpenBLAS in the
NumPy wheels): these helpers only choose the operand layout BLAS runs fastest."""

from __future__ import annotations

import numpy as np

#: a weight gradient whose result has at most this many entries per group, summed over at least
#: ``SPLIT_MIN_LENGTH`` positions, is computed as ``SPLIT_PARTS`` partial products added up
SPLIT_MAX_RESULT = 1024
SPLIT_MIN_LENGTH = 1 << 15
SPLIT_PARTS = 8


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
            gw += np.matmul(delta[:, :, head:], cols[:, :, head:].transpose(0, 2, 1))
        return gw
    if cols.shape[1] >= delta.shape[1]:
        return np.matmul(cols, delta.transpose(0, 2, 1)).transpose(0, 2, 1)
    return np.matmul(delta, cols.transpose(0, 2, 1))
