"""Measurement machinery shared by every case: threads, interleaved timing, memory, machine info.

How a case is timed (``run_interleaved``):

1. every framework builds its model and its fixed batches (outside any timing);
2. warm-up: each framework runs ``warmup`` steps, then steps for ``calibrate_s`` seconds to
   estimate its step time; from it we choose ``n_iter`` steps per run so that one run lasts about
   ``target_s`` seconds (at least one step);
3. ``repeats`` rounds, interleaved A B C A B C ...: each round times ``n_iter`` steps of every
   framework in turn with ``time.perf_counter`` (garbage collector off during a run, collected
   between runs). Throughput of a run = samples (or steps) / elapsed.
4. Before every timed run the process sleeps ``cooldown_s`` (0.2 s). This matters: after a BLAS
   call OpenBLAS's worker threads busy-wait for about 0.1 s (2^28 cycles) before sleeping, and
   PyTorch's OpenMP threads spin briefly too. On 2 cores, a PyTorch run that starts right after a
   NumPy run shares the cores with spinning OpenBLAS threads; we measured PyTorch GEMMs 10-20×
   slower in the first 0.1 s after NumPy work (and NumPy ~3× slower right after PyTorch work).
   Without the pause, interleaving would penalise whichever framework runs next.

Reported: the median over rounds with min–max, and ratios **paired round by round**
(``throughput_A[r] / throughput_B[r]``), whose median and min–max are quoted. Pairing cancels most
of the drift of a shared, noisy machine, which hits neighbouring runs alike.
"""

from __future__ import annotations

import datetime as _dt
import gc
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

#: The two variables the environment may set; they make OpenBLAS pick a kernel for another core.
OPENBLAS_ENV_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


# ---------------------------------------------------------------------------------------- threads
def blas_info() -> list[dict[str, Any]]:
    """threadpoolctl's view of the native thread pools loaded in this process (BLAS, OpenMP)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:  # pragma: no cover - threadpoolctl is a test dependency
        return []
    keep = ("user_api", "internal_api", "num_threads", "prefix", "version", "threading_layer", "architecture")
    return [{k: info.get(k) for k in keep if k in info} for info in threadpool_info()]


def numpy_blas_threads() -> int:
    """Threads of the BLAS NumPy uses (the thread count every framework is given)."""
    import numpy  # noqa: F401  (loads the BLAS so that threadpoolctl sees it)

    for info in blas_info():
        if info.get("user_api") == "blas":
            return int(info.get("num_threads") or 1)
    return os.cpu_count() or 1


def numpy_blas_architecture() -> Optional[str]:
    """The OpenBLAS kernel ("architecture") NumPy's BLAS selected, e.g. ``SkylakeX``."""
    import numpy  # noqa: F401

    for info in blas_info():
        if info.get("user_api") == "blas":
            return info.get("architecture")
    return None


def setup_torch_threads(n_threads: int) -> dict[str, Any]:
    """``torch.set_num_threads(n)`` and what torch then reports."""
    import torch

    torch.set_num_threads(n_threads)
    return {
        "torch_num_threads": torch.get_num_threads(),
        "torch_num_interop_threads": torch.get_num_interop_threads(),
    }


# ---------------------------------------------------------------------------------------- timing
@dataclass
class Timing:
    """The runs of one framework in one case."""

    n_iter: int
    units_per_step: int
    times: list[float] = field(default_factory=list)

    @property
    def throughputs(self) -> list[float]:
        return [self.n_iter * self.units_per_step / t for t in self.times]

    def summary(self) -> dict[str, Any]:
        th = self.throughputs
        return {
            "median": statistics.median(th),
            "min": min(th),
            "max": max(th),
            "runs": th,
            "n_iter": self.n_iter,
            "step_time_median_s": statistics.median(self.times) / self.n_iter,
        }


@dataclass
class TimingConfig:
    repeats: int = 7
    target_s: float = 0.25
    warmup: int = 2
    calibrate_s: float = 0.1
    max_iter: int = 100_000
    cooldown_s: float = 0.2

    @classmethod
    def quick(cls) -> TimingConfig:
        """One step per run, two rounds: checks the machinery, measures nothing."""
        return cls(repeats=2, target_s=0.0, warmup=0, calibrate_s=0.0, max_iter=1, cooldown_s=0.0)


