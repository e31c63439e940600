"""The three kinds of numbers learnflux computes with.

* ``float32`` (the default): fast, about 7 significant digits.
* ``float64``: about 16 significant digits, used by the gradient checks.
* ``"exact"``: Python :class:`fractions.Fraction` values held in NumPy ``object`` arrays. Every
  addition, product and division is exact, so hand-computed examples (the series' articles) are
  replayed without rounding. Slow, and only for the layers that only need +, −, ×, ÷ and
  comparisons (Input, Linear, ReLU, LeakyReLU, convolution, max pooling, the squared error, SGD).
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any, Union

import numpy as np

from .errors import DtypeError

EXACT = "exact"
DTypeLike = Union[str, type, np.dtype]

_OBJECT = np.dtype(object)
_ALIASES = {
    "float32": np.dtype(np.float32),
    "f32": np.dtype(np.float32),
    "float64": np.dtype(np.float64),
    "f64": np.dtype(np.float64),
    "exact": _OBJECT,
    "fraction": _OBJECT,
}


def resolve_dtype(dtype: DTypeLike) -> np.dtype:
    """Turn ``np.float32``, ``"float64"``, ``"exact"``... into the NumPy dtype used internally.

    Exact arithmetic is represented by the ``object`` dtype (arrays of ``Fraction``).
    """
    if isinstance(dtype, str):
        key = dtype.lower()
        if key in _ALIASES:
            return _ALIASES[key]
    else:
        try:
            resolved = np.dtype(dtype)
        except TypeError:
            resolved = None
        if resolved is not None and resolved in (np.float32, np.float64, _OBJECT):
            return resolved
        if resolved is not None and resolved.kind == "O":
            return _OBJECT
    raise DtypeError(
        f"unsupported dtype {dtype!r}: use np.float32, np.float64 or 'exact' (Fraction arithmetic)"
    )


def dtype_name(dtype: np.dtype) -> str:
    """``"float32"``, ``"float64"`` or ``"exact"``."""
    return EXACT if np.dtype(dtype) == _OBJECT else np.dtype(dtype).name


def is_exact(dtype: np.dtype) -> bool:
    return np.dtype(dtype) == _OBJECT


def to_fraction(value: Any) -> Fraction:
    """Convert one number to a Fraction exactly (a float keeps its exact binary value;
    a string such as ``"1e-7"`` or ``"1/3"`` is read as the decimal or ratio it spells)."""
    if isinstance(value, Fraction):
        return value
    if isinstance(value, (bool, np.bool_)):
        return Fraction(int(value))
    if isinstance(value, (int, np.integer)):
        return Fraction(int(value))
    if isinstance(value, (float, np.floating)):
        return Fraction(float(value))
    if isinstance(value, str):
        return Fraction(value.strip())
    raise DtypeError(f"cannot convert {value!r} ({type(value).__name__}) to an exact fraction")


def exact_array(values: Any) -> np.ndarray:
    """An ``object`` array of Fractions with the shape of ``values``."""
    arr = np.asarray(values, dtype=object) if not isinstance(values, np.ndarray) else values
    out = np.empty(arr.shape, dtype=object)
    flat_in = arr.reshape(-1)
    flat_out = out.reshape(-1)
    for i in range(flat_in.size):
        flat_out[i] = to_fraction(flat_in[i])
    return out


def cast(values: Any, dtype: np.dtype) -> np.ndarray:
    """Cast ``values`` to ``dtype`` (one of float32, float64, object/exact)."""
    if dtype == _OBJECT:
        return exact_array(values)
    if isinstance(values, np.ndarray) and values.dtype == _OBJECT:
        return np.array([float(v) for v in values.reshape(-1)], dtype=dtype).reshape(values.shape)
    return np.asarray(values, dtype=dtype)


def scalar_like(value: Any, dtype: np.dtype) -> Any:
    """A scalar (learning rate, slope, epsilon) in the arithmetic of ``dtype``.

    In exact mode a float such as 0.01 is read through its decimal text (``Fraction("0.01")``
    is 1/100), which is what a person who typed 0.01 meant.
    """
    if dtype == _OBJECT:
        if isinstance(value, float):
            return Fraction(repr(value))
        return to_fraction(value)
    return dtype.type(value)


def format_number(value: Any, decimals: bool = True) -> str:
    """``-17/290000`` for an exact value (with `` (≈ -5.862e-05)`` when ``decimals``),
    a short repr for a float."""
    if isinstance(value, Fraction):
        text = str(value)
        if decimals and value.denominator != 1:
            text += f" (≈ {float(value):.6g})"
        return text
    return f"{float(value):.9g}"
