"""2-D convolution over channels-first images, as one GEMM per group.

The helpers ``pair``, ``offset_view`` and ``conv_output_size`` are shared with the pooling layers.
"""

from __future__ import annotations

import threading
from fractions import Fraction
from typing import Any, Optional, Union

import numpy as np

from ..errors import ConfigError
from ..init import initialize
from ..layer import Layer
from ..numbers import is_exact
from ..seeding import RngLike

IntOrPair = Union[int, tuple[int, int], list[int]]


def pair(value: Any, name: str, owner: str, minimum: int = 1) -> tuple[int, int]:
    """``3 → (3, 3)``, ``(3, 5) → (3, 5)``; a :class:`ConfigError` naming ``owner`` otherwise."""
    items = value if isinstance(value, (tuple, list)) else (value, value)
    ok = len(items) == 2 and all(
        isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= minimum for v in items
    )
    if not ok:
        what = "positive" if minimum == 1 else "non-negative"
        raise ConfigError(f"{owner}: {name} must be a {what} int or a pair of them, got {value!r}")
    return int(items[0]), int(items[1])


def compact(p: tuple[int, int]) -> Union[int, list[int]]:
    """``(3, 3) → 3``, ``(3, 5) → [3, 5]`` (how configs store pairs: JSON has no tuples)."""
    return p[0] if p[0] == p[1] else [p[0], p[1]]


def offset_view(xp: np.ndarray, i0: int, j0: int, out_h: int, out_w: int, sh: int, sw: int) -> np.ndarray:
    """The zero-copy strided view ``v[..., a, b] = xp[..., i0 + sh·a, j0 + sw·b]``
    (``a < out_h``, ``b < out_w``): the pixel that kernel offset ``(i0, j0)`` sees in every window."""
    return xp[..., i0 : i0 + sh * (out_h - 1) + 1 : sh, j0 : j0 + sw * (out_w - 1) + 1 : sw]


def conv_output_size(size: int, pad_total: int, kernel: int, stride: int, dilation: int = 1) -> int:
    """``⌊(size + pad_total − dilation·(kernel − 1) − 1) / stride⌋ + 1`` (≤ 0 if the kernel does
    not fit)."""
    return (size + pad_total - dilation * (kernel - 1) - 1) // stride + 1


_SHARED = threading.local()


def shared_block(key: str, shape: tuple, dtype: np.dtype) -> np.ndarray:
    """A contiguous array of ``shape`` carved from a per-thread work buffer that every Conv2d
    shares (its contents live only inside one forward or backward call); grown when too small,
    so a model holds one such buffer, the size of its largest block, not one per layer."""
    count = int(np.prod(shape))
    bufs = _SHARED.__dict__.setdefault("bufs", {})
    buf = bufs.get((key, dtype))
    if buf is None or buf.size < count:
        buf = np.empty(count, dtype=dtype)
        bufs[(key, dtype)] = buf
    return buf[:count].reshape(shape)


#: a weight gradient whose result has at most this many entries per group, summed over at least
#: ``SPLIT_MIN_LENGTH`` positions, is computed as ``SPLIT_PARTS`` partial products added up
SPLIT_MAX_RESULT = 1024
SPLIT_MIN_LENGTH = 1 << 15
SPLIT_PARTS = 8


