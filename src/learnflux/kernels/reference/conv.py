"""Convolution in NumPy: the reference kernel set's forward, input δ and weight gradient.

Two paths (Conv2d's docstring gives the maths; this is how it runs):

* **flat path** (stride 1, float, a map wide enough, see ``FLAT_MAX_WASTE``): the input is copied
  once, channel-major, into a zero-padded buffer ``x̃`` of shape ``(C, N, H̃ + 1, W̃)`` (kept in the
  layer's scratch: its border is written once; it is also what the backward pass keeps). Flattening
  each padded image, kernel offset ``(i, j)`` reads the pixel ``s_ij = d_h·i·W̃ + d_w·j`` places
  after the window's top-left corner, so for one sample the ``H_out·W̃`` values an offset sees form
  ONE contiguous run of ``x̃``; the columns ``X_col[(c, i, j), (n, q)] = x̃_flat[c, n, q + s_ij]``
  are ``C·kh·kw`` long contiguous copies, and the forward pass is one GEMM per group ``W_mat ·
  X_col``. The ``W̃ − W_out`` extra columns of each output row are wasted work (they wrap around
  the border) and are not copied out. The backward pass rebuilds the columns (cheaper than caching
  them: 9× the input for 3×3), computes ``δW = δ_mat · X_colᵀ`` with ``δ_mat`` zero in the wasted
  columns and ``δX_col = W_matᵀ · δ_mat`` added back with ``kh·kw`` shifted adds of contiguous rows
  (col2im without a strided scatter). The work runs in blocks of samples whose columns fit in the
  CPU cache (``CHUNK_ELEMS``), in the workspace's shared blocks.
* **general path** (narrow maps, other strides, exact ``Fraction`` values): the ``kh·kw`` strided,
  zero-copy views of the padded input are gathered into ``X_col`` of shape ``(C·kh·kw,
  N·H_out·W_out)`` (im2col, cached for the backward pass), the forward pass is ``W_mat · X_col``,
  the backward pass ``δW = δ_mat · X_colᵀ`` and ``δX_col = W_matᵀ · δ_mat`` scattered back by
  adding ``kh·kw`` strided slices (at stride 1 in float, the input δ is computed block by block
  as on the flat path instead).
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any, Optional

import numpy as np

from ...numbers import is_exact
from ..gemm import matmul, weight_grad
from ..geometry import ConvGeometry
from ..workspace import Scratch, shared

#: target size (elements) of one block of columns: small enough to stay in the CPU cache between
#: the copy that builds it and the GEMM that reads it.
CHUNK_ELEMS = 1 << 20
#: the flat path computes ``W̃ − W_out`` wasted columns per output row; above this fraction of
#: ``W_out`` (narrow maps: 14×14 with 3×3, 8×8) the general path's exact columns pay more than its
#: costlier copies (measured on the 2-core development machine)
FLAT_MAX_WASTE = 0.125


def offset_view(xp: np.ndarray, i0: int, j0: int, out_h: int, out_w: int, sh: int, sw: int) -> np.ndarray:
    """The zero-copy strided view ``v[..., a, b] = xp[..., i0 + sh·a, j0 + sw·b]``
    (``a < out_h``, ``b < out_w``): the pixel that kernel offset ``(i0, j0)`` sees in every window."""
    return xp[..., i0 : i0 + sh * (out_h - 1) + 1 : sh, j0 : j0 + sw * (out_w - 1) + 1 : sw]


def zeros_like_dtype(shape: tuple, dtype: np.dtype) -> np.ndarray:
    """Zeros of ``dtype``; exact (object) arrays hold ``Fraction(0)`` rather than the int 0."""
    if is_exact(dtype):
        return np.full(shape, Fraction(0), dtype=object)
    return np.zeros(shape, dtype=dtype)


def _weight_matrix(weight: np.ndarray, geo: ConvGeometry) -> np.ndarray:
    """``W`` as ``(groups, out/groups, C_g·kh·kw)`` (a view)."""
    return weight.reshape(geo.groups, geo.out_channels // geo.groups, -1)


def use_flat(geo: ConvGeometry, dtype: np.dtype, wo: int) -> bool:
    waste = geo.dilation[1] * (geo.kernel[1] - 1)  # W̃ − W_out at stride 1
    return geo.stride == (1, 1) and not is_exact(dtype) and waste <= FLAT_MAX_WASTE * wo


def conv2d_forward(
    x: np.ndarray,
    weight: np.ndarray,
    bias: Optional[np.ndarray],
    geo: ConvGeometry,
    scratch: Scratch,
    training: bool,
) -> tuple[np.ndarray, Any]:
    """``o = W ⋆ x + b``; returns the output and what the backward pass needs (None in inference)."""
    ho, wo = geo.output_hw(x.shape[2], x.shape[3])
    if use_flat(geo, x.dtype, wo):
        return _forward_flat(x, weight, bias, geo, scratch, training, ho, wo)
    return _forward_general(x, weight, bias, geo, training, ho, wo)


def conv2d_backward(
    saved: Any,
    delta: np.ndarray,
    weight: np.ndarray,
    geo: ConvGeometry,
    has_bias: bool,
    need_input_delta: bool,
) -> tuple[Optional[np.ndarray], np.ndarray, Optional[np.ndarray]]:
    """``(δx or None, δW, δb or None)`` from what the forward pass kept."""
    kind, data, shape = saved
    if kind == "flat":
        return _backward_flat(data, shape, delta, weight, geo, has_bias, need_input_delta)
    return _backward_general(data, shape, delta, weight, geo, has_bias, need_input_delta)


# ---------------------------------------------------------------------- general path
def im2col(x: np.ndarray, geo: ConvGeometry, ho: int, wo: int) -> np.ndarray:
    """``X_col[(c, i, j), (n, a, b)] = x̃[n, c, s_h·a + d_h·i, s_w·b + d_w·j]``, shape
    ``(C·kh·kw, N·H_out·W_out)``: one copy of each kernel offset's strided view."""
    n, c, h, w = x.shape
    top, bottom, left, right = geo.pads
    if top or bottom or left or right:
        xp = zeros_like_dtype((n, c, h + top + bottom, w + left + right), x.dtype)
        xp[:, :, top : top + h, left : left + w] = x
    else:
        xp = x
    (kh, kw), (sh, sw), (dh, dw) = geo.kernel, geo.stride, geo.dilation
    cols = np.empty((c, kh, kw, n, ho, wo), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            cols[:, i, j] = offset_view(xp, i * dh, j * dw, ho, wo, sh, sw).transpose(1, 0, 2, 3)
    return cols.reshape(c * kh * kw, n * ho * wo)


def _forward_general(x, weight, bias, geo, training, ho, wo):
    n = x.shape[0]
    cols = im2col(x, geo, ho, wo)
    wmat = _weight_matrix(weight, geo)
    if geo.groups == 1:
        prod = matmul(wmat[0], cols)  # (out, N·H_out·W_out): the one GEMM
    else:
        prod = matmul(wmat, cols.reshape(geo.groups, -1, cols.shape[1]))  # one per group
    prod = prod.reshape(geo.out_channels, n * ho * wo)
    if bias is not None:
        prod += bias[:, None]  # in place, on contiguous rows
    out = np.empty((n, geo.out_channels, ho, wo), dtype=prod.dtype)
    out[...] = prod.reshape(geo.out_channels, n, ho, wo).transpose(1, 0, 2, 3)
    return out, (("general", cols, tuple(x.shape)) if training else None)


def _backward_general(cols, shape, delta, weight, geo, has_bias, need_input_delta):
    n, c, h, w = shape
    ho, wo = delta.shape[2:]
    g = geo.groups
    # δ as a matrix (out, N·H_out·W_out), split by group: (groups, out/groups, N·H_out·W_out)
    dmat = np.ascontiguousarray(delta.transpose(1, 0, 2, 3)).reshape(g, -1, n * ho * wo)
    gw = weight_grad(dmat, cols.reshape(g, -1, n * ho * wo))
    gb = dmat.reshape(geo.out_channels, -1).sum(axis=1) if has_bias else None
    if not need_input_delta:
        return None, gw, gb
    return _input_delta(delta, dmat, weight, geo, shape), gw, gb


def conv2d_input_delta(delta: np.ndarray, weight: np.ndarray, geo: ConvGeometry, shape: tuple) -> np.ndarray:
    """``δx`` alone, for an input of ``shape``, from ``δ`` (no weight gradient, no cache): each
    padded pixel sums ``W·δ`` over the output positions it reached, the padding cut off.
    ``ConvTranspose2d``'s forward pass is this function."""
    return _input_delta(delta, None, weight, geo, shape)


def _input_delta(delta, dmat, weight, geo, shape):
    """The input δ of the general path; ``dmat`` is δ as ``(groups, out/groups, N·H_out·W_out)``
    when the caller has it (None: made here when needed)."""
    n, c, h, w = shape
    ho, wo = delta.shape[2:]
    g = geo.groups
    if geo.stride == (1, 1) and not is_exact(delta.dtype):
        # stride 1 (a narrow map when called from the general backward pass, whose exact columns
        # avoid wasted GEMM work): the input δ as on the flat path, contiguous col2im rows instead
        # of W_out-long strided ones
        wp = w + geo.pads[2] + geo.pads[3]
        per = _block_size(geo, n, c, ho * wp)
        d_in = np.empty(shape, dtype=delta.dtype)
        for n0 in range(0, n, per):
            nc = min(per, n - n0)
            _input_delta_block(_delta_block(delta, geo, n0, nc, wp), weight, geo, d_in, n0, nc)
        return d_in
    if dmat is None:
        dmat = np.ascontiguousarray(delta.transpose(1, 0, 2, 3)).reshape(g, -1, n * ho * wo)
    wmat = _weight_matrix(weight, geo)
    dcols = matmul(wmat[0].T, dmat[0]) if g == 1 else matmul(wmat.transpose(0, 2, 1), dmat)
    (kh, kw), (sh, sw), (dh, dw) = geo.kernel, geo.stride, geo.dilation
    dcols = dcols.reshape(c, kh, kw, n, ho, wo)
    top, bottom, left, right = geo.pads
    # col2im: each kernel offset's δ goes back to the pixels it saw. The sum is built channel-major,
    # (C, N, H̃, W̃), like X_col's columns, so that each addition reads and writes matching layouts;
    # one copy at the end crops the padding and restores NCHW.
    dxp = zeros_like_dtype((c, n, h + top + bottom, w + left + right), dcols.dtype)
    for i in range(kh):
        for j in range(kw):
            view = offset_view(dxp, i * dh, j * dw, ho, wo, sh, sw)
            view += dcols[:, i, j]
    d_in = np.empty((n, c, h, w), dtype=dcols.dtype)
    d_in[...] = dxp[:, :, top : top + h, left : left + w].transpose(1, 0, 2, 3)
    return d_in


# ---------------------------------------------------------------------- flat path (stride 1)
def _flat_geometry(geo: ConvGeometry, h: int, w: int) -> tuple[int, int, list[int]]:
    """Padded height and width, and the flat shift ``d_h·i·W̃ + d_w·j`` of each kernel offset
    ``(i, j)`` (row-major)."""
    top, bottom, left, right = geo.pads
    hp, wp = h + top + bottom, w + left + right
    (kh, kw), (dh, dw) = geo.kernel, geo.dilation
    return hp, wp, [i * dh * wp + j * dw for i in range(kh) for j in range(kw)]


def _block_size(geo: ConvGeometry, n: int, c: int, length: int) -> int:
    """Samples per block: the columns of a block hold about ``CHUNK_ELEMS`` values."""
    k = c * geo.kernel[0] * geo.kernel[1]
    return max(1, min(n, CHUNK_ELEMS // (k * length)))


def _forward_flat(x, weight, bias, geo, scratch, training, ho, wo):
    n, c, h, w = x.shape
    top, _, left, _ = geo.pads
    hp, wp, shifts = _flat_geometry(geo, h, w)
    frame, length, g, o = (hp + 1) * wp, ho * wp, geo.groups, geo.out_channels
    dt = x.dtype
    # padded input, channel-major (C, N, H̃ + 1, W̃); its zero border (and the spare bottom row
    # that the last shifts run into) is written once, the interior on every call
    xp = scratch.get("xp", (c, n, hp + 1, wp), dt)
    np.copyto(xp[:, :, top : top + h, left : left + w], x.transpose(1, 0, 2, 3))
    xp3 = xp.reshape(c, n, frame)
    k = c * len(shifts)
    per = _block_size(geo, n, c, length)
    wmat = _weight_matrix(weight, geo)
    out = np.empty((n, o, ho, wo), dtype=dt)
    b4 = bias[:, None, None, None] if bias is not None else None
    for n0 in range(0, n, per):
        nc = min(per, n - n0)
        cols = shared("cols", (c, len(shifts), nc, length), dt)
        for t, s in enumerate(shifts):  # im2col: rows of H_out·W̃ contiguous values
            np.copyto(cols[:, t], xp3[:, n0 : n0 + nc, s : s + length])
        prod = shared("prod", (g, o // g, nc * length), dt)
        matmul(wmat, cols.reshape(g, k // g, nc * length), out=prod)
        valid = prod.reshape(o, nc, ho, wp)[..., :wo]
        dst = out[n0 : n0 + nc].transpose(1, 0, 2, 3)
        if b4 is None:
            np.copyto(dst, valid)
        else:
            np.add(valid, b4, out=dst)
    return out, (("flat", xp, tuple(x.shape)) if training else None)


def _delta_block(delta: np.ndarray, geo: ConvGeometry, n0: int, nc: int, wp: int) -> np.ndarray:
    """δ of samples ``n0 … n0 + nc − 1`` laid out like the flat path's product, ``(groups,
    out/groups, nc·H_out·W̃)``: zero in the columns ``b ≥ W_out`` that no output came from, so
    that they add nothing to the products below."""
    o, g = geo.out_channels, geo.groups
    ho, wo = delta.shape[2:]
    dc = shared("delta", (o, nc, ho, wp), delta.dtype)
    rows = dc.reshape(-1, wp)
    for col in range(wo, wp):  # one long strided fill per column: 2× faster than dc[..., wo:]
        rows[:, col] = 0
    np.copyto(dc[..., :wo], delta[n0 : n0 + nc].transpose(1, 0, 2, 3))
    return dc.reshape(g, o // g, nc * ho * wp)


def _input_delta_block(dc, weight, geo, d_in, n0, nc) -> None:
    """``δX_col = W_matᵀ · δ_mat`` for one block of samples (stride 1), added back by ``kh·kw``
    shifted additions of contiguous rows (col2im), cropped into ``d_in``."""
    _, c, h, w = d_in.shape
    top, _, left, _ = geo.pads
    hp, wp, shifts = _flat_geometry(geo, h, w)
    frame, length, g = (hp + 1) * wp, dc.shape[2] // nc, geo.groups
    k = c * len(shifts)
    dcols = shared("cols", (g, k // g, nc * length), dc.dtype)
    matmul(_weight_matrix(weight, geo).transpose(0, 2, 1), dc, out=dcols)
    dcols4 = dcols.reshape(c, len(shifts), nc, length)
    # the first shift (0) assigns, the others add
    dxp = shared("dxp", (c, nc, frame), dc.dtype)
    np.copyto(dxp[:, :, :length], dcols4[:, 0])
    dxp[:, :, length:] = 0
    for t, s in enumerate(shifts[1:], start=1):
        view = dxp[:, :, s : s + length]
        np.add(view, dcols4[:, t], out=view)
    inner = dxp.reshape(c, nc, hp + 1, wp)[:, :, top : top + h, left : left + w]
    np.copyto(d_in[n0 : n0 + nc].transpose(1, 0, 2, 3), inner)


def _backward_flat(xp, shape, delta, weight, geo, has_bias, need_input_delta):
    n, c, h, w = shape
    hp, wp, shifts = _flat_geometry(geo, h, w)
    frame, g, o = (hp + 1) * wp, geo.groups, geo.out_channels
    length = delta.shape[2] * wp
    dt = xp.dtype
    gb = np.einsum("nohw->o", delta) if has_bias else None
    xp3 = xp.reshape(c, n, frame)
    k = c * len(shifts)
    per = _block_size(geo, n, c, length)
    gw = np.zeros((g, o // g, k // g), dtype=dt)
    d_in = np.empty(shape, dtype=dt) if need_input_delta else None
    for n0 in range(0, n, per):
        nc = min(per, n - n0)
        dc = _delta_block(delta, geo, n0, nc, wp)
        cols = shared("cols", (c, len(shifts), nc, length), dt)  # rebuilt from x̃
        for t, s in enumerate(shifts):
            np.copyto(cols[:, t], xp3[:, n0 : n0 + nc, s : s + length])
        gw += weight_grad(dc, cols.reshape(g, k // g, nc * length))
        if d_in is not None:
            _input_delta_block(dc, weight, geo, d_in, n0, nc)  # reuses the columns' memory
    return d_in, gw, gb
