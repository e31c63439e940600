"""The compiled kernel set ("compiled"): the same functions as ``reference``, running the data
movement in C (``_c/``, the extension ``_lfk``) and the GEMMs in NumPy's BLAS.

Compiled: float32 and float64 arrays. Anything else (exact ``Fraction`` object arrays, integer
inputs) runs the NumPy reference, function by function. Every function here allocates its outputs
with NumPy and hands C-contiguous buffers to C; the C side releases the GIL and splits large calls
over the kernel threads (one pool whose workers sleep between calls, see ``_c/parallel.c``).

Convolution at stride 1 with one group (``_c/dconv.c``): a direct convolution, no columns and no
BLAS call. Each sample's input is zero-padded into a flat layout where every kernel tap is one
contiguous run, and register-blocked micro-kernels (AVX-512, AVX2 or baseline, chosen at run time)
multiply those runs in place: the forward pass with its bias, ``δW`` and ``δb`` in one pass over
``(x, δ)``, and ``δx`` as the same forward kernel run on δ with the flipped kernel. Work is split
over samples on the kernel threads; nothing goes through OpenBLAS, whose spinning workers would
fight them. With few taps (``C·kh·kw`` small: an image model's first layer) the forward pass and
``δW``, ``δb`` run the thin kernels (``_c/thinconv.c``) instead: the input expanded along the
kernel's width only, so that every tap is a contiguous run over the NCHW output plane itself (no
padded width, no crop pass); ``δx`` stays with the direct kernels.

float32 3×3 convolutions at stride 1 with padding 1 on every side and at least 32 input and output
channels (VGG's but the first) run Winograd F(2×2, 3×3) instead (``_c/wino.c``), forward and ``δx``: 16
multiply-adds per 2×2 output tile and channel pair instead of 36, cache-blocked and fused (input
transform, 16 small products, output transform with the bias and ReLU, per block of tiles on one
thread). ``δW`` and ``δb`` too (``_c/winowg.c``): ``U[ξ] = Σ_tiles (A δ Aᵀ)[ξ]·(Bᵀ d B)[ξ]``,
``δW = Gᵀ U G``. See :func:`_winograd` for the rule.

Other convolutions (strided, grouped): ``X_col = im2col(x)`` in C (exact columns: any stride,
padding, dilation), one GEMM per group ``W_mat · X_col`` in BLAS (every product through
:func:`.gemm.matmul`, so Intel MKL runs them where :mod:`.blas` chose it), then one C pass adds the bias and
writes NCHW. Backward: one C pass turns δ into ``δ_mat`` (channel-major) and sums the bias
gradient; ``δW = δ_mat · X_colᵀ`` and ``δX_col = W_matᵀ · δ_mat`` in BLAS; col2im in C adds the
columns back into NCHW, one image plane per task.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from . import _lfk  # noqa: F401  (ImportError here means: not built; kernels/__init__ handles it)
from . import reference as ref
from .gemm import matmul, weight_grad
from .geometry import ConvGeometry, PoolGeometry
from .workspace import Scratch, shared

NAME = "compiled"
#: a layer whose columns hold at most this many values keeps them from forward to backward
KEEP_COLS_MAX = 1 << 21
#: otherwise the columns are built in blocks of samples of about this many values
CHUNK_ELEMS = 1 << 21
_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
#: direct convolutions with ``C·kh·kw`` up to this run the thin kernels (image models' first
#: layers) for their weight gradient, and up to ``THIN_FWD_K_MAX`` for their forward pass (measured
#: one thread, float32, batch 64: thin/direct 1.5–3.2× faster at K ≤ 27, 1.1–1.3× for the forward
#: pass and 1.0–1.1× for δW at K = 36–75, 0.7–0.76× at K = 144 (LeNet's conv 2), δW of a 1×1
#: kernel over 64 channels of 8×8 0.76×)
THIN_K_MAX = 32
THIN_FWD_K_MAX = 80


def _ok(*arrays: np.ndarray) -> bool:
    """All float32 or all float64 (the dtypes the C kernels have)."""
    dt = arrays[0].dtype
    return dt in _FLOATS and all(a.dtype == dt for a in arrays)


def _c(a: np.ndarray) -> np.ndarray:
    return a if a.flags.c_contiguous else np.ascontiguousarray(a)


# ---------------------------------------------------------------------- convolution
def _conv_geom(shape: tuple, geo: ConvGeometry, ho: int, wo: int) -> tuple:
    n, c, h, w = shape
    top, _, left, _ = geo.pads
    return (n, c, h, w, *geo.kernel, *geo.stride, *geo.dilation, top, left, ho, wo)


def _direct(geo: ConvGeometry) -> bool:
    """Whether ``_c/dconv.c`` runs the layer: stride 1, one group, and (for its input δ, the
    forward kernel over δ padded by ``d·(k − 1) − p``) no top/left padding wider than the
    kernel's reach."""
    (kh, kw), (dh, dw) = geo.kernel, geo.dilation
    top, _, left, _ = geo.pads
    return geo.stride == (1, 1) and geo.groups == 1 and top <= dh * (kh - 1) and left <= dw * (kw - 1)