def _calibrate(step: Callable[[], Any], cfg: TimingConfig) -> int:
    for _ in range(cfg.warmup):
        step()
    if cfg.calibrate_s <= 0 or cfg.target_s <= 0:
        return 1
    n = 0
    t0 = time.perf_counter()
    while True:
        step()
        n += 1
        elapsed = time.perf_counter() - t0
        if elapsed >= cfg.calibrate_s or n >= cfg.max_iter:
            break
    per_step = elapsed / n
    return int(max(1, min(cfg.max_iter, round(cfg.target_s / per_step))))


def _timed_run(step: Callable[[], Any], n_iter: int, cooldown_s: float = 0.0) -> float:
    gc.collect()
    if cooldown_s > 0:
        time.sleep(cooldown_s)  # let the other framework's spinning threads go to sleep
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        t0 = time.perf_counter()
        for _ in range(n_iter):
            step()
        return time.perf_counter() - t0
    finally:
        if was_enabled:
            gc.enable()


def run_interleaved(
    steps: dict[str, Callable[[], Any]], units_per_step: int, cfg: TimingConfig
) -> dict[str, Timing]:
    """Time every framework's ``step`` in interleaved rounds (see the module docstring)."""
    timings = {}
    for name, step in steps.items():
        if cfg.cooldown_s > 0:
            time.sleep(cfg.cooldown_s)
        timings[name] = Timing(n_iter=_calibrate(step, cfg), units_per_step=units_per_step)
    for _ in range(cfg.repeats):
        for name, step in steps.items():
            timings[name].times.append(_timed_run(step, timings[name].n_iter, cfg.cooldown_s))
    return timings


def paired_ratio(a: Timing, b: Timing) -> dict[str, float]:
    """Throughput ratio A/B paired round by round: median, min, max."""
    ratios = [x / y for x, y in zip(a.throughputs, b.throughputs, strict=True)]
    return {"median": statistics.median(ratios), "min": min(ratios), "max": max(ratios)}


# ---------------------------------------------------------------------------------------- memory
def rss_kib() -> dict[str, Optional[int]]:
    """Current (VmRSS) and peak (VmHWM) resident set size of this process, in KiB.

    Read from ``/proc/self/status`` (Linux); elsewhere the peak comes from ``getrusage``."""
    out: dict[str, Optional[int]] = {"rss": None, "peak": None}
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    out["rss"] = int(line.split()[1])
                elif line.startswith("VmHWM:"):
                    out["peak"] = int(line.split()[1])
    except OSError:
        import resource

        out["peak"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return out


# ---------------------------------------------------------------------------------------- machine
def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def git_commit() -> Optional[str]:
    try:
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        res = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5
        )
        return res.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def machine_info(with_torch: bool) -> dict[str, Any]:
    import numpy as np

    info: dict[str, Any] = {
        "date_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu_model": cpu_model(),
        "logical_cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "env": {k: os.environ.get(k) for k in OPENBLAS_ENV_VARS},
        "loadavg_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "git_commit": git_commit(),
    }
    try:
        import learnflux

        info["learnflux"] = learnflux.__version__
        kernel_line, blas_line = learnflux.kernels.describe().splitlines()
        info["learnflux_kernels"] = kernel_line  # which kernel set "learnflux" ran
        info["learnflux_blas"] = blas_line  # and which BLAS ran its products (NumPy's or MKL)
    except ImportError:  # pragma: no cover
        info["learnflux"] = None
    if with_torch:
        import torch

        info["torch"] = torch.__version__
        cfg = torch.__config__.show()
        found = re.search(r"BLAS_INFO=(\w+)", cfg)
        info["torch_blas"] = found.group(1) if found else None
        info["torch_mkldnn"] = bool(torch.backends.mkldnn.is_available())
    info["thread_pools"] = blas_info()
    return info
