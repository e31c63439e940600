"""The one owner of every reusable scratch array of the kernels.

Two kinds of scratch:

* **shared blocks** (:func:`shared`): per-thread work buffers that every layer shares; their
  contents live only inside one kernel call (the columns of a convolution, a GEMM's product).
  Grown when too small, so a model holds one buffer per key, the size of its largest use, not
  one per layer.
* **owned scratch** (:class:`Scratch`): buffers a layer keeps between calls because their
  contents stay valid (the zero border of a convolution's padded input is written once). The
  layer holds its ``Scratch``; it goes away with the layer.

And :func:`zero_row`, the rows of zeros ReLU compares against (see ``reference.eltwise``), and
:func:`tune_malloc`, which keeps the memory of freed arrays in the process for the next step.
"""

from __future__ import annotations

import ctypes
import os
import platform
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


#: glibc's malloc thresholds learnflux sets at import (see :func:`tune_malloc`)
MMAP_THRESHOLD = 32 << 20
TRIM_THRESHOLD = 128 << 20
MALLOC_VAR = "LEARNFLUX_MALLOC_TUNING"
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


def _is_glibc() -> bool:
    """The process runs on glibc (instant, unlike ``platform.libc_ver``, which reads the
    interpreter's binary: 6.6 ms of every import)."""
    try:
        return (os.confstr("CS_GNU_LIBC_VERSION") or "").startswith("glibc")
    except (AttributeError, ValueError, OSError):
        return False


def tune_malloc() -> str:
    """Keep freed arrays' memory in the process (glibc only): arrays up to ``MMAP_THRESHOLD``
    bytes come from the heap and up to ``TRIM_THRESHOLD`` bytes of free heap stay mapped.

    Why: a training step allocates its outputs and δ fresh (the caller owns them) and frees them
    by its end. With glibc's default, dynamic thresholds the free heap top was handed back to the
    kernel at every step and faulted in again at the next: 1958 page faults per LeNet step (batch
    64), 1130 per CNN inference batch. With these thresholds: none, and the step 14-17 → 9-10 ms,
    CNN inference 19 → 15 ms (peak RSS unchanged, 57 MiB; processes alternated, load ~5).

    Not done when ``LEARNFLUX_MALLOC_TUNING=0``, when the environment already tunes malloc
    (``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_TRIM_THRESHOLD_`` or ``GLIBC_TUNABLES``), or off glibc.
    Returns what was done, for :func:`learnflux.kernels.info`."""
    if os.environ.get(MALLOC_VAR, "").strip() == "0":
        return f"{MALLOC_VAR}=0: glibc's defaults"
    if any(v in os.environ for v in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES")):
        return "the environment tunes malloc"
    if platform.system() != "Linux" or not _is_glibc():
        return "not glibc: the C library's defaults"
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return "mallopt not found: glibc's defaults"
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    # the mmap threshold first: setting either one turns glibc's dynamic thresholds off
    if mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD):
        mib = MMAP_THRESHOLD >> 20, TRIM_THRESHOLD >> 20
        return f"arrays up to {mib[0]} MiB from the heap, {mib[1]} MiB of free heap kept"
    return "mallopt refused: glibc's defaults"