def _thin(channels: int, geo: ConvGeometry, forward: bool) -> bool:
    """Whether a direct convolution runs the thin kernels (``_c/thinconv.c``) for its forward pass
    (a reduction depth ``K = C·k_h·k_w`` up to :data:`THIN_FWD_K_MAX`) or its weight gradient (up
    to :data:`THIN_K_MAX`)."""
    return channels * geo.kernel[0] * geo.kernel[1] <= (THIN_FWD_K_MAX if forward else THIN_K_MAX)


#: Winograd F(2×2, 3×3) runs a float32 3×3 "same" convolution when its input and output channel
#: counts both reach this; False: never (for A/B measurements)
WINOGRAD_MIN_CHANNELS: int | bool = 32


def _winograd(geo: ConvGeometry, x: np.ndarray) -> bool:
    """Whether Winograd F(2×2, 3×3) runs the forward pass and the input δ (``_c/wino.c``) and the
    weight gradient (``_c/winowg.c``) of a layer that ``_direct`` takes: float32, a 3×3 kernel,
    stride 1, dilation 1, one group, padding 1 on every side (so the input δ is the same kind of
    convolution, from ``O`` to ``C`` channels, with the flipped kernel), and ``min(C, O) ≥
    WINOGRAD_MIN_CHANNELS``. The transforms cost ``O(C + O)`` per tile against ``O(C·O)`` for the
    products: with few channels the direct convolution wins (direct time ÷ Winograd time, one core,
    64 samples: 1 → 16 at 28×28 0.6, 3 → 32 at 32×32 0.7–0.8, LeNet's 16 → 32 at 14×14
    1.0–1.06 but its δx 0.87–0.93 and the LeNet step 0.97; 32 → 32 at 32×32 1.44, 64 → 64 at
    16×16 1.81, 64 → 128 at 8×8 2.2; the weight gradient: 3 → 32 0.29, 16 → 32 at 14×14
    0.98, 32 → 32 1.66, 64 → 64 1.68, 64 → 128 2.34; see docs/performance.md). Its
    float32 results are about as close to the exact sums as the direct convolution's (forward and δx
    2–4e-7 of the output's scale on VGG's layers, δW 4–7e-7 against the direct 1–3e-7); float64
    stays direct."""
    c = x.shape[1]
    return (
        WINOGRAD_MIN_CHANNELS is not False
        and x.dtype == np.float32
        and geo.kernel == (3, 3)
        and geo.stride == (1, 1)
        and geo.dilation == (1, 1)
        and geo.groups == 1
        and geo.pads == (1, 1, 1, 1)
        and min(c, geo.out_channels) >= WINOGRAD_MIN_CHANNELS
    )


def _same3_geom(n: int, c: int, h: int, w: int, o: int) -> tuple:
    """The ``dconv_geom`` tuple of a 3×3, stride-1, padding-1 convolution from c to o channels."""
    return (n, c, h, w, o, h, w, 3, 3, 1, 1, 1, 1)


