"""Upsampling (resizing) of sequences and images, PyTorch's ``Upsample``: nearest neighbour and
(bi)linear interpolation, one spatial axis after the other."""

from __future__ import annotations

import math
import numbers
from fractions import Fraction
from typing import Any, Optional, Union

import numpy as np

from ..core.layer import Layer, register_layer
from ..errors import ConfigError
from ..kernels.reference.conv import zeros_like_dtype
from ..numbers import cast

#: mode → the number of spatial axes it resizes (``(batch, C, L)``: 1, ``(batch, C, H, W)``: 2)
MODES = {"nearest": (1, 2), "linear": (1,), "bilinear": (2,)}

#: one axis's map: ``o[i] = w0[i]·x[i0[i]] + w1[i]·x[i1[i]]`` (nearest: ``o[i] = x[i0[i]]``, no weights)
AxisMap = tuple[np.ndarray, Optional[np.ndarray], Optional[np.ndarray], Optional[np.ndarray]]


def nearest_index(out_size: int, in_size: int, scale: Optional[float]) -> np.ndarray:
    """PyTorch's ``mode="nearest"`` source index ``min(⌊i·r⌋, in − 1)``, with ``r = 1/scale_factor``
    when the scale factor is used, else ``in/out``, both **in float32** as PyTorch computes them
    (the index is an integer, so the rounding decides it); ``out = in`` and ``out = 2·in`` are
    exact (``i`` and ``i // 2``), as in PyTorch."""
    i = np.arange(out_size)
    if out_size == in_size:
        return i
    if out_size == 2 * in_size:
        return i >> 1
    r = np.float32(1.0 / scale) if scale else np.float32(in_size) / np.float32(out_size)
    return np.minimum(np.floor(i.astype(np.float32) * r).astype(np.int64), in_size - 1)


def linear_source(out_size: int, in_size: int, scale: Optional[float], align_corners: bool) -> list[Fraction]:
    """The source coordinate of each output position (PyTorch's ``area_pixel_compute_source_index``),
    exactly, as Fractions:

    * ``align_corners=True``: ``i·(in − 1)/(out − 1)`` (the corner pixels' centres line up);
    * ``align_corners=False``: ``max(0, (i + ½)·r − ½)`` with ``r = 1/scale_factor`` when the scale
      factor is used, else ``in/out`` (pixel centres, half a pixel from the border)."""
    if align_corners:
        r = Fraction(in_size - 1, out_size - 1) if out_size > 1 else Fraction(0)
        return [r * i for i in range(out_size)]
    r = 1 / Fraction(scale) if scale else Fraction(in_size, out_size)
    return [max(Fraction(0), (i + Fraction(1, 2)) * r - Fraction(1, 2)) for i in range(out_size)]


def axis_map(
    mode: str, out_size: int, in_size: int, scale: Optional[float], align: bool, dtype: Any
) -> AxisMap:
    """``(i0, w0, i1, w1)`` for one axis: nearest, or linear between ``i0 = ⌊src⌋`` and ``i1 = i0 + 1``
    (``i0`` at the last input) with ``w1 = src − i0``, ``w0 = 1 − w1``."""
    if mode == "nearest":
        return nearest_index(out_size, in_size, scale), None, None, None
    src = linear_source(out_size, in_size, scale, align)
    i0 = np.array([min(math.floor(s), in_size - 1) for s in src], dtype=np.int64)
    i1 = np.minimum(i0 + 1, in_size - 1)
    w1 = [min(max(s - int(k), Fraction(0)), Fraction(1)) for s, k in zip(src, i0, strict=True)]
    w1_arr = cast(np.array(w1, dtype=object), dtype)
    return i0, cast(np.array([1 - w for w in w1], dtype=object), dtype), i1, w1_arr


def _along(w: np.ndarray, axis: int, ndim: int) -> np.ndarray:
    shape = [1] * ndim
    shape[axis] = -1
    return w.reshape(shape)


def resize_axis(x: np.ndarray, axis: int, m: AxisMap) -> np.ndarray:
    """``x`` resized along ``axis`` by the map ``m`` (gathers and a weighted sum)."""
    i0, w0, i1, w1 = m
    if w0 is None:
        return np.take(x, i0, axis=axis)
    return np.take(x, i0, axis=axis) * _along(w0, axis, x.ndim) + np.take(x, i1, axis=axis) * _along(
        w1, axis, x.ndim
    )


def _gather_adjoint(d: np.ndarray, index: np.ndarray, axis: int, size: int) -> np.ndarray:
    """The adjoint of ``np.take(x, index, axis)`` for a non-decreasing ``index``: each input
    position receives the sum of ``d`` over the outputs that read it (a run of neighbours, summed by
    one ``np.add.reduceat``), 0 where none did."""
    starts = np.flatnonzero(np.r_[True, index[1:] != index[:-1]])
    shape = list(d.shape)
    shape[axis] = size
    out = zeros_like_dtype(tuple(shape), d.dtype)
    where = [slice(None)] * d.ndim
    where[axis] = index[starts]
    out[tuple(where)] = np.add.reduceat(d, starts, axis=axis)
    return out