def weight_grad(delta: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """``δW = δ_mat · X_colᵀ`` per group, ``(g, out_g, L) × (g, K_g, L) → (g, out_g, K_g)``. BLAS
    runs the transposed product ``X_col · δ_matᵀ`` faster when ``K_g ≥ out_g`` (measured: 20-40%
    on the benchmark's shapes), the direct one when ``K_g`` is tiny (a first layer, ``K = 9``).

    A tiny result summed over a very long ``L`` (a first layer: 16×9 entries over 64·28·30
    positions) is a "skinny" product that OpenBLAS runs at a fraction of its speed; split into
    ``SPLIT_PARTS`` stacked products over slices of ``L``, added at the end, it ran 3× faster
    (0.63 → 0.18 ms for LeNet's first layer). The sum is the same up to the order of additions."""
    g, m, length = delta.shape
    k = cols.shape[1]
    if m * k <= SPLIT_MAX_RESULT and length >= SPLIT_MIN_LENGTH:
        part = length // SPLIT_PARTS
        head = part * SPLIT_PARTS
        d4 = delta[:, :, :head].reshape(g, m, SPLIT_PARTS, part).transpose(0, 2, 1, 3)
        c4 = cols[:, :, :head].reshape(g, k, SPLIT_PARTS, part).transpose(0, 2, 3, 1)
        gw = np.matmul(d4, c4).sum(axis=1)
        if head < length:
            gw += np.matmul(delta[:, :, head:], cols[:, :, head:].transpose(0, 2, 1))
        return gw
    if cols.shape[1] >= delta.shape[1]:
        return np.matmul(cols, delta.transpose(0, 2, 1)).transpose(0, 2, 1)
    return np.matmul(delta, cols.transpose(0, 2, 1))


def zeros_like_dtype(shape: tuple, dtype: np.dtype) -> np.ndarray:
    """Zeros of ``dtype``; exact (object) arrays hold ``Fraction(0)`` rather than the int 0."""
    if is_exact(dtype):
        return np.full(shape, Fraction(0), dtype=object)
    return np.zeros(shape, dtype=dtype)


class Conv2d(Layer):
    """2-D convolution (cross-correlation, no kernel flip) with zero padding, PyTorch's ``Conv2d``.

    Forward, for output channel ``o`` of group ``g`` (``C_g = in_channels/groups`` input channels
    ``c = g·C_g + c'``), with the input zero-padded to ``x̃``::

        o[n, o, a, b] = bias[o] + Σ_{c'<C_g} Σ_{i<kh} Σ_{j<kw} W[o, c', i, j]
                                                             · x̃[n, c, s_h·a + d_h·i, s_w·b + d_w·j]

    Backward, with ``δ = ∂Loss/∂o`` of shape ``(batch, out_channels, H_out, W_out)`` (SPEC
    convention 7):

    * kernel gradient: ``δW[o, c', i, j] = Σ_{n,a,b} δ[n, o, a, b] · x̃[n, c, s_h·a + d_h·i, s_w·b + d_w·j]``
    * bias gradient: ``δbias[o] = Σ_{n,a,b} δ[n, o, a, b]`` (every position the bias was added to)
    * input δ: each padded pixel sums every output position it impacted,
      ``δx̃[n, c, s_h·a + d_h·i, s_w·b + d_w·j] += Σ_{o ∈ g} W[o, c', i, j] · δ[n, o, a, b]``
      over all ``(a, b, i, j)``; the padding border is then cut off.

    How it runs. Stride 1 in float32/float64 on a map wide enough (see ``FLAT_MAX_WASTE``) takes a
    fast path: the input is copied once, channel-major, into a zero-padded buffer ``x̃`` of shape
    ``(C, N, H̃ + 1, W̃)`` (kept by the layer: its border is written once; it is also what the
    backward pass keeps, about the size of the input). Flattening each padded image, kernel offset
    ``(i, j)`` reads the pixel ``s_ij = d_h·i·W̃ + d_w·j`` places after the window's top-left
    corner, so for one sample the ``H_out·W̃`` values an offset sees form ONE contiguous run of
    ``x̃``; the columns ``X_col[(c, i, j), (n, q)] = x̃_flat[c, n, q + s_ij]`` are ``C·kh·kw`` long
    contiguous copies (not ``C·kh·kw·N·H_out`` rows of ``W_out`` values), and the forward pass is
    one GEMM per group ``W_mat · X_col``. The ``W̃ − W_out`` extra columns of each output row are
    wasted work (they wrap around the border) and are simply not copied out. The backward pass
    rebuilds the columns (cheaper than caching them: 9× the input for 3×3), computes ``δW = δ_mat
    · X_colᵀ`` with ``δ_mat`` zero in the wasted columns, and, when the input δ is needed, ``δX_col
    = W_matᵀ · δ_mat`` added back with ``kh·kw`` shifted adds of contiguous rows (col2im without a
    strided scatter). The work runs in blocks of samples whose columns fit in the CPU cache
    (``CHUNK_ELEMS``), in work buffers shared by all Conv2d layers of a thread.

    Narrow maps, other strides, and exact arithmetic on ``Fraction`` values take the general path:
    the ``kh·kw`` strided, zero-copy views of the padded input (one per kernel offset) are gathered
    into ``X_col`` of shape ``(C·kh·kw, N·H_out·W_out)`` (im2col, cached for the backward pass),
    the forward pass is ``W_mat · X_col``, the backward pass ``δW = δ_mat · X_colᵀ`` and ``δX_col =
    W_matᵀ · δ_mat`` scattered back by adding ``kh·kw`` strided slices (at stride 1 in float, the
    input δ is computed block by block as on the fast path instead). Everything stays in the
    layer's dtype (float32 by default).

    Args:
        in_channels, out_channels: channels of the input and of the output.
        kernel_size: ``k`` or ``(kh, kw)``.
        stride: ``s`` or ``(s_h, s_w)``, default 1.
        padding: zeros added on every side, ``p`` or ``(p_h, p_w)``; or ``"same"`` (stride 1
            only: output size = input size; the total ``d·(k − 1)`` is split with the extra pixel
            at the bottom/right when odd, as PyTorch does) or ``"valid"`` (no padding).
        dilation: spacing between kernel taps, default 1.
        groups: split the channels into ``groups`` independent convolutions; ``in_channels`` and
            ``out_channels`` must both be divisible by it (``groups=in_channels``: depthwise).
        bias: add a learnable bias per output channel. It **starts at 0** (SPEC: biases start at
            0), unlike PyTorch's default which draws the conv bias at random.
        init: weight initialiser (name from :mod:`learnflux.init` or a callable). Default
            ``"torch_default"``: U(−1/√fan_in, 1/√fan_in) with ``fan_in = C_g·kh·kw``, as PyTorch.
        rng: generator or seed for the initialisation (default: the global one, ``lf.seed``).

    Weights: ``weight`` of shape ``(out_channels, in_channels/groups, kh, kw)`` and ``bias`` of
    shape ``(out_channels,)``, PyTorch's names and layouts.

    Input shape: ``(batch, in_channels, H, W)``.
    Output shape: ``(batch, out_channels, H_out, W_out)`` with
    ``H_out = ⌊(H + p_top + p_bottom − d_h·(kh − 1) − 1) / s_h⌋ + 1`` (same for ``W_out``).
    """

    supports_exact = True

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: IntOrPair,
        stride: IntOrPair = 1,
        padding: Union[IntOrPair, str] = 0,
        dilation: IntOrPair = 1,
        groups: int = 1,
        bias: bool = True,
        init: Any = "torch_default",
        rng: RngLike = None,
    ) -> None:
        super().__init__()
        name = "Conv2d"
        for arg, value in (("in_channels", in_channels), ("out_channels", out_channels), ("groups", groups)):
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"{name}: {arg} must be a positive int, got {value!r}")
        self.in_channels = int(in_channels)
        self.out_channels = int(out_channels)
        self.groups = int(groups)
        if self.in_channels % self.groups or self.out_channels % self.groups:
            raise ConfigError(
                f"{name}: in_channels ({self.in_channels}) and out_channels ({self.out_channels}) "
                f"must both be divisible by groups ({self.groups})"
            )
        self.kernel_size = pair(kernel_size, "kernel_size", name)
        self.stride = pair(stride, "stride", name)
        self.dilation = pair(dilation, "dilation", name)
        kh, kw = self.kernel_size
        self.padding: Union[str, tuple[int, int]]
        if isinstance(padding, str):
            mode = padding.lower()
            if mode == "valid":
                self._pads = (0, 0, 0, 0)
            elif mode == "same":
                if self.stride != (1, 1):
                    raise ConfigError(
                        f"{name}: padding='same' needs stride 1 (got stride {self.stride}); "
                        "give the padding as numbers for a strided convolution"
                    )
                th = self.dilation[0] * (kh - 1)
                tw = self.dilation[1] * (kw - 1)
                self._pads = (th // 2, th - th // 2, tw // 2, tw - tw // 2)
            else:
                raise ConfigError(
                    f"{name}: padding must be 'same', 'valid', an int or a pair, got {padding!r}"
                )
            self.padding = mode
        else:
            ph, pw = pair(padding, "padding", name, minimum=0)
            self.padding = (ph, pw)
            self._pads = (ph, ph, pw, pw)
        self.use_bias = bool(bias)
        self.init = init
        shape = (self.out_channels, self.in_channels // self.groups, kh, kw)
        fan_in = shape[1] * kh * kw
        fan_out = self.out_channels * kh * kw
        self.add_param("weight", initialize(init, shape, fan_in, fan_out, rng))
        if self.use_bias:
            self.add_param("bias", np.zeros(self.out_channels))
        self._cache: Optional[tuple] = None
        self._scratch: dict[str, np.ndarray] = {}  # work buffers, allocated once per shape

    # ------------------------------------------------------------------ shapes
    def _output_hw(self, h: int, w: int) -> tuple[int, int]:
        top, bottom, left, right = self._pads
        (kh, kw), (sh, sw), (dh, dw) = self.kernel_size, self.stride, self.dilation
        ho = conv_output_size(h, top + bottom, kh, sh, dh)
        wo = conv_output_size(w, left + right, kw, sw, dw)
        if ho < 1 or wo < 1:
            raise self.shape_error(
                f"the kernel {kh}×{kw} (dilation {self.dilation}, spanning "
                f"{dh * (kh - 1) + 1}×{dw * (kw - 1) + 1} pixels) is larger than the padded input "
                f"{h + top + bottom}×{w + left + right} (input {h}×{w}, padding {self.padding})"
            )
        return ho, wo

    def _check_shape(self, shape: tuple) -> None:
        if len(shape) != 4 or shape[1] != self.in_channels:
            raise self.shape_error(
                f"expected input of shape (batch, {self.in_channels}, height, width), got {tuple(shape)}"
            )

    def output_shape(self, input_shape: tuple) -> tuple:
        self._check_shape((None, *input_shape))
        ho, wo = self._output_hw(input_shape[1], input_shape[2])
        return (self.out_channels, ho, wo)

    # ------------------------------------------------------------------ forward / backward
    def _im2col(self, x: np.ndarray, ho: int, wo: int) -> np.ndarray:
        """``X_col[(c, i, j), (n, a, b)] = x̃[n, c, s_h·a + d_h·i, s_w·b + d_w·j]``, shape
        ``(C·kh·kw, N·H_out·W_out)``: one copy of each kernel offset's strided view."""
        n, c, h, w = x.shape
        top, bottom, left, right = self._pads
        if top or bottom or left or right:
            xp = zeros_like_dtype((n, c, h + top + bottom, w + left + right), x.dtype)
            xp[:, :, top : top + h, left : left + w] = x
        else:
            xp = x
        (kh, kw), (sh, sw), (dh, dw) = self.kernel_size, self.stride, self.dilation
        cols = np.empty((c, kh, kw, n, ho, wo), dtype=x.dtype)
        for i in range(kh):
            for j in range(kw):
                cols[:, i, j] = offset_view(xp, i * dh, j * dw, ho, wo, sh, sw).transpose(1, 0, 2, 3)
        return cols.reshape(c * kh * kw, n * ho * wo)

    def _weight_matrix(self) -> np.ndarray:
        """``W`` as ``(groups, out/groups, C_g·kh·kw)`` (a view)."""
        g = self.groups
        return self.weight.value.reshape(g, self.out_channels // g, -1)

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._check_shape(x.shape)
        ho, wo = self._output_hw(x.shape[2], x.shape[3])
        if self._use_flat(x.dtype, wo):
            return self._forward_flat(x, ho, wo)
        return self._forward_general(x, ho, wo)

    def backward(self, delta_out: np.ndarray, need_input_delta: bool = True) -> Optional[np.ndarray]:
        cache = self._cache
        self.check_trainable(cache)
        kind, data, shape = cache
        n, c, h, w = shape
        ho, wo = self._output_hw(h, w)
        if delta_out.shape != (n, self.out_channels, ho, wo):
            raise self.shape_error(
                f"δ has shape {tuple(delta_out.shape)}, expected {(n, self.out_channels, ho, wo)}"
            )
        if kind == "flat":
            return self._backward_flat(data, shape, delta_out, need_input_delta)
        return self._backward_general(data, shape, delta_out, need_input_delta)

    # ------------------------------------------------------------------ stride-1 fast path
    #: target size (elements) of one block of columns: small enough to stay in the CPU cache
    #: between the copy that builds it and the GEMM that reads it.
    CHUNK_ELEMS = 1 << 20
    #: the fast path computes ``W̃ − W_out`` wasted columns per output row; above this fraction
    #: of ``W_out`` (narrow maps: 14×14 with 3×3, 8×8) the general path's exact columns pay more
    #: than its costlier copies (measured on the 2-core development machine)
    FLAT_MAX_WASTE = 0.125

    def _use_flat(self, dtype: np.dtype, wo: int) -> bool:
        waste = self.dilation[1] * (self.kernel_size[1] - 1)  # W̃ − W_out at stride 1
        return self.stride == (1, 1) and not is_exact(dtype) and waste <= self.FLAT_MAX_WASTE * wo

    def _work(self, key: str, shape: tuple, dtype: np.dtype) -> np.ndarray:
        """A work buffer kept between calls (allocated zeroed once per shape and dtype)."""
        buf = self._scratch.get(key)
        if buf is None or buf.shape != shape or buf.dtype != dtype:
            buf = np.zeros(shape, dtype=dtype)
            self._scratch[key] = buf
        return buf

    def _flat_geometry(self, h: int, w: int) -> tuple[int, int, list[int]]:
        """Padded height and width, and the flat shift ``d_h·i·W̃ + d_w·j`` of each kernel
        offset ``(i, j)`` (row-major)."""
        top, bottom, left, right = self._pads
        hp, wp = h + top + bottom, w + left + right
        (kh, kw), (dh, dw) = self.kernel_size, self.dilation
        return hp, wp, [i * dh * wp + j * dw for i in range(kh) for j in range(kw)]

    def _forward_flat(self, x: np.ndarray, ho: int, wo: int) -> np.ndarray:
        """Stride 1, float: one GEMM per block of samples over flat-shifted rows (class notes)."""
        n, c, h, w = x.shape
        top, _, left, _ = self._pads
        hp, wp, shifts = self._flat_geometry(h, w)
        frame, length, g, o = (hp + 1) * wp, ho * wp, self.groups, self.out_channels
        dt = x.dtype
        # padded input, channel-major (C, N, H̃ + 1, W̃); its zero border (and the spare bottom
        # row that the last shifts run into) is written once, the interior on every call
        xp = self._work("xp", (c, n, hp + 1, wp), dt)
        np.copyto(xp[:, :, top : top + h, left : left + w], x.transpose(1, 0, 2, 3))
        xp3 = xp.reshape(c, n, frame)
        k = c * len(shifts)
        per = max(1, min(n, self.CHUNK_ELEMS // (k * length)))
        wmat = self._weight_matrix()
        out = np.empty((n, o, ho, wo), dtype=dt)
        bias = self.bias.value[:, None, None, None] if self.use_bias else None
        for n0 in range(0, n, per):
            nc = min(per, n - n0)
            cols = shared_block("cols", (c, len(shifts), nc, length), dt)
            for t, s in enumerate(shifts):  # im2col: rows of H_out·W̃ contiguous values
                np.copyto(cols[:, t], xp3[:, n0 : n0 + nc, s : s + length])
            prod = shared_block("prod", (g, o // g, nc * length), dt)
            np.matmul(wmat, cols.reshape(g, k // g, nc * length), out=prod)
            valid = prod.reshape(o, nc, ho, wp)[..., :wo]
            dst = out[n0 : n0 + nc].transpose(1, 0, 2, 3)
            if bias is None:
                np.copyto(dst, valid)
            else:
                np.add(valid, bias, out=dst)
        if self.training:
            self._cache = ("flat", xp, tuple(x.shape))
        return out

    def _delta_block(self, delta_out: np.ndarray, n0: int, nc: int, wp: int) -> np.ndarray:
        """δ of samples ``n0 … n0 + nc − 1`` laid out like the fast path's product,
        ``(groups, out/groups, nc·H_out·W̃)``: zero in the columns ``b ≥ W_out`` that no output
        came from, so that they add nothing to the products below."""
        o, g = self.out_channels, self.groups
        ho, wo = delta_out.shape[2:]
        dc = shared_block("delta", (o, nc, ho, wp), delta_out.dtype)
        rows = dc.reshape(-1, wp)
        for col in range(wo, wp):  # one long strided fill per column: 2× faster than dc[..., wo:]
            rows[:, col] = 0
        np.copyto(dc[..., :wo], delta_out[n0 : n0 + nc].transpose(1, 0, 2, 3))
        return dc.reshape(g, o // g, nc * ho * wp)

    def _input_delta_block(self, dc: np.ndarray, d_in: np.ndarray, n0: int, nc: int) -> None:
        """``δX_col = W_matᵀ · δ_mat`` for one block of samples (stride 1), added back by
        ``kh·kw`` shifted additions of contiguous rows (col2im), cropped into ``d_in``."""
        _, c, h, w = d_in.shape
        top, _, left, _ = self._pads
        hp, wp, shifts = self._flat_geometry(h, w)
        frame, length, g = (hp + 1) * wp, dc.shape[2] // nc, self.groups
        k = c * len(shifts)
        dcols = shared_block("cols", (g, k // g, nc * length), dc.dtype)
        np.matmul(self._weight_matrix().transpose(0, 2, 1), dc, out=dcols)
        dcols4 = dcols.reshape(c, len(shifts), nc, length)
        # the first shift (0) assigns, the others add
        dxp = shared_block("dxp", (c, nc, frame), dc.dtype)
        np.copyto(dxp[:, :, :length], dcols4[:, 0])
        dxp[:, :, length:] = 0
        for t, s in enumerate(shifts[1:], start=1):
            view = dxp[:, :, s : s + length]
            np.add(view, dcols4[:, t], out=view)
        inner = dxp.reshape(c, nc, hp + 1, wp)[:, :, top : top + h, left : left + w]
        np.copyto(d_in[n0 : n0 + nc].transpose(1, 0, 2, 3), inner)

    def _block_size(self, n: int, c: int, length: int) -> int:
        """Samples per block: the columns of a block hold about ``CHUNK_ELEMS`` values."""
        k = c * self.kernel_size[0] * self.kernel_size[1]
        return max(1, min(n, self.CHUNK_ELEMS // (k * length)))

    def _backward_flat(
        self, xp: np.ndarray, shape: tuple, delta_out: np.ndarray, need_input_delta: bool
    ) -> Optional[np.ndarray]:
        n, c, h, w = shape
        hp, wp, shifts = self._flat_geometry(h, w)
        frame, g, o = (hp + 1) * wp, self.groups, self.out_channels
        length = delta_out.shape[2] * wp
        dt = xp.dtype
        if self.use_bias:
            self.bias.set_grad(np.einsum("nohw->o", delta_out))
        xp3 = xp.reshape(c, n, frame)
        k = c * len(shifts)
        per = self._block_size(n, c, length)
        gw = np.zeros((g, o // g, k // g), dtype=dt)
        d_in = np.empty(shape, dtype=dt) if need_input_delta else None
        for n0 in range(0, n, per):
            nc = min(per, n - n0)
            dc = self._delta_block(delta_out, n0, nc, wp)
            cols = shared_block("cols", (c, len(shifts), nc, length), dt)  # rebuilt from x̃
            for t, s in enumerate(shifts):
                np.copyto(cols[:, t], xp3[:, n0 : n0 + nc, s : s + length])
            gw += weight_grad(dc, cols.reshape(g, k // g, nc * length))
            if d_in is not None:
                self._input_delta_block(dc, d_in, n0, nc)  # reuses the columns' memory
        self.weight.set_grad(gw.reshape(self.weight.value.shape))
        return d_in

    # ------------------------------------------------------------------ general path
    def _forward_general(self, x: np.ndarray, ho: int, wo: int) -> np.ndarray:
        n = x.shape[0]
        cols = self._im2col(x, ho, wo)
        wmat = self._weight_matrix()
        if self.groups == 1:
            prod = wmat[0] @ cols  # (out, N·H_out·W_out): the one GEMM
        else:
            prod = np.matmul(wmat, cols.reshape(self.groups, -1, cols.shape[1]))  # one per group
        prod = prod.reshape(self.out_channels, n * ho * wo)
        if self.use_bias:
            prod += self.bias.value[:, None]  # in place, on contiguous rows
        out = np.empty((n, self.out_channels, ho, wo), dtype=prod.dtype)
        out[...] = prod.reshape(self.out_channels, n, ho, wo).transpose(1, 0, 2, 3)
        if self.training:
            self._cache = ("general", cols, tuple(x.shape))
        return out

    def _backward_general(
        self, cols: np.ndarray, shape: tuple, delta_out: np.ndarray, need_input_delta: bool
    ) -> Optional[np.ndarray]:
        n, c, h, w = shape
        ho, wo = delta_out.shape[2:]
        g = self.groups
        # δ as a matrix (out, N·H_out·W_out), split by group: (groups, out/groups, N·H_out·W_out)
        dmat = np.ascontiguousarray(delta_out.transpose(1, 0, 2, 3)).reshape(g, -1, n * ho * wo)
        cols_g = cols.reshape(g, -1, n * ho * wo)
        gw = weight_grad(dmat, cols_g)
        self.weight.set_grad(np.ascontiguousarray(gw).reshape(self.weight.value.shape))
        if self.use_bias:
            self.bias.set_grad(dmat.reshape(self.out_channels, -1).sum(axis=1))
        if not need_input_delta:
            return None
        if self.stride == (1, 1) and not is_exact(delta_out.dtype):
            # narrow map at stride 1: exact columns above (no wasted GEMM work), but the input δ
            # as on the fast path (contiguous col2im rows instead of W_out-long strided ones)
            wp = w + self._pads[2] + self._pads[3]
            per = self._block_size(n, c, ho * wp)
            d_in = np.empty(shape, dtype=delta_out.dtype)
            for n0 in range(0, n, per):
                nc = min(per, n - n0)
                self._input_delta_block(self._delta_block(delta_out, n0, nc, wp), d_in, n0, nc)
            return d_in
        wmat = self._weight_matrix()
        if g == 1:
            dcols = wmat[0].T @ dmat[0]
        else:
            dcols = np.matmul(wmat.transpose(0, 2, 1), dmat)
        (kh, kw), (sh, sw), (dh, dw) = self.kernel_size, self.stride, self.dilation
        dcols = dcols.reshape(c, kh, kw, n, ho, wo)
        top, bottom, left, right = self._pads
        # col2im: each kernel offset's δ goes back to the pixels it saw. The sum is built
        # channel-major, (C, N, H̃, W̃), like X_col's columns, so that each addition reads and
        # writes matching layouts; one copy at the end crops the padding and restores NCHW.
        dxp = zeros_like_dtype((c, n, h + top + bottom, w + left + right), dcols.dtype)
        for i in range(kh):
            for j in range(kw):
                view = offset_view(dxp, i * dh, j * dw, ho, wo, sh, sw)
                view += dcols[:, i, j]
        d_in = np.empty((n, c, h, w), dtype=dcols.dtype)
        d_in[...] = dxp[:, :, top : top + h, left : left + w].transpose(1, 0, 2, 3)
        return d_in

    def _cache_attrs(self) -> tuple[str, ...]:
        return ("_cache",)

    # ------------------------------------------------------------------ config
    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = {
            "in_channels": self.in_channels,
            "out_channels": self.out_channels,
            "kernel_size": compact(self.kernel_size),
        }
        if self.stride != (1, 1):
            config["stride"] = compact(self.stride)
        if isinstance(self.padding, str):
            config["padding"] = self.padding
        elif self.padding != (0, 0):
            config["padding"] = compact(self.padding)
        if self.dilation != (1, 1):
            config["dilation"] = compact(self.dilation)
        if self.groups != 1:
            config["groups"] = self.groups
        if not self.use_bias:
            config["bias"] = False
        if isinstance(self.init, str) and self.init != "torch_default":
            config["init"] = self.init
        return config

    def summary_name(self) -> str:
        kh, kw = self.kernel_size
        extras = [
            f"{k}={v!r}"
            for k, v in self.get_config().items()
            if k not in ("in_channels", "out_channels", "kernel_size")
        ]
        tail = "".join(", " + e for e in extras)
        return f"Conv2d({self.in_channels} → {self.out_channels}, {kh}×{kw}{tail})"


__all__ = ["Conv2d"]
