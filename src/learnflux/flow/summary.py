"""Summaries of large tensors, for reading a trace in a terminal.

A tensor of a few values (the seed's ``o2 = (0)``, ``w2 = (1/200, -3/11600, 1/5800)``) is best
read whole. A feature map ``o^k`` of shape ``(32, 8, 8)`` or a gradient ``δw`` of 18,432 values
is not: :func:`summarize` gives its shape, ``min / mean / max``, the norm
``‖a‖ = √(Σ a_i²)``, its first values and where the largest ``|a_i|`` sits, and
:func:`describe_tensor` writes that on one line. Exact tensors (Fractions) keep exact minimum,
maximum, mean and first values; only the norm, a square root, is a decimal.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

__all__ = ["SMALL", "TensorSummary", "describe_tensor", "is_small", "summarize"]

#: tensors of at most this many values are shown whole; larger ones are summarised
SMALL = 12


@dataclass(frozen=True)
class TensorSummary:
    """What :func:`summarize` finds in a tensor ``a`` of ``size`` values.

    ``first``: the first values in C order; ``argmax_abs``: the index of the largest ``|a_i|``
    (the first one when several tie) and ``at_max`` the value there; ``zeros``: how many values
    are exactly 0 (a ReLU's silenced units, a δ that ReLU blocked)."""

    shape: tuple[int, ...]
    size: int
    min: Any
    mean: Any
    max: Any
    norm: float
    first: tuple[Any, ...]
    argmax_abs: tuple[int, ...]
    at_max: Any
    zeros: int


def is_small(a: Any, limit: int = SMALL) -> bool:
    """True when ``a`` has at most ``limit`` values (then it is shown whole)."""
    return int(np.asarray(a).size) <= limit


def summarize(a: Any, n_first: int = 4) -> TensorSummary:
    """Shape, ``min / mean / max``, norm ``‖a‖``, the first ``n_first`` values and the position
    of the largest ``|a_i|``. Float tensors: the mean and norm are computed in float64; exact
    tensors: everything but the norm is a Fraction."""
    arr = np.asarray(a)
    if arr.size == 0:
        raise ValueError(f"summarize: the tensor of shape {arr.shape} has no values")
    flat = arr.reshape(-1)
    if arr.dtype == object:
        values = [v if isinstance(v, Fraction) else Fraction(v) for v in flat]
        lo, hi = min(values), max(values)
        mean = sum(values, Fraction(0)) / len(values)
        norm = math.sqrt(float(sum((v * v for v in values), Fraction(0))))
        pos = max(range(len(values)), key=lambda i: (abs(values[i]), -i))
        zeros = sum(1 for v in values if v == 0)
        first = tuple(values[:n_first])
        at = values[pos]
    else:
        wide = flat.astype(np.float64)
        lo, hi = flat.min(), flat.max()
        mean = float(wide.mean())
        norm = float(np.sqrt(np.dot(wide, wide)))
        pos = int(np.argmax(np.abs(wide)))
        zeros = int(np.count_nonzero(flat == 0))
        first = tuple(flat[:n_first])
        at = flat[pos]
    index = tuple(int(i) for i in np.unravel_index(pos, arr.shape)) if arr.ndim else ()
    return TensorSummary(
        tuple(int(s) for s in arr.shape), int(arr.size), lo, mean, hi, norm, first, index, at, zeros
    )


def _num(v: Any) -> str:
    """One number: a Fraction as ``p/q``, a float with 6 significant digits (a summary is for
    reading; the JSON and .npz outputs keep every digit)."""
    if isinstance(v, Fraction):
        return str(v)
    f = float(v)
    if f == 0:
        return "0"
    return f"{f:.6g}"


def describe_tensor(a: Any, n_first: int = 4) -> str:
    """One line: ``shape (2, 32, 8, 8) · min -1.2 · mean 0.031 · max 2.4 · ‖·‖ 17.2 ·
    largest |v| at [1, 4, 2, 2] = 2.4 · 312 zeros · first (0, 0.13, …)``."""
    s = summarize(a, n_first)
    shape = "(" + ", ".join(map(str, s.shape)) + ("," if len(s.shape) == 1 else "") + ")"
    parts = [
        f"shape {shape}",
        f"min {_num(s.min)}",
        f"mean {_num(s.mean)}",
        f"max {_num(s.max)}",
        f"‖·‖ {_num(s.norm)}",
        f"largest |v| at [{', '.join(map(str, s.argmax_abs))}] = {_num(s.at_max)}",
    ]
    if s.zeros:
        parts.append(f"{s.zeros} zero{'s' if s.zeros != 1 else ''}")
    more = ", …" if s.size > len(s.first) else ""
    parts.append("first (" + ", ".join(_num(v) for v in s.first) + more + ")")
    return " · ".join(parts)