def _conv_stride1(
    x: np.ndarray,
    weight: np.ndarray,
    bias: Optional[np.ndarray],
    out: np.ndarray,
    geo: ConvGeometry,
    relu: bool = False,
    mask: Optional[np.ndarray] = None,
) -> None:
    """``out = W ⋆ x (+ b)`` (ReLU and its mask fused when asked) for a layer ``_direct`` takes:
    Winograd where :func:`_winograd` says so, the thin kernels for few taps (:func:`_thin`), else
    the direct convolution."""
    n, c, h, w = x.shape
    ho, wo = out.shape[2:]
    if _winograd(geo, x):
        _lfk.wino_fwd(x, weight, bias, out, _same3_geom(n, c, h, w, out.shape[1]), relu, mask)
    else:
        fwd = _lfk.thin_fwd if _thin(c, geo, True) else _lfk.dconv_fwd
        fwd(x, weight, bias, out, x.dtype == np.float64, _dconv_geom(x.shape, geo, ho, wo), relu, mask)


def _dconv_geom(shape: tuple, geo: ConvGeometry, ho: int, wo: int) -> tuple:
    n, c, h, w = shape
    top, _, left, _ = geo.pads
    return (n, c, h, w, geo.out_channels, ho, wo, *geo.kernel, *geo.dilation, top, left)


def _direct_backward(
    x: np.ndarray,
    delta: np.ndarray,
    weight: np.ndarray,
    geo: ConvGeometry,
    has_bias: bool,
    need_input_delta: bool,
) -> tuple[Optional[np.ndarray], np.ndarray, Optional[np.ndarray]]:
    """``δW = Σ_n δ_n ⋆ x_n`` and ``δb`` in one C pass (the thin kernels for a small ``C·kh·kw``,
    Winograd's ``δW = Gᵀ [Σ_tiles (A δ Aᵀ) ⊙ (Bᵀ x B)] G`` where :func:`_winograd` says so);
    ``δx`` as the direct forward kernel run on δ with the flipped kernel
    ``W'[c, o, i, j] = W[o, c, k_h − 1 − i, k_w − 1 − j]`` (a "full" correlation: δ padded by
    ``d·(k − 1) − p``; its reduction runs over the ``O`` output channels, so never thin)."""
    n, c, h, w = x.shape
    ho, wo = delta.shape[2:]
    o = geo.out_channels
    (kh, kw), (dh, dw) = geo.kernel, geo.dilation
    top, _, left, _ = geo.pads
    dt = delta.dtype
    f64 = dt == np.float64
    delta = _c(delta)
    gw = np.empty(weight.shape, dt)
    gb = np.empty(o, dt) if has_bias else None
    wino = _winograd(geo, x) and dt == np.float32
    if wino:  # U[ξ] = Σ_tiles (A δ Aᵀ)[ξ]·(Bᵀ d B)[ξ], δW = Gᵀ U G (_c/winowg.c)
        _lfk.wino_wgrad(x, delta, gw, gb, _same3_geom(n, c, h, w, o))
    else:
        wgrad = _lfk.thin_wgrad if _thin(c, geo, False) else _lfk.dconv_wgrad
        wgrad(x, delta, gw, gb, f64, _dconv_geom(x.shape, geo, ho, wo))
    d_in = None
    if need_input_delta:
        flipped = np.ascontiguousarray(weight.transpose(1, 0, 2, 3)[:, :, ::-1, ::-1])
        d_in = np.empty(x.shape, dt)
        if wino:  # the same "same" 3×3 convolution, o → c channels
            _lfk.wino_fwd(delta, flipped, None, d_in, _same3_geom(n, o, ho, wo, c), False)
        else:
            geom = (n, o, ho, wo, c, h, w, kh, kw, dh, dw, dh * (kh - 1) - top, dw * (kw - 1) - left)
            _lfk.dconv_fwd(delta, flipped, None, d_in, f64, geom, False)
    return d_in, gw, gb


def _blocks(n: int, per: int):
    for n0 in range(0, n, per):
        yield n0, min(per, n - n0)


