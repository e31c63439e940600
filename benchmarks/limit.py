"""The limit: how fast can the installed BLAS do the MLP's own matrix products?

One training step of the MLP ``784-512-512-10`` at batch ``n`` is, in GEMMs (operands laid out as
learnflux and the NumPy reference lay them out, transposes being views):

* forward, per layer: ``x (n×in) · Wᵀ (in×out)``: ``2·n·in·out`` flops;
* backward, per layer: ``δᵀ (out×n) · x (n×in)`` for ``W.grad``, and ``δ (n×out) · W (out×in)``
  for the input δ of every layer but the first (nobody needs the data's δ).

We time each product alone with ``np.matmul(a, b, out=c)`` (the best of several runs), which
gives the **GEMM floor** of a step: the sum of those times, i.e. what the step would cost if it
were nothing but BLAS calls. The step's *achieved* GFLOP/s (GEMM flops / measured step time) as a
fraction of the floor's GFLOP/s tells how much of the step is spent outside BLAS. The same shapes
are timed with ``torch.mm`` when PyTorch is there (PyTorch calls its own BLAS, MKL on x86).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np


def mlp_gemms(sizes: tuple, batch: int) -> list[dict[str, Any]]:
    """The GEMMs of one training step: name, (m, k, n) and how the operands are laid out."""
    out = []
    pairs = list(zip(sizes[:-1], sizes[1:], strict=True))
    for i, (fin, fout) in enumerate(pairs):
        out.append({"name": f"fwd L{i + 1}: x·Wᵀ", "m": batch, "k": fin, "n": fout, "layout": "NT"})
    for i, (fin, fout) in reversed(list(enumerate(pairs))):
        out.append({"name": f"bwd L{i + 1}: δᵀ·x", "m": fout, "k": batch, "n": fin, "layout": "TN"})
        if i > 0:
            out.append({"name": f"bwd L{i + 1}: δ·W", "m": batch, "k": fout, "n": fin, "layout": "NN"})
    for g in out:
        g["flops"] = 2 * g["m"] * g["k"] * g["n"]
    return out


def _operands(g: dict[str, Any], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    m, k, n = g["m"], g["k"], g["n"]
    if g["layout"] == "NT":  # b is the transpose of a C-contiguous (n, k) weight
        return rng.random((m, k), dtype=np.float32), rng.random((n, k), dtype=np.float32).T
    if g["layout"] == "TN":  # a is the transpose of a C-contiguous (k, m) δ
        return rng.random((k, m), dtype=np.float32).T, rng.random((k, n), dtype=np.float32)
    return rng.random((m, k), dtype=np.float32), rng.random((k, n), dtype=np.float32)


def _time(fn: Any, repeats: int, min_s: float) -> float:
    fn()
    samples = []
    for _ in range(repeats):
        n, t0 = 0, time.perf_counter()
        while True:
            fn()
            n += 1
            el = time.perf_counter() - t0
            if el >= min_s:
                break
        samples.append(el / n)
    # the best of the repeats: a floor is what the BLAS can do, and on a shared machine a noisy
    # repeat only ever makes a product slower (a median let one noisy burst put the "floor"
    # below the step's own achieved rate)
    return min(samples)


def measure(
    sizes: tuple, batch: int, repeats: int = 5, min_s: float = 0.02, with_torch: bool = True
) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    gemms = mlp_gemms(sizes, batch)
    operands = [_operands(g, rng) for g in gemms]
    for g, (a, b) in zip(gemms, operands, strict=True):
        c = np.empty((g["m"], g["n"]), np.float32)
        t = _time(lambda a=a, b=b, c=c: np.matmul(a, b, out=c), repeats, min_s)
        g["numpy_s"] = t
        g["numpy_gflops"] = g["flops"] / t / 1e9
    if with_torch:
        import torch

        time.sleep(0.2)  # let OpenBLAS's spinning threads sleep (see benchmarks.common)
        for g, (a, b) in zip(gemms, operands, strict=True):
            # same layouts: a transposed NumPy view becomes a transposed tensor view
            ta = torch.from_numpy(a.base).t() if a.base is not None else torch.from_numpy(a)
            tb = torch.from_numpy(b.base).t() if b.base is not None else torch.from_numpy(b)
            tc = torch.empty((g["m"], g["n"]), dtype=torch.float32)
            t = _time(lambda ta=ta, tb=tb, tc=tc: torch.mm(ta, tb, out=tc), repeats, min_s)
            g["torch_s"] = t
            g["torch_gflops"] = g["flops"] / t / 1e9
    total_flops = sum(g["flops"] for g in gemms)
    result: dict[str, Any] = {
        "sizes": list(sizes),
        "batch": batch,
        "gemms": gemms,
        "step_flops": total_flops,
        "numpy_floor_s": sum(g["numpy_s"] for g in gemms),
    }
    result["numpy_floor_gflops"] = total_flops / result["numpy_floor_s"] / 1e9
    if with_torch:
        result["torch_floor_s"] = sum(g["torch_s"] for g in gemms)
        result["torch_floor_gflops"] = total_flops / result["torch_floor_s"] / 1e9
    return result


def achieved(limit: dict[str, Any], mlp_result: dict[str, Any]) -> dict[str, Any]:
    """Achieved GFLOP/s of each framework's MLP step (from the ``mlp`` case) and its fraction of
    NumPy's GEMM floor; plus learnflux's achieved rate relative to the NumPy reference's."""
    out: dict[str, Any] = {}
    for fw, res in mlp_result.get("frameworks", {}).items():
        if "median" not in res:
            continue
        step_s = mlp_result["batch"] / res["median"]
        gflops = limit["step_flops"] / step_s / 1e9
        out[fw] = {
            "step_s": step_s,
            "gflops": gflops,
            "fraction_of_numpy_floor": gflops / limit["numpy_floor_gflops"],
        }
    if "learnflux" in out and "numpy" in out:
        out["learnflux_vs_numpy"] = out["learnflux"]["gflops"] / out["numpy"]["gflops"]
    return out
