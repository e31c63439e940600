"""Which BLAS runs the large matrix products: NumPy's (OpenBLAS in the NumPy wheels) or Intel MKL.

Every GEMM of both kernel sets and of ``Linear`` goes through :func:`matmul`. By default that is
``np.matmul``. Where Intel MKL is installed (the ``mkl`` wheel: ``pip install "learnflux[mkl]"``,
about 1 GB) and the CPU is an Intel one, the large float32/float64 products go through MKL's C
interface (``cblas_sgemm``/``cblas_dgemm`` from ``libmkl_rt``, called with ctypes, which releases
the GIL) instead. Measured through that interface on the MLP's shapes (784-512-512-10, batch 128):

* on a 2-core Intel Xeon: MKL 170–203 GFLOP/s with ``MKL_THREADING_LAYER=GNU``, NumPy's OpenBLAS
  106–160; MKL's default Intel threading layer only 27–183 (its OpenMP runtime fights the other
  thread pools), sequential 85–104. So learnflux loads MKL with the GNU threading layer unless the
  environment already sets ``MKL_THREADING_LAYER``;
* on a 2-core AMD EPYC: MKL (sequential, the fairer of its layers there) ran at 0.49–0.96× the
  speed of OpenBLAS (median 0.65×), so ``auto`` keeps NumPy's BLAS on non-Intel CPUs.

``LEARNFLUX_BLAS`` = ``auto`` (the default: MKL when it loads and the CPU is Intel), ``numpy``
or ``mkl`` (MKL whatever the CPU; a warning and NumPy's BLAS when MKL is not installed) chooses;
:func:`use` switches at run time and :func:`info` says which BLAS runs and why (``lf.info()``
and ``learnflux --version`` show it).

Products below ``MIN_WORK`` multiply-adds, or whose operands are neither C- nor Fortran-ordered,
or of any other dtype (exact ``Fraction`` arrays, integers), stay in ``np.matmul``: a ctypes call
costs a few microseconds, more than a small product.
"""

from __future__ import annotations

import ctypes
import glob
import os
import sys
import warnings
from typing import Any, Callable, Optional

import numpy as np

ENV_VAR = "LEARNFLUX_BLAS"
CHOICES = ("auto", "numpy", "mkl")
#: below this many multiply-adds (m·n·k) a product stays in np.matmul
MIN_WORK = 1 << 18
#: NumPy's OpenBLAS runs a product below this many multiply-adds on one thread (see matmul)
ONE_THREAD_WORK = 1 << 22
#: below this many multiply-adds OpenBLAS already uses one thread by itself (its
#: ``SMP_THRESHOLD_MIN · GEMM_MULTITHREAD_THRESHOLD`` = 65536 · 4): no thread switch needed
OPENBLAS_SINGLE_THREAD_WORK = 1 << 18

_ROW_MAJOR, _NO_TRANS, _TRANS = 101, 111, 112

_state: dict[str, Any] = {"gemm": None, "name": None, "reason": "", "lib": None, "lib_error": None}


