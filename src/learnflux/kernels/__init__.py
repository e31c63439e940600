"""The numeric machinery under the layers' maths, in two kernel sets with the same functions.

* ``numpy`` (:mod:`.reference`): NumPy code, readable, every dtype (exact ``Fraction`` arrays
  included). It is the specification: the compiled kernels are tested against it.
* ``compiled`` (:mod:`.compiled`): C kernels (``_c/``, built by ``pip install`` as the optional
  extension ``learnflux.kernels._lfk``) for float32 and float64; other dtypes run the NumPy
  functions. GEMMs run in NumPy's BLAS in both sets (:mod:`.gemm`).

Which set runs: the environment variable ``LEARNFLUX_KERNELS`` = ``auto`` (default: compiled when
built, else numpy), ``numpy`` or ``compiled``; at run time :func:`use`, or :func:`using` for a block.
:func:`info` says which set is active and why. Layers call ``kernels.ops()`` for the active set.

Families: convolution (forward, weight gradient, input δ), pooling (forward with its routing,
backward), element-wise (ReLU with its mask), batch-norm statistics and backward, GEMM dispatch
(:mod:`.gemm`, through the BLAS :mod:`.blas` chooses: NumPy's, or Intel MKL), and one workspace
(:mod:`.workspace`) owning every reusable scratch array.
"""

from __future__ import annotations

import importlib.util
import os
import warnings
from contextlib import contextmanager
from types import ModuleType
from typing import Any, Iterator, Optional

from . import blas, reference
from .workspace import tune_malloc

#: what :func:`.workspace.tune_malloc` did at import (freed arrays' memory kept for the next step)
MALLOC = tune_malloc()
ENV_VAR = "LEARNFLUX_KERNELS"
CHOICES = ("auto", "numpy", "compiled")

try:
    from . import compiled as _compiled

    _BUILD_ERROR: Optional[str] = None
except ImportError as exc:  # the extension was not built (no C compiler at install) or not loadable
    _compiled = None  # type: ignore[assignment]
    _BUILD_ERROR = str(exc)

_state: dict[str, Any] = {"ops": None, "reason": "", "warned": False}

#: threads of a large compiled call. Default: every CPU this process may use (0 below). The
#: convolutions at stride 1 run in the compiled kernels' own pool, not in OpenBLAS, so the pool no
#: longer fights OpenBLAS's spinning workers there (with the earlier im2col + BLAS convolutions,
#: 1 thread was faster: LeNet 9.7 vs 16.6 ms). Measured interleaved, BLAS on 2 threads, the
#: 2-core AMD EPYC under load 6: 2 kernel threads against 1, LeNet train 2.39x, VGG 1.12x, CNN
#: inference 1.16x. ``LEARNFLUX_NUM_THREADS=n`` or ``set_threads(n)`` changes it.
THREADS_VAR = "LEARNFLUX_NUM_THREADS"
DEFAULT_THREADS = 0
if _compiled is not None:
    _env_threads = os.environ.get(THREADS_VAR, "").strip()
    if _env_threads.isdigit() and int(_env_threads) > 0:
        _compiled._lfk.set_threads(int(_env_threads))
    elif DEFAULT_THREADS > 0:
        _compiled._lfk.set_threads(DEFAULT_THREADS)  # else: the CPU count _lfk set at import


def available() -> bool:
    """True when the compiled kernels are built and load."""
    return _compiled is not None


def _not_built() -> str:
    if importlib.util.find_spec(f"{__name__}._lfk") is None:
        return (
            "the compiled kernels are not built (no C compiler at install time, or the build "
            "failed: reinstall with a C compiler to get them)"
        )
    return f"the compiled kernels are built but do not load ({_BUILD_ERROR})"


def _resolve(name: str, source: str) -> tuple[ModuleType, str]:
    """The kernel set for ``name`` and why; ``source`` says who asked (the environment variable
    or ``kernels.use``)."""
    name = name.strip().lower() or "auto"
    if name not in CHOICES:
        warnings.warn(
            f"learnflux: {source} {name!r} is not one of {', '.join(CHOICES)}; using 'auto'",
            RuntimeWarning,
            stacklevel=3,
        )
        name = "auto"
    asked = f"{ENV_VAR}={name}" if source == ENV_VAR else f"kernels.use({name!r})"
    if name == "auto" and source == ENV_VAR:
        asked += " (the default)"
    if name == "numpy":
        return reference, asked
    if _compiled is not None:
        return _compiled, asked + (": the compiled kernels are built" if name == "auto" else "")
    reason = f"{asked}, but {_not_built()}; running the NumPy kernels"
    if not _state["warned"]:  # say it once per process
        _state["warned"] = True
        warnings.warn(f"learnflux: {reason}", RuntimeWarning, stacklevel=3)
    return reference, reason


def ops() -> ModuleType:
    """The active kernel set (a module with the kernel functions)."""
    mod = _state["ops"]
    if mod is None:
        mod, _state["reason"] = _resolve(os.environ.get(ENV_VAR, "auto"), ENV_VAR)
        _state["ops"] = mod
    return mod


def active() -> str:
    """``"numpy"`` or ``"compiled"``."""
    return ops().NAME


def use(name: str) -> str:
    """Switch the kernel set for the rest of the process: ``"numpy"``, ``"compiled"`` or
    ``"auto"``; returns the set now active (``"compiled"`` when it is not built falls back to
    ``numpy``, with a warning once)."""
    _state["ops"], _state["reason"] = _resolve(name, "kernels.use")
    return active()


@contextmanager
def using(name: str) -> Iterator[str]:
    """``with kernels.using("numpy"): ...`` (or as a decorator): the kernel set for a block; the
    previous one comes back on exit."""
    previous = (_state["ops"], _state["reason"])
    try:
        yield use(name)
    finally:
        _state["ops"], _state["reason"] = previous


def info() -> dict[str, Any]:
    """Which kernel set runs and why, what is compiled, threads and vector code."""
    mod = ops()
    result: dict[str, Any] = {
        "kernels": mod.NAME,
        "reason": _state["reason"],
        "compiled_available": available(),
    }
    if _compiled is not None:
        lfk = _compiled._lfk
        result["compiled_dtypes"] = "float32, float64 (exact Fraction arrays run the NumPy kernels)"
        result["compiled_ops"] = (
            "direct convolution, im2col/col2im and conv layouts, max pooling, ReLU, batch norm, "
            "Linear's output pass, the optimizers' update, the input check"
        )
        result["threads"] = lfk.get_threads()
        result["vector"] = lfk.VECTOR
        result["compiler"] = getattr(lfk, "COMPILER", "unknown")
    else:
        result["build_error"] = _BUILD_ERROR
    result["malloc"] = MALLOC
    result.update(blas.info())
    return result


def describe() -> str:
    """One line for ``learnflux --version``: the active set and why."""
    i = info()
    line = f"kernels: {i['kernels']} ({i['reason']})"
    if i["kernels"] == "compiled":
        line += f"; {i['threads']} thread{'s' if i['threads'] != 1 else ''}, {i['vector']}"
    return line + f"\nblas: {i['blas']} ({i['blas_reason']}; NumPy's own: {i['numpy_blas']})"


def set_threads(n: int) -> int:
    """Threads a large compiled kernel call uses (default: the CPUs this process may use, or
    ``LEARNFLUX_NUM_THREADS``: see the measurement above ``THREADS_VAR``)."""
    if _compiled is None:
        return 1
    return int(_compiled._lfk.set_threads(int(n)))
