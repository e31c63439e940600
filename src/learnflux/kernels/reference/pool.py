"""Pooling in NumPy: window offset by window offset.

For the offset ``(i, j)`` inside the ``kh×kw`` window, the pixel each window holds there forms
one zero-copy strided view of the (padded) input, ``x̃[:, :, s_h·a + i, s_w·b + j]``. The forward
pass combines the ``kh·kw`` views (maximum or sum); the backward pass adds δ back through the same
views. When the windows tile the image exactly (the common 2×2 / stride 2), no padded copy is made
and the backward pass writes each view once instead of adding.

Max pooling's routing: in the training phase the forward pass keeps, per output, the index ``k =
i·kw + j`` of the window offset that won (uint8, or int32 for windows of more than 255 pixels);
the compiled kernels keep the same format.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any, Iterator, Optional

import numpy as np

from ..geometry import PoolGeometry
from .conv import offset_view, zeros_like_dtype
from .eltwise import relu_backward


def winner_dtype(geo: PoolGeometry) -> np.dtype:
    return np.dtype(np.uint8 if geo.kernel[0] * geo.kernel[1] <= 255 else np.int32)


def _pad(x: np.ndarray, geo: PoolGeometry, fill: Any) -> np.ndarray:
    """``x`` inside a border of ``fill`` large enough for every window (``x`` itself, without a
    copy, when no window leaves the image)."""
    n, c, h, w = x.shape
    hp, wp = geo.padded_extent()
    ph, pw = geo.padding
    if (hp, wp) == (h, w) and ph == 0 and pw == 0:
        return x
    xp = np.full((n, c, hp, wp), fill, dtype=x.dtype)
    xp[:, :, ph : ph + h, pw : pw + w] = x
    return xp


def _views(xp: np.ndarray, geo: PoolGeometry) -> Iterator[tuple[int, np.ndarray]]:
    """``(k, view)`` for each window offset, in row-major order within the window."""
    (kh, kw), (sh, sw), (ho, wo) = geo.kernel, geo.stride, geo.out_hw
    for i in range(kh):
        for j in range(kw):
            yield i * kw + j, offset_view(xp, i, j, ho, wo, sh, sw)


def _crop(dxp: np.ndarray, shape: tuple, geo: PoolGeometry) -> np.ndarray:
    n, c, h, w = shape
    ph, pw = geo.padding
    if dxp.shape == shape:
        return dxp
    return dxp[:, :, ph : ph + h, pw : pw + w]


def _delta_buffer(shape: tuple, geo: PoolGeometry, dtype: np.dtype) -> tuple[np.ndarray, bool]:
    """The array the input δ is gathered in (padded like the forward input) and whether the views
    tile it (then it need not start at zero: each view is assigned, not added to)."""
    if geo.tiles():
        return np.empty(shape, dtype=dtype), True
    hp, wp = geo.padded_extent()
    return zeros_like_dtype((shape[0], shape[1], hp, wp), dtype), False


def maxpool2d_forward(x: np.ndarray, geo: PoolGeometry, training: bool) -> tuple[np.ndarray, Any]:
    """``o = max over each window`` (−∞ border) and, in training, the winning offsets."""
    # −∞ border (it compares below Fractions too); a window always holds a real pixel
    views = _views(_pad(x, geo, float("-inf")), geo)
    _, first = next(views)
    out = first.copy()
    if not training:
        for _, view in views:
            np.maximum(out, view, out=out)
        return out, None
    winner = np.zeros(out.shape, dtype=winner_dtype(geo))
    for k, view in views:
        better = view > out  # strictly: on ties the earlier offset keeps the window
        np.maximum(out, view, out=out)
        # winner = k where better: k grows, so a maximum does it (branch-free, in place)
        if winner.dtype == np.uint8:
            step = better.view(np.uint8)
            step *= np.uint8(k)
        else:
            step = better * np.int32(k)
        np.maximum(winner, step, out=winner)
    return out, winner


def maxpool2d_backward(
    delta: np.ndarray,
    winner: np.ndarray,
    shape: tuple,
    geo: PoolGeometry,
    relu_mask: Optional[np.ndarray] = None,
) -> np.ndarray:
    """Each window's δ goes to the input that won it (summed where windows overlap). With
    ``relu_mask`` (``[z ≥ 0]`` of a ReLU whose output the pool read, ``shape``): that δx, then
    the ReLU's backward ``δx ⊙ relu_mask`` (two steps here; the compiled set does both in one)."""
    dxp, tiled = _delta_buffer(shape, geo, delta.dtype)
    for k, view in _views(dxp, geo):
        if tiled:
            np.multiply(delta, winner == k, out=view)
        else:
            view += delta * (winner == k)
    d_in = _crop(dxp, shape, geo)
    return d_in if relu_mask is None else relu_backward(d_in, relu_mask)


def avgpool2d_forward(x: np.ndarray, geo: PoolGeometry, divisor: Any) -> np.ndarray:
    """``o = (Σ over each window) / m`` (zero border)."""
    views = _views(_pad(x, geo, Fraction(0) if x.dtype == object else 0), geo)
    _, first = next(views)
    out = first.copy()
    for _, view in views:
        out += view
    out /= divisor
    return out


def avgpool2d_backward(delta: np.ndarray, divisor: Any, shape: tuple, geo: PoolGeometry) -> np.ndarray:
    """Every pixel of a window receives ``δ / m`` (summed over the windows that hold it)."""
    share = delta / divisor
    dxp, tiled = _delta_buffer(shape, geo, share.dtype)
    for _, view in _views(dxp, geo):
        if tiled:
            view[...] = share
        else:
            view += share
    return _crop(dxp, shape, geo)