def _cpu_vendor() -> str:
    """``"GenuineIntel"``, ``"AuthenticAMD"``... (empty when unknown)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("vendor_id"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def _mkl_candidates() -> list[str]:
    """Where the ``mkl`` wheel puts ``libmkl_rt`` (the environment's lib folder), then the
    system's library path."""
    found: list[str] = []
    for prefix in dict.fromkeys((sys.prefix, sys.base_prefix)):
        found += sorted(glob.glob(os.path.join(prefix, "lib", "libmkl_rt.so*")), reverse=True)
        found += sorted(glob.glob(os.path.join(prefix, "Library", "bin", "mkl_rt*.dll")))
    found.append("libmkl_rt.so.2" if sys.platform != "win32" else "mkl_rt.2.dll")
    found.append("libmkl_rt.so")
    return found


def _load_mkl() -> Optional[ctypes.CDLL]:
    """``libmkl_rt`` loaded once with the GNU threading layer (None when it is not installed)."""
    if _state["lib"] is not None or _state["lib_error"] is not None:
        return _state["lib"]
    os.environ.setdefault("MKL_THREADING_LAYER", "GNU")  # read by libmkl_rt when it loads
    errors = []
    for path in _mkl_candidates():
        try:
            lib = ctypes.CDLL(path)
        except OSError as exc:
            errors.append(str(exc))
            continue
        lib.cblas_sgemm.restype = None
        lib.cblas_dgemm.restype = None
        _state["lib"] = lib
        return lib
    _state["lib_error"] = "Intel MKL is not installed (pip install 'learnflux[mkl]')"
    return None


def _mkl_gemm(lib: ctypes.CDLL) -> Callable[..., Optional[np.ndarray]]:
    """A ``gemm(a, b, out)`` through MKL's cblas interface, or None when the operands do not
    suit it (the caller then runs np.matmul)."""
    scalars = {np.dtype(np.float32): ctypes.c_float, np.dtype(np.float64): ctypes.c_double}
    funcs = {np.dtype(np.float32): lib.cblas_sgemm, np.dtype(np.float64): lib.cblas_dgemm}

    def operand(x: np.ndarray) -> Optional[tuple[int, int]]:
        """(transpose flag, leading dimension) of a 2-D operand read in row-major order."""
        if x.flags.c_contiguous:
            return _NO_TRANS, max(1, x.shape[1])
        if x.flags.f_contiguous:
            return _TRANS, max(1, x.shape[0])
        return None

    def gemm(a: np.ndarray, b: np.ndarray, out: Optional[np.ndarray]) -> Optional[np.ndarray]:
        dtype = a.dtype
        if a.ndim != 2 or b.ndim != 2 or dtype not in funcs or b.dtype != dtype:
            return None
        (m, k), n = a.shape, b.shape[1]
        if b.shape[0] != k or m * n * k < MIN_WORK:
            return None
        ta, tb = operand(a), operand(b)
        if ta is None or tb is None:
            return None
        if out is None:
            out = np.empty((m, n), dtype=dtype)
        elif out.shape != (m, n) or out.dtype != dtype or not out.flags.c_contiguous:
            return None
        one, zero = scalars[dtype](1.0), scalars[dtype](0.0)
        funcs[dtype](
            _ROW_MAJOR, ta[0], tb[0], m, n, k, one,
            ctypes.c_void_p(a.ctypes.data), ta[1],
            ctypes.c_void_p(b.ctypes.data), tb[1],
            zero, ctypes.c_void_p(out.ctypes.data), max(1, n),
        )  # fmt: skip
        return out

    return gemm


def _resolve(name: str, source: str) -> None:
    name = name.strip().lower() or "auto"
    if name not in CHOICES:
        warnings.warn(
            f"learnflux: {source} {name!r} is not one of {', '.join(CHOICES)}; using 'auto'",
            RuntimeWarning,
            stacklevel=4,
        )
        name = "auto"
    asked = f"{ENV_VAR}={name}" if source == ENV_VAR else f"blas.use({name!r})"
    if name == "numpy":
        _state.update(gemm=None, name="numpy", reason=asked)
        return
    vendor = _cpu_vendor()
    if name == "auto" and vendor != "GenuineIntel":
        why = f"{asked}: NumPy's BLAS (the CPU is {vendor or 'not an Intel one'}, MKL ran slower on AMD)"
        _state.update(gemm=None, name="numpy", reason=why)
        return
    lib = _load_mkl()
    if lib is None:
        why = f"{asked}: NumPy's BLAS, {_state['lib_error']}"
        if name == "mkl":
            warnings.warn(f"learnflux: {why}", RuntimeWarning, stacklevel=4)
        _state.update(gemm=None, name="numpy", reason=why)
        return
    layer = os.environ.get("MKL_THREADING_LAYER", "")
    why = f"{asked}: Intel MKL (MKL_THREADING_LAYER={layer})"
    _state.update(gemm=_mkl_gemm(lib), name="mkl", reason=why)


def _active_gemm() -> Optional[Callable[..., Optional[np.ndarray]]]:
    if _state["name"] is None:
        _resolve(os.environ.get(ENV_VAR, "auto"), ENV_VAR)
    return _state["gemm"]


def _openblas_threads() -> Optional[tuple[Callable[[], int], Callable[[int], None]]]:
    """``(get, set)`` of the thread count of NumPy's own OpenBLAS (the library bundled in the
    NumPy wheel, already loaded by NumPy; ctypes only looks its functions up), or None when NumPy
    runs another BLAS or the library is not where the wheels put it."""
    if _state.get("openblas") is None:
        found: Any = False
        here = os.path.dirname(np.__file__)
        paths = glob.glob(os.path.join(here, os.pardir, "numpy.libs", "*openblas*"))
        paths += glob.glob(os.path.join(here, ".libs", "*openblas*"))
        for path in paths:
            try:
                lib = ctypes.CDLL(path)
            except OSError:
                continue
            for prefix, suffix in (
                ("scipy_openblas", "64_"),
                ("scipy_openblas", ""),
                ("openblas", "64_"),
                ("openblas", ""),
            ):
                getter = getattr(lib, f"{prefix}_get_num_threads{suffix}", None)
                setter = getattr(lib, f"{prefix}_set_num_threads{suffix}", None)
                if getter is not None and setter is not None:
                    getter.restype, setter.restype = ctypes.c_int, None
                    setter.argtypes = [ctypes.c_int]
                    found = (getter, setter)
                    break
            if found:
                break
        _state["openblas"] = found
    return _state["openblas"] or None


def matmul(a: np.ndarray, b: np.ndarray, out: Optional[np.ndarray] = None) -> np.ndarray:
    """``a @ b`` (with ``out=`` as np.matmul) through the active BLAS. A product of NumPy's
    OpenBLAS below ``ONE_THREAD_WORK`` multiply-adds runs on one OpenBLAS thread: waking its second
    thread for a small product cost more than it saved, and left that thread spinning for the
    next ~0.1 s, taking a core from the compiled kernels' threads (see ``ONE_THREAD_WORK``)."""
    gemm = _state["gemm"] if _state["name"] is not None else _active_gemm()
    if gemm is not None:
        result = gemm(a, b, out)
        if result is not None:
            return result
    if (
        a.ndim == 2
        and b.ndim == 2
        and OPENBLAS_SINGLE_THREAD_WORK <= a.shape[0] * a.shape[1] * b.shape[-1] < ONE_THREAD_WORK
    ):
        threads = _openblas_threads()
        if threads is not None:
            before = threads[0]()
            if before > 1:
                threads[1](1)
                try:
                    return np.matmul(a, b, out=out)
                finally:
                    threads[1](before)
    return np.matmul(a, b, out=out)


def use(name: str) -> str:
    """Switch the BLAS for the rest of the process: ``"auto"``, ``"numpy"`` or ``"mkl"``;
    returns the one now active (``"numpy"`` when MKL is asked for but not installed)."""
    _resolve(name, "blas.use")
    return str(_state["name"])


def active() -> str:
    """``"numpy"`` or ``"mkl"``."""
    _active_gemm()
    return str(_state["name"])


def info() -> dict[str, str]:
    """The active BLAS and why, and what NumPy's own BLAS is."""
    _active_gemm()
    config = getattr(np, "show_config", None)
    numpy_blas = "unknown"
    if config is not None:
        try:
            numpy_blas = str(config(mode="dicts")["Build Dependencies"]["blas"]["name"])
        except (TypeError, KeyError):  # older NumPy: no mode="dicts"
            pass
    return {"blas": str(_state["name"]), "blas_reason": str(_state["reason"]), "numpy_blas": numpy_blas}
