"""The one owner of every reusable scratch array of the kernels.

Two kinds of scratch:

* **shared blocks** (:func:`shared`): per-thread work buffers that every layer shares; their
  contents live only inside one kernel call (the columns of a convolution, a GEMM's product).
  Grown when too small, so a model holds one buffer per key, the size of its largest use, not
  one per layer.
* **owned scratch** (:class:`Scratch`): buffers a layer keeps between calls because their
  contents stay valid (the zero border of a convolution's padded input is written once). The
  layer holds its ``Scratch``; it goes away with the layer.

And :func:`zero_row`, the rows of zeros ReLU compares against (see ``reference.eltwise``).
"""

from __future__ import annotations

import threading

import numpy as np

_LOCAL = threading.local()
_ZERO_ROWS: dict[tuple[int, np.dtype], np.ndarray] = {}


def shared(key: str, shape: tuple, dtype: np.dtype) -> np.ndarray:
    """A C-contiguous array of ``shape`` carved from this thread's work buffer ``key`` (its
    contents are valid only until the next call that asks for the same key)."""
    count = int(np.prod(shape))
    bufs = _LOCAL.__dict__.setdefault("bufs", {})
    buf = bufs.get((key, dtype))
    if buf is None or buf.size < count:
        buf = np.empty(count, dtype=dtype)
        bufs[(key, dtype)] = buf
    return buf[:count].reshape(shape)


def zero_row(width: int, dtype: np.dtype) -> np.ndarray:
    """A read-only row of ``width`` zeros of ``dtype``, shared by every caller."""
    zeros = _ZERO_ROWS.get((width, dtype))
    if zeros is None:
        zeros = np.zeros(width, dtype=dtype)
        zeros.flags.writeable = False
        _ZERO_ROWS[(width, dtype)] = zeros
    return zeros


def release_shared() -> None:
    """Drop this thread's shared blocks (they are re-allocated on the next use)."""
    _LOCAL.__dict__.pop("bufs", None)


class Scratch:
    """Buffers one layer keeps between calls, allocated zeroed once per key, shape and dtype."""

    def __init__(self) -> None:
        self._bufs: dict[str, np.ndarray] = {}

    def get(self, key: str, shape: tuple, dtype: np.dtype) -> np.ndarray:
        buf = self._bufs.get(key)
        if buf is None or buf.shape != shape or buf.dtype != dtype:
            buf = np.zeros(shape, dtype=dtype)
            self._bufs[key] = buf
        return buf

    def clear(self) -> None:
        self._bufs.clear()