def resize_axis_backward(d: np.ndarray, axis: int, m: AxisMap, size: int) -> np.ndarray:
    """``δx`` of :func:`resize_axis`:
    ``δx[k] = Σ_{i: i0[i] = k} w0[i]·δ[i] + Σ_{i: i1[i] = k} w1[i]·δ[i]``."""
    i0, w0, i1, w1 = m
    if w0 is None:
        return _gather_adjoint(d, i0, axis, size)
    out = _gather_adjoint(d * _along(w0, axis, d.ndim), i0, axis, size)
    out += _gather_adjoint(d * _along(w1, axis, d.ndim), i1, axis, size)
    return out


def _sizes(value: Any, name: str, kind: type, check: Any) -> Any:
    """One value or a tuple of 1 or 2, each passing ``check``; ConfigError otherwise."""
    items = value if isinstance(value, (tuple, list)) else (value,)
    if not 1 <= len(items) <= 2 or not all(check(v) for v in items):
        raise ConfigError(f"Upsample: {name} must be a {kind.__name__} > 0 or a tuple of them, got {value!r}")
    if isinstance(value, (tuple, list)):
        return tuple(kind(v) for v in items)
    return kind(value)


@register_layer
class Upsample(Layer):
    """Resize the spatial axes, PyTorch's ``nn.Upsample``, to ``size`` or by ``scale_factor``.

    Each spatial axis (``L``; or ``H`` then ``W``) is resized by one map from the input positions
    to the output positions ``i``; for an input of size ``n`` and an output of size ``m``
    (``m = size`` or ``⌊n·scale_factor⌋``):

    * ``mode="nearest"``: ``o[i] = x[j(i)]``, ``j(i) = min(⌊i·r⌋, n − 1)`` with ``r = 1/scale_factor``
      (or ``n/m`` with ``size``), computed in float32 as PyTorch does (``m = n``: ``j = i``;
      ``m = 2n``: ``j = ⌊i/2⌋``);
    * ``mode="linear"`` (``(batch, C, L)``), ``"bilinear"`` (``(batch, C, H, W)``, the two axes one
      after the other): ``o[i] = (1 − λ_i)·x[j_i] + λ_i·x[j_i + 1]`` with ``j_i = ⌊src_i⌋``,
      ``λ_i = src_i − j_i``, the source coordinate ``src_i = i·(n − 1)/(m − 1)`` with
      ``align_corners=True``, else ``max(0, (i + ½)·r − ½)`` (``j_i + 1`` stays at ``n − 1``).

    Backward: the transpose of each map, last axis first: every input position receives the δ of
    the outputs that read it, times the weight it was read with,
    ``δx[k] = Σ_{i: j_i = k} (1 − λ_i)·δ[i] + Σ_{i: j_i + 1 = k} λ_i·δ[i]`` (nearest: the plain sum of
    δ over the outputs copied from ``k``).

    Args:
        size: output size, ``m`` or ``(m_h, m_w)``; or
        scale_factor: multiplier of the input size, ``f`` or ``(f_h, f_w)`` (one of the two).
        mode: ``"nearest"`` (default), ``"linear"`` or ``"bilinear"``. PyTorch's other modes
            (``"nearest-exact"``, ``"bicubic"``, ``"trilinear"``, ``"area"``) are refused.
        align_corners: linear modes only; default None (False, as PyTorch).
        recompute_scale_factor: True: the coordinates use ``n/m`` even with a ``scale_factor``
            (as PyTorch's option); default None (the scale factor itself).

    Input shape: ``(batch, C, L)`` (nearest, linear) or ``(batch, C, H, W)`` (nearest, bilinear).
    Output shape: the same with the resized axes. No weights. Exact arithmetic: yes (the
    interpolation weights are fractions: a float ``scale_factor`` is taken as the exact binary
    fraction it is).
    """

    supports_exact = True
    torch_twins = ("Upsample",)

    def __init__(
        self,
        size: Union[int, tuple[int, ...], None] = None,
        scale_factor: Union[float, tuple[float, ...], None] = None,
        mode: str = "nearest",
        align_corners: Optional[bool] = None,
        recompute_scale_factor: Optional[bool] = None,
    ) -> None:
        super().__init__()
        if (size is None) == (scale_factor is None):
            raise ConfigError(
                f"Upsample: give either size or scale_factor (one of them), got size={size!r}, "
                f"scale_factor={scale_factor!r}"
            )
        self.size = None
        self.scale_factor = None
        if size is not None:
            self.size = _sizes(
                size,
                "size",
                int,
                lambda v: isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v > 0,
            )
        else:
            self.scale_factor = _sizes(
                scale_factor,
                "scale_factor",
                float,
                lambda v: (
                    isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v) and v > 0
                ),
            )
        if mode not in MODES:
            raise ConfigError(
                f"Upsample: mode {mode!r} is not supported; use 'nearest', 'linear' (sequences) or "
                "'bilinear' (images)"
            )
        if mode == "nearest" and align_corners is not None:
            raise ConfigError(
                "Upsample: align_corners can only be set with the interpolating modes 'linear' and "
                "'bilinear' (as PyTorch)"
            )
        for name, flag in (
            ("align_corners", align_corners),
            ("recompute_scale_factor", recompute_scale_factor),
        ):
            if flag is not None and not isinstance(flag, bool):
                raise ConfigError(f"Upsample: {name} must be None, True or False, got {flag!r}")
        self.mode = mode
        self.align_corners = align_corners
        self.recompute_scale_factor = recompute_scale_factor
        self._maps: dict[tuple, list[AxisMap]] = {}
        self._cache: Optional[tuple] = None

    def _cache_attrs(self) -> tuple[str, ...]:
        return ("_cache",)

    # ------------------------------------------------------------------ sizes
    def _per_axis(self, value: Any, k: int, name: str) -> tuple:
        items = value if isinstance(value, tuple) else (value,) * k
        if len(items) != k:
            raise self.shape_error(f"{name} {value!r} has {len(items)} values for {k} spatial axes")
        return items

    def _plan(self, spatial: tuple) -> tuple[tuple[int, ...], tuple]:
        """Output sizes and the scale each axis's coordinates use (None: ``n/m``)."""
        k = len(spatial)
        if k not in MODES[self.mode]:
            want = " or ".join(f"(batch, channels{', L' if a == 1 else ', H, W'})" for a in MODES[self.mode])
            raise self.shape_error(f"mode {self.mode!r} expects input of shape {want}, got {k} spatial axes")
        if self.size is not None:
            return tuple(self._per_axis(self.size, k, "size")), (None,) * k
        factors = self._per_axis(self.scale_factor, k, "scale_factor")
        out = tuple(math.floor(n * f) for n, f in zip(spatial, factors, strict=True))
        if min(out) < 1:
            raise self.shape_error(
                f"scale_factor {self.scale_factor!r} makes the input {spatial} empty: {out}"
            )
        return out, ((None,) * k if self.recompute_scale_factor else factors)

    def output_shape(self, input_shape: tuple) -> tuple:
        out, _ = self._plan(tuple(input_shape[1:]))
        return (input_shape[0], *out)

    def flops(self, input_shape: tuple) -> int:
        """Nearest: 0 (copies). Linear: 3 per value each axis's pass writes (two products, a sum)."""
        if self.mode == "nearest":
            return 0
        shape, total = list(input_shape), 0
        for axis, m in enumerate(self.output_shape(input_shape)[1:], start=1):
            shape[axis] = m
            total += 3 * math.prod(shape)
        return total

    def _axis_maps(self, spatial: tuple, dtype: Any) -> list[AxisMap]:
        key = (spatial, np.dtype(dtype).str)
        if key not in self._maps:
            out, scales = self._plan(spatial)
            self._maps[key] = [
                axis_map(self.mode, m, n, s, bool(self.align_corners), dtype)
                for m, n, s in zip(out, spatial, scales, strict=True)
            ]
        return self._maps[key]

    # ------------------------------------------------------------------ forward / backward
    def forward(self, x: np.ndarray) -> np.ndarray:
        if x.ndim not in (3, 4):
            raise self.shape_error(
                f"expected input of shape (batch, C, L) or (batch, C, H, W), got {tuple(x.shape)}"
            )
        maps = self._axis_maps(tuple(x.shape[2:]), x.dtype)
        out = x
        for axis, m in enumerate(maps, start=2):
            out = resize_axis(out, axis, m)
        if self.training:
            self._cache = (tuple(x.shape), maps)
        return np.ascontiguousarray(out)

    def backward(self, delta_out: np.ndarray, need_input_delta: bool = True) -> np.ndarray:
        self.check_trainable(self._cache)
        shape, maps = self._cache
        expected = (*shape[:2], *(len(m[0]) for m in maps))
        if delta_out.shape != expected:
            raise self.shape_error(f"δ has shape {tuple(delta_out.shape)}, expected {expected}")
        d = delta_out
        for axis in reversed(range(2, len(shape))):
            d = resize_axis_backward(d, axis, maps[axis - 2], shape[axis])
        return d

    # ------------------------------------------------------------------ config
    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = {}
        if self.size is not None:
            config["size"] = list(self.size) if isinstance(self.size, tuple) else self.size
        else:
            sf = self.scale_factor
            config["scale_factor"] = list(sf) if isinstance(sf, tuple) else sf
        if self.mode != "nearest":
            config["mode"] = self.mode
        if self.align_corners is not None:
            config["align_corners"] = self.align_corners
        if self.recompute_scale_factor is not None:
            config["recompute_scale_factor"] = self.recompute_scale_factor
        return config

    def to_torch_module(self, nn: Any) -> Any:
        config = {k: tuple(v) if isinstance(v, list) else v for k, v in self.get_config().items()}
        return nn.Upsample(**config)

    def summary_name(self) -> str:
        return "Upsample(" + ", ".join(f"{k}={v!r}" for k, v in self.get_config().items()) + ")"


__all__ = ["Upsample"]