def _block_size(n: int, k: int, p: int, keep: bool) -> int:
    """Samples per block: the whole batch when its columns are kept, else columns of about
    ``CHUNK_ELEMS`` values (the memory of a large layer stays bounded)."""
    return n if keep else max(1, min(n, CHUNK_ELEMS // (k * p)))


def conv2d_forward(
    x: np.ndarray,
    weight: np.ndarray,
    bias: Optional[np.ndarray],
    geo: ConvGeometry,
    scratch: Scratch,
    training: bool,
) -> tuple[np.ndarray, Any]:
    if not _ok(x, weight):
        return ref.conv2d_forward(x, weight, bias, geo, scratch, training)
    x = _c(x)
    n, c, h, w = x.shape
    ho, wo = geo.output_hw(h, w)
    g, o, p = geo.groups, geo.out_channels, ho * wo
    k = c * geo.kernel[0] * geo.kernel[1]
    f64 = x.dtype == np.float64
    b = None if bias is None else _c(bias)
    out = np.empty((n, o, ho, wo), x.dtype)
    if _direct(geo) and (b is None or b.dtype == x.dtype):
        # stride 1, one group: direct convolution (or Winograd), no columns and no BLAS call
        # (_c/dconv.c, _c/thinconv.c for few taps, _c/wino.c); the backward pass reads x again
        _conv_stride1(x, _c(weight), b, out, geo)
        return out, (("compiled", "direct", x.shape, x) if training else None)
    # Small layers keep their columns for δW in the layer's scratch (reused every step: a fresh
    # 7 MB array per step cost ~0.8 ms of page faults on LeNet's conv 2). Larger ones run in blocks
    # of samples in the shared work buffers and the backward pass rebuilds the columns from x:
    # keeping them all cost VGG's training 370 MiB of peak RSS (the NumPy kernels: 170).
    keep = training and k * n * p <= KEEP_COLS_MAX
    kept = None
    for n0, nc in _blocks(n, _block_size(n, k, p, keep)):
        cols = scratch.get("cols", (k, nc * p), x.dtype) if keep else shared("cols", (k, nc * p), x.dtype)
        _lfk.im2col(x[n0 : n0 + nc], cols, f64, _conv_geom((nc, c, h, w), geo, ho, wo))
        prod = shared("prod", (g, o // g, nc * p), x.dtype)
        matmul(weight.reshape(g, o // g, k // g), cols.reshape(g, k // g, nc * p), out=prod)
        _lfk.bias_nchw(prod, b, out[n0 : n0 + nc], f64, o, nc, p, False)
        kept = cols if keep else None
    return out, (("compiled", kept, x.shape, x) if training else None)


def conv2d_relu_forward(
    x: np.ndarray,
    weight: np.ndarray,
    bias: Optional[np.ndarray],
    geo: ConvGeometry,
    scratch: Scratch,
    training: bool,
) -> tuple[np.ndarray, Any, Optional[np.ndarray]]:
    """``ReLU(conv(x))`` with ReLU's mask ``[z ≥ 0]`` of the pre-activation (training). A direct
    convolution applies the ReLU in its output pass, writing the mask there: one pass and one
    array fewer than the convolution followed by ReLU, with the same values (``z`` is computed
    and rounded the same way). Other convolutions run the two kernels in turn."""
    if _ok(x, weight) and _direct(geo) and (bias is None or bias.dtype == x.dtype):
        x = _c(x)
        n, c, h, w = x.shape
        ho, wo = geo.output_hw(h, w)
        out = np.empty((n, geo.out_channels, ho, wo), x.dtype)
        mask = np.empty(out.shape, np.bool_) if training else None
        b = None if bias is None else _c(bias)
        _conv_stride1(x, _c(weight), b, out, geo, True, mask)
        return out, (("compiled", "direct", x.shape, x) if training else None), mask
    z, saved = conv2d_forward(x, weight, bias, geo, scratch, training)
    out, mask = relu_forward(z, training)
    return out, saved, mask


def conv2d_backward(
    saved: Any,
    delta: np.ndarray,
    weight: np.ndarray,
    geo: ConvGeometry,
    has_bias: bool,
    need_input_delta: bool,
) -> tuple[Optional[np.ndarray], np.ndarray, Optional[np.ndarray]]:
    if saved[0] != "compiled":
        return ref.conv2d_backward(saved, delta, weight, geo, has_bias, need_input_delta)
    _, kept, shape, x = saved
    if delta.dtype != x.dtype:  # e.g. a float64 δ into a float32 layer: computed in the layer's dtype
        delta = delta.astype(x.dtype)
    if isinstance(kept, str):  # "direct": the forward pass ran dconv
        return _direct_backward(x, delta, weight, geo, has_bias, need_input_delta)
    n, c, h, w = shape
    ho, wo = delta.shape[2:]
    g, o, p = geo.groups, geo.out_channels, ho * wo
    k = c * geo.kernel[0] * geo.kernel[1]
    dt = delta.dtype
    f64 = dt == np.float64
    delta = _c(delta)
    gw = np.zeros((g, o // g, k // g), dt)
    gb = np.zeros(o, dt) if has_bias else None
    part = np.empty(o, dt) if has_bias else None
    d_in = np.empty(shape, dt) if need_input_delta else None
    wmat = weight.reshape(g, o // g, k // g)
    for n0, nc in _blocks(n, _block_size(n, k, p, kept is not None)):
        length = nc * p
        dmat = shared("dmat", (o, length), dt)  # δ channel-major, and the bias gradient
        _lfk.nchw_mat(delta[n0 : n0 + nc], dmat, part, f64, o, nc, p)
        if gb is not None:
            gb += part
        cols = kept
        if cols is None:  # rebuilt from x
            cols = shared("cols", (k, length), dt)
            _lfk.im2col(x[n0 : n0 + nc], cols, f64, _conv_geom((nc, c, h, w), geo, ho, wo))
        dmat3 = dmat.reshape(g, o // g, length)
        gw += weight_grad(dmat3, cols.reshape(g, k // g, length))
        if d_in is not None:
            _col2im_block(dmat3, wmat, geo, d_in[n0 : n0 + nc], ho, wo)
    return d_in, gw, gb


def _col2im_block(
    dmat3: np.ndarray, wmat: np.ndarray, geo: ConvGeometry, d_in: np.ndarray, ho: int, wo: int
) -> None:
    """``δX_col = W_matᵀ · δ_mat`` in BLAS for one block of samples, added back into ``d_in``
    (NCHW, written whole) by col2im in C."""
    nc, c, h, w = d_in.shape
    g, _, length = dmat3.shape
    dcols = shared("dcols", (g, wmat.shape[2], length), dmat3.dtype)
    matmul(wmat.transpose(0, 2, 1), dmat3, out=dcols)
    _lfk.col2im(dcols, d_in, dmat3.dtype == np.float64, _conv_geom((nc, c, h, w), geo, ho, wo))


def conv2d_input_delta(delta: np.ndarray, weight: np.ndarray, geo: ConvGeometry, shape: tuple) -> np.ndarray:
    """``δx`` alone from ``δ`` (``ConvTranspose2d``'s forward pass): per block of samples, δ to
    ``δ_mat`` in C, the GEMM, col2im in C."""
    if not _ok(delta, weight):
        return ref.conv2d_input_delta(delta, weight, geo, shape)
    n, c = shape[:2]
    ho, wo = delta.shape[2:]
    g, o, p = geo.groups, geo.out_channels, ho * wo
    k = c * geo.kernel[0] * geo.kernel[1]
    delta = _c(delta)
    d_in = np.empty(shape, delta.dtype)
    wmat = _c(weight).reshape(g, o // g, k // g)
    for n0, nc in _blocks(n, _block_size(n, k, p, False)):
        dmat = shared("dmat", (o, nc * p), delta.dtype)
        _lfk.nchw_mat(delta[n0 : n0 + nc], dmat, None, delta.dtype == np.float64, o, nc, p)
        _col2im_block(dmat.reshape(g, o // g, nc * p), wmat, geo, d_in[n0 : n0 + nc], ho, wo)
    return d_in


# ---------------------------------------------------------------------- pooling
def _pool_geom(shape: tuple, geo: PoolGeometry) -> tuple:
    n, c, h, w = shape
    return (n * c, h, w, *geo.kernel, *geo.stride, *geo.padding, *geo.out_hw)


def maxpool2d_forward(x: np.ndarray, geo: PoolGeometry, training: bool) -> tuple[np.ndarray, Any]:
    if not _ok(x):
        return ref.maxpool2d_forward(x, geo, training)
    x = _c(x)
    n, c = x.shape[:2]
    out = np.empty((n, c, *geo.out_hw), x.dtype)
    winner = np.empty(out.shape, ref.pool.winner_dtype(geo)) if training else None
    idx32 = winner is not None and winner.dtype == np.int32
    _lfk.maxpool_fwd(x, out, winner, idx32, x.dtype == np.float64, _pool_geom(x.shape, geo))
    return out, winner


def _pool2(geo: PoolGeometry) -> bool:
    """MaxPool2d(2)'s windows: 2×2, stride 2, no padding, floor mode (``_c/pool2.c``'s SIMD
    kernels; an odd last row or column is left out of every window)."""
    (h, w), (ho, wo) = geo.in_hw, geo.out_hw
    return geo.kernel == geo.stride == (2, 2) and geo.padding == (0, 0) and (ho, wo) == (h // 2, w // 2)


def maxpool2d_backward(
    delta: np.ndarray,
    winner: np.ndarray,
    shape: tuple,
    geo: PoolGeometry,
    relu_mask: Optional[np.ndarray] = None,
) -> np.ndarray:
    """``δx[n, c, s_h·a + i*, s_w·b + j*] += δ[n, c, a, b]`` with ``i*·k_w + j* = winner[n, c, a,
    b]``, 0 where no window won (padding cropped); with ``relu_mask`` (bool, ``shape``: the
    ``[z ≥ 0]`` of a ReLU before the pool), ``δx ⊙ relu_mask``, the ReLU's backward too — the
    values of :func:`relu_backward` after the pool's, bit for bit. 2×2 / stride 2 windows run
    ``_c/pool2.c`` (one dense SIMD write of ``δx``: 0.1 ms for LeNet's 64×16×28×28 where NumPy's
    four strided products took 0.55; the mask is applied to each row right after it is written);
    other tiling windows keep the NumPy kernel's strided products (the generic C loop zeroes
    ``δx`` first and scatters: not faster there); overlapping or padded windows run the generic C
    loop (then the mask in a second C pass)."""
    fold = relu_mask is not None and relu_mask.dtype == np.bool_ and relu_mask.shape == tuple(shape)
    if not _ok(delta) or (geo.tiles() and not _pool2(geo)) or (relu_mask is not None and not fold):
        d_in = ref.maxpool2d_backward(delta, winner, shape, geo)
        return d_in if relu_mask is None else relu_backward(d_in, relu_mask)
    d_in = np.empty(shape, delta.dtype)
    idx32 = winner.dtype == np.int32
    mask = None if relu_mask is None else _c(relu_mask)
    _lfk.maxpool_bwd(
        _c(delta), _c(winner), d_in, idx32, delta.dtype == np.float64, _pool_geom(shape, geo), mask
    )
    return d_in


avgpool2d_forward = ref.avgpool2d_forward
avgpool2d_backward = ref.avgpool2d_backward


# ---------------------------------------------------------------------- element-wise
def relu_forward(x: np.ndarray, training: bool) -> tuple[np.ndarray, Optional[np.ndarray]]:
    if not _ok(x) or not x.flags.c_contiguous:
        return ref.relu_forward(x, training)
    out = np.empty(x.shape, x.dtype)
    mask = np.empty(x.shape, np.bool_) if training else None
    _lfk.relu_fwd(x, out, mask, x.dtype == np.float64, x.size)
    return out, mask


def relu_backward(delta: np.ndarray, mask: np.ndarray) -> np.ndarray:
    if not _ok(delta) or mask.dtype != np.bool_:
        return ref.relu_backward(delta, mask)
    out = np.empty(delta.shape, delta.dtype)
    _lfk.relu_bwd(_c(delta), _c(mask), out, delta.dtype == np.float64, delta.size)
    return out


def gelu_forward(
    x: np.ndarray, approximate: str, training: bool
) -> tuple[np.ndarray, Optional[tuple[np.ndarray, np.ndarray]]]:
    if not _ok(x):
        return ref.gelu_forward(x, approximate, training)
    x = _c(x)
    out = np.empty(x.shape, x.dtype)
    aux = np.empty(x.shape, x.dtype) if training else None
    _lfk.gelu_fwd(x, out, aux, x.dtype == np.float64, x.size, approximate == "tanh")
    return out, ((x, aux) if training else None)


def gelu_backward(delta: np.ndarray, saved: tuple[np.ndarray, np.ndarray], approximate: str) -> np.ndarray:
    x, aux = saved
    if not _ok(delta, x, aux):
        return ref.gelu_backward(delta, saved, approximate)
    out = np.empty(delta.shape, delta.dtype)
    _lfk.gelu_bwd(
        _c(delta), _c(x), _c(aux), out, delta.dtype == np.float64, delta.size, approximate == "tanh"
    )
    return out


# ---------------------------------------------------------------------- dense layer, optimizer
def linear_forward(
    x: np.ndarray, weight: np.ndarray, bias: Optional[np.ndarray], training: bool, relu: bool
) -> tuple[np.ndarray, Optional[np.ndarray]]:
    """The reference's product ``P = W · xᵀ`` (``(out, batch)``, C-ordered), then one C pass for
    the rest. Training: ``_c/dense.c`` writes ``o = Pᵀ + b`` C-ordered (a tiled transpose), with
    the ReLU and its mask when ``relu``, where the reference ran a transposing copy, the bias and
    the ReLU as three passes (the same values, bit for bit). Inference: the bias (and the ReLU)
    in place on ``P``'s rows (one vectorised pass), returning the transposed view as
    the reference does."""
    if not _ok(x, weight) or (bias is not None and bias.dtype != x.dtype):
        return ref.linear_forward(x, weight, bias, training, relu)
    prod = matmul(weight, x.T)
    if not prod.flags.c_contiguous:  # MKL or np.matmul hand back C order; kept safe
        prod = np.ascontiguousarray(prod)
    o, n = prod.shape
    f64 = x.dtype == np.float64
    b = None if bias is None else _c(bias)
    if not training:
        if b is not None or relu:
            _lfk.dense_rows(b, prod, f64, o, n, relu)
        return prod.T, None
    out = np.empty((n, o), x.dtype)
    mask = np.empty((n, o), np.bool_) if relu else None
    _lfk.dense_out(prod, b, out, mask, f64, o, n, relu)
    return out, mask


def relu_backward_colsum(delta: np.ndarray, mask: np.ndarray, colsum: Optional[np.ndarray]) -> np.ndarray:
    """``δz = δ ⊙ mask`` and the column sums ``Σ_batch δz`` in one C pass (``_c/dense.c``),
    summed row after row from 0 as NumPy's ``np.sum(δz, axis=0)``: bit-identical to the
    reference's two passes."""
    if (
        not _ok(delta)
        or delta.ndim != 2
        or mask.dtype != np.bool_
        or mask.shape != delta.shape
        or (colsum is not None and (colsum.dtype != delta.dtype or not colsum.flags.c_contiguous))
    ):
        return ref.relu_backward_colsum(delta, mask, colsum)
    n, o = delta.shape
    dz = np.empty((n, o), delta.dtype)
    _lfk.dense_relu_bwd(_c(delta), _c(mask), dz, colsum, delta.dtype == np.float64, n, o)
    return dz


def sub_scaled(w: np.ndarray, u: np.ndarray, c: Any, spare: Optional[np.ndarray]) -> None:
    """``w ← w − c·u`` in one C pass (``_c/update.c``) with the reference's roundings: ``c·u``
    rounded to the arrays' dtype, then the subtraction (no fused multiply-add). A Python number
    ``c`` is rounded to that dtype first, as NumPy does; a NumPy scalar follows NumPy's type
    promotion (a float64 ``c`` makes the float32 product in double, then rounds it)."""
    if (
        not _ok(w, u)
        or w.shape != u.shape
        or not (w.flags.c_contiguous and u.flags.c_contiguous)
        or not isinstance(c, (float, int, np.floating))
        or isinstance(c, bool)
    ):
        return ref.sub_scaled(w, u, c, spare)
    wide = type(c) not in (float, int) and np.result_type(w.dtype, c) != w.dtype
    _lfk.sub_scaled(w, u, float(c), wide, w.dtype == np.float64, w.size)


def surely_finite(arr: np.ndarray) -> bool:
    """True when the float array ``arr`` holds no NaN and no infinity: one C pass over its
    bits (``_c/finite.c``: exponent bits all ones), exact, where the reference's dot product
    also answers False for finite values large enough to overflow ``Σ x²``."""
    if not _ok(arr) or not (arr.flags.c_contiguous or arr.flags.f_contiguous):
        return ref.surely_finite(arr)
    return bool(_lfk.all_finite(arr if arr.flags.c_contiguous else arr.T, arr.dtype == np.float64, arr.size))


# ---------------------------------------------------------------------- batch norm
def batchnorm_forward(
    x3: np.ndarray, gamma: Optional[np.ndarray], beta: Optional[np.ndarray], eps: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    if not _ok(x3):
        return ref.batchnorm_forward(x3, gamma, beta, eps)
    out, _, xhat, mean, var, inv_std = _bn_forward(x3, gamma, beta, eps, False)
    return out, xhat, mean, var, inv_std


def batchnorm_relu_forward(
    x3: np.ndarray, gamma: Optional[np.ndarray], beta: Optional[np.ndarray], eps: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Batch norm and the ReLU after it in one C pass: ``ReLU(γ·x̂ + β)`` and its mask written in
    the normalisation's output pass (the same values as the two kernels in turn)."""
    if not _ok(x3):
        return ref.batchnorm_relu_forward(x3, gamma, beta, eps)
    return _bn_forward(x3, gamma, beta, eps, True)


def _bn_forward(
    x3: np.ndarray, gamma: Optional[np.ndarray], beta: Optional[np.ndarray], eps: float, relu: bool
) -> tuple[np.ndarray, Optional[np.ndarray], np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    x3 = _c(x3)
    n, c, length = x3.shape
    dt = x3.dtype
    out, xhat = np.empty(x3.shape, dt), np.empty(x3.shape, dt)
    mask = np.empty(x3.shape, np.bool_) if relu else None
    mean, var, inv_std = np.empty(c, dt), np.empty(c, dt), np.empty(c, dt)
    g = None if gamma is None else _c(gamma.astype(dt, copy=False))
    b = None if beta is None else _c(beta.astype(dt, copy=False))
    f64 = dt == np.float64
    _lfk.bn_fwd(x3, out, xhat, g, b, mean, var, inv_std, float(eps), f64, n, c, length, mask)
    return out, mask, xhat, mean, var, inv_std


def batchnorm_backward(
    d3: np.ndarray,
    xhat3: np.ndarray,
    gain: np.ndarray,
    need_input_delta: bool,
    relu_mask: Optional[np.ndarray] = None,
) -> tuple[Optional[np.ndarray], np.ndarray, np.ndarray]:
    masked = relu_mask is not None and relu_mask.dtype == np.bool_
    if not _ok(d3, xhat3) or (not need_input_delta and not masked) or (relu_mask is not None and not masked):
        # the two sums alone: NumPy's einsum measured faster (0.50 vs 0.94 ms for 64×32×32×32);
        # with δx (or a ReLU's mask to apply) the one fused C pass wins (1.93 vs 2.42 ms)
        return ref.batchnorm_backward(d3, xhat3, gain, need_input_delta, relu_mask)
    n, c, length = d3.shape
    dt = d3.dtype
    d_in = np.empty(d3.shape, dt) if need_input_delta else None
    sum_d, sum_dx = np.empty(c, dt), np.empty(c, dt)
    _lfk.bn_bwd(
        _c(d3),
        _c(xhat3),
        _c(gain.astype(dt, copy=False)),
        d_in,
        sum_d,
        sum_dx,
        dt == np.float64,
        n,
        c,
        length,
        None if relu_mask is None else _c(relu_mask),
    )
    return d_in, sum_d, sum_dx
