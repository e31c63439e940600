"""Pooling over channels-first images: max, average, global average.

The maths is here; the window machinery is in ``kernels`` (``maxpool2d_*`` / ``avgpool2d_*`` of
the active kernel set: the NumPy set works window offset by window offset over strided views,
the compiled set runs max pooling in C, one image plane per task).
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any, Optional, Union

import numpy as np

from .. import kernels
from ..core.layer import Layer, register_layer
from ..errors import ConfigError, UnsupportedTorchOption
from ..kernels.geometry import PoolGeometry
from ..numbers import is_exact
from .conv import IntOrPair, compact, pair


def pool_output_size(size: int, kernel: int, stride: int, padding: int, ceil_mode: bool) -> int:
    """PyTorch's rule: ``⌊(size + 2p − k) / s⌋ + 1`` (``⌈⌉`` in ceil mode), minus one in ceil
    mode if the last window would start in the right/bottom padding (or beyond)."""
    span = size + 2 * padding - kernel
    out = (span + (stride - 1 if ceil_mode else 0)) // stride + 1
    if ceil_mode and (out - 1) * stride >= size + padding:
        out -= 1
    return out


class _Pool2d(Layer):
    """Shared machinery of MaxPool2d and AvgPool2d: arguments, output size, padded views."""

    supports_exact = True

    def __init__(
        self,
        kernel_size: IntOrPair,
        stride: Optional[IntOrPair] = None,
        padding: IntOrPair = 0,
        ceil_mode: bool = False,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        self.kernel_size = pair(kernel_size, "kernel_size", name)
        self.stride = self.kernel_size if stride is None else pair(stride, "stride", name)
        self.padding = pair(padding, "padding", name, minimum=0)
        for p, k in zip(self.padding, self.kernel_size, strict=True):
            if 2 * p > k:
                raise ConfigError(
                    f"{name}: padding {self.padding} must be at most half the kernel size "
                    f"{self.kernel_size} (a window must never be only padding)"
                )
        self.ceil_mode = bool(ceil_mode)
        self._cache: Any = None

    def _cache_attrs(self) -> tuple[str, ...]:
        return ("_cache",)

    def _output_hw(self, h: int, w: int) -> tuple[int, int]:
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        ho = pool_output_size(h, kh, sh, ph, self.ceil_mode)
        wo = pool_output_size(w, kw, sw, pw, self.ceil_mode)
        if ho < 1 or wo < 1:
            raise self.shape_error(
                f"the window {kh}×{kw} is larger than the padded input "
                f"{h + 2 * ph}×{w + 2 * pw} (input {h}×{w}, padding {self.padding})"
            )
        return ho, wo

    def _check_shape(self, shape: tuple) -> None:
        if len(shape) != 4:
            raise self.shape_error(
                f"expected input of shape (batch, channels, height, width), got {tuple(shape)}"
            )

    def output_shape(self, input_shape: tuple) -> tuple:
        self._check_shape((None, *input_shape))
        return (input_shape[0], *self._output_hw(input_shape[1], input_shape[2]))

    def flops(self, input_shape: tuple) -> int:
        """One operation (a comparison or an addition) per window element and output value."""
        kh, kw = self.kernel_size
        return math.prod(self.output_shape(input_shape)) * kh * kw

    def _saved_for(self, delta_out: np.ndarray) -> tuple:
        """The forward pass's cache ``(aux, input shape, H_out, W_out)``, once checked that
        backward may run and that δ has the output's shape."""
        self.check_trainable(self._cache)
        _, (n, c, _, _), ho, wo = self._cache
        if delta_out.shape != (n, c, ho, wo):
            raise self.shape_error(f"δ has shape {tuple(delta_out.shape)}, expected {(n, c, ho, wo)}")
        return self._cache

    def _geometry(self, h: int, w: int, ho: int, wo: int) -> PoolGeometry:
        return PoolGeometry(self.kernel_size, self.stride, self.padding, (h, w), (ho, wo))

    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = {"kernel_size": compact(self.kernel_size)}
        if self.stride != self.kernel_size:
            config["stride"] = compact(self.stride)
        if self.padding != (0, 0):
            config["padding"] = compact(self.padding)
        if self.ceil_mode:
            config["ceil_mode"] = True
        return config


@register_layer
class MaxPool2d(_Pool2d):
    """Max pooling, PyTorch's ``MaxPool2d``: each output is the largest input of its window.

    Forward: ``o[n, c, a, b] = max_{i<kh, j<kw} x̃[n, c, s_h·a + i, s_w·b + j]``, where ``x̃`` is
    the input with a border of −∞ (padding, and in ceil mode the missing part of the partial
    border windows, so those windows simply hold fewer pixels: docs/conventions.md, 'Max pooling':
    a 7×7 map gives 4×4 with 2×2 windows, stride 2 and ``ceil_mode=True``).

    Backward: each window routes its δ to the one input that was its maximum, 0 elsewhere;
    ``δx[n, c, s_h·a + i*, s_w·b + j*] += δ[n, c, a, b]`` with ``(i*, j*)`` the arg-max of window
    ``(a, b)``. On ties the first maximum in row-major order inside the window wins, as in PyTorch.
    An input that is the maximum of several overlapping windows receives the sum of their δ.

    Args:
        kernel_size: window size ``k`` or ``(kh, kw)``.
        stride: step between windows; default ``kernel_size``.
        padding: implicit −∞ border on each side, at most half the kernel size.
        ceil_mode: keep the partial windows at the bottom/right border (round the output size
            up) instead of dropping them.

    Input shape: ``(batch, channels, H, W)``. Output shape: ``(batch, channels, H_out, W_out)``
    with ``H_out = ⌊(H + 2p − k) / s⌋ + 1`` (``⌈⌉`` in ceil mode, as long as the last window
    starts inside the image or its top/left padding).

    How it runs: in the training phase the forward pass keeps, per output, the index (a uint8)
    of the window offset that won (the same routing in both kernel sets); the backward pass adds
    δ at the input that index names. No arithmetic other than comparisons: it runs exactly on
    ``Fraction`` values (NumPy kernels).
    """

    torch_twins = ("MaxPool2d",)

    @classmethod
    def from_torch_module(cls, module: Any) -> Layer:
        if module.dilation not in (1, (1, 1)):
            raise UnsupportedTorchOption(f"dilation={module.dilation}")
        if module.return_indices:
            raise UnsupportedTorchOption("return_indices=True")
        return cls(
            module.kernel_size, stride=module.stride, padding=module.padding, ceil_mode=module.ceil_mode
        )

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._check_shape(x.shape)
        n, c, h, w = x.shape
        ho, wo = self._output_hw(h, w)
        out, winner = kernels.ops().maxpool2d_forward(x, self._geometry(h, w, ho, wo), self.training)
        if self.training:
            self._cache = (winner, tuple(x.shape), ho, wo)
        return out

    def backward(self, delta_out: np.ndarray, need_input_delta: bool = True) -> np.ndarray:
        winner, shape, ho, wo = self._saved_for(delta_out)
        geo = self._geometry(shape[2], shape[3], ho, wo)
        return kernels.ops().maxpool2d_backward(delta_out, winner, shape, geo)

    def backward_after_relu(
        self, delta_out: np.ndarray, relu_mask: np.ndarray, need_input_delta: bool = True
    ) -> Optional[np.ndarray]:
        """:meth:`backward`, then the backward pass of the ``ReLU`` whose output this pool read,
        in one pass: with ``relu_mask = [z ≥ 0]`` (the ReLU's mask, the pool input's shape; z
        the ReLU's input, ReLU'(0) = 1)

            δz = route(δ) ⊙ [z ≥ 0],   route(δ)[window's winner] = δ[window], 0 elsewhere,

        the same values as ``ReLU.backward(backward(δ))`` bit for bit (a product by the mask, as
        ``relu_backward``). ``Sequential`` calls it for a ReLU → MaxPool2d pair
        (``_relu_folds``)."""
        winner, shape, ho, wo = self._saved_for(delta_out)
        if relu_mask.shape != shape:
            raise self.shape_error(f"ReLU mask has shape {tuple(relu_mask.shape)}, expected {shape}")
        if not need_input_delta:  # no parameters: nothing else to do
            return None
        geo = self._geometry(shape[2], shape[3], ho, wo)
        return kernels.ops().maxpool2d_backward(delta_out, winner, shape, geo, relu_mask)

    def summary_name(self) -> str:
        return "MaxPool2d(" + ", ".join(f"{k}={v!r}" for k, v in self.get_config().items()) + ")"


@register_layer
class AvgPool2d(_Pool2d):
    """Average pooling, PyTorch's ``AvgPool2d``: each output is the mean of its window.

    Forward: ``o[n, c, a, b] = (1 / m_ab) · Σ_{i<kh, j<kw} x̃[n, c, s_h·a + i, s_w·b + j]`` with
    ``x̃`` zero-padded. The divisor ``m_ab`` is, as in PyTorch, the window's size clipped to the
    padded image (``count_include_pad=True``: zero padding counts, the part of a ceil-mode window
    beyond the padding does not) or the number of real input pixels in the window
    (``count_include_pad=False``).

    Backward: every pixel of window ``(a, b)`` receives ``δ[n, c, a, b] / m_ab`` (summed over the
    windows that hold it): ``δx̃[n, c, s_h·a + i, s_w·b + j] += δ[n, c, a, b] / m_ab``.

    Args:
        kernel_size, stride, padding, ceil_mode: as :class:`MaxPool2d` (zero padding).
        count_include_pad: count the zero padding in the divisor (default True, as PyTorch).

    Input shape: ``(batch, channels, H, W)``. Output shape: as :class:`MaxPool2d`.
    Exact arithmetic: supported (sums and a division by an integer).
    """

    torch_twins = ("AvgPool2d",)

    def __init__(
        self,
        kernel_size: IntOrPair,
        stride: Optional[IntOrPair] = None,
        padding: IntOrPair = 0,
        ceil_mode: bool = False,
        count_include_pad: bool = True,
    ) -> None:
        super().__init__(kernel_size, stride, padding, ceil_mode)
        self.count_include_pad = bool(count_include_pad)

    @classmethod
    def from_torch_module(cls, module: Any) -> Layer:
        if getattr(module, "divisor_override", None) is not None:  # AvgPool1d has none
            raise UnsupportedTorchOption(f"divisor_override={module.divisor_override}")
        return super().from_torch_module(module)

    def _divisor(self, h: int, w: int, ho: int, wo: int, dtype: np.dtype) -> Union[np.ndarray, Any]:
        """``m_ab`` as an ``(H_out, W_out)`` array (rows × columns of each window that count), or
        one scalar when every window has the same count."""
        counts = []
        for size, out, k, s, p in zip(
            (h, w), (ho, wo), self.kernel_size, self.stride, self.padding, strict=True
        ):
            start = np.arange(out) * s - p
            end = np.minimum(start + k, size + p)
            if not self.count_include_pad:
                start, end = np.maximum(start, 0), np.minimum(end, size)
            counts.append(end - start)
        m = np.outer(counts[0], counts[1])
        if np.all(m == m[0, 0]):
            return Fraction(int(m[0, 0])) if is_exact(dtype) else dtype.type(m[0, 0])
        if is_exact(dtype):
            return np.array([[Fraction(int(v)) for v in row] for row in m], dtype=object)
        return m.astype(dtype)

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._check_shape(x.shape)
        n, c, h, w = x.shape
        ho, wo = self._output_hw(h, w)
        divisor = self._divisor(h, w, ho, wo, x.dtype)
        out = kernels.ops().avgpool2d_forward(x, self._geometry(h, w, ho, wo), divisor)
        if self.training:
            self._cache = (divisor, x.shape, ho, wo)
        return out

    def backward(self, delta_out: np.ndarray, need_input_delta: bool = True) -> np.ndarray:
        divisor, shape, ho, wo = self._saved_for(delta_out)
        geo = self._geometry(shape[2], shape[3], ho, wo)
        return kernels.ops().avgpool2d_backward(delta_out, divisor, shape, geo)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        if not self.count_include_pad:
            config["count_include_pad"] = False
        return config

    def summary_name(self) -> str:
        return "AvgPool2d(" + ", ".join(f"{k}={v!r}" for k, v in self.get_config().items()) + ")"


@register_layer
class GlobalAvgPool2d(Layer):
    """Global average pooling: the mean of each channel over the whole image.

    Forward: ``o[n, c] = (1 / (H·W)) · Σ_{h,w} x[n, c, h, w]``.
    Backward: every pixel receives an equal share, ``δx[n, c, h, w] = δ[n, c] / (H·W)``.

    Args:
        keepdims: keep the spatial axes as ``1×1`` (output ``(batch, C, 1, 1)``, like PyTorch's
            ``AdaptiveAvgPool2d(1)``). Default False: output ``(batch, C)``, ready for a Linear
            layer (Keras' ``GlobalAveragePooling2D``).

    Input shape: ``(batch, channels, H, W)``. Output shape: ``(batch, channels)`` or
    ``(batch, channels, 1, 1)``. Exact arithmetic: supported.
    """

    supports_exact = True

    def __init__(self, keepdims: bool = False) -> None:
        super().__init__()
        self.keepdims = bool(keepdims)
        self._cache: Optional[tuple] = None

    def _cache_attrs(self) -> tuple[str, ...]:
        return ("_cache",)

    def forward(self, x: np.ndarray) -> np.ndarray:
        if x.ndim != 4:
            raise self.shape_error(
                f"expected input of shape (batch, channels, height, width), got {tuple(x.shape)}"
            )
        n, c, h, w = x.shape
        out = x.reshape(n, c, h * w).sum(axis=2)
        out /= Fraction(h * w) if x.dtype == object else h * w
        if self.training:
            self._cache = tuple(x.shape)
        return out.reshape(n, c, 1, 1) if self.keepdims else out

    def backward(self, delta_out: np.ndarray, need_input_delta: bool = True) -> np.ndarray:
        self.check_trainable(self._cache)
        n, c, h, w = self._cache
        expected = (n, c, 1, 1) if self.keepdims else (n, c)
        if delta_out.shape != expected:
            raise self.shape_error(f"δ has shape {tuple(delta_out.shape)}, expected {expected}")
        share = delta_out.reshape(n, c, 1, 1) / (Fraction(h * w) if delta_out.dtype == object else h * w)
        d_in = np.empty((n, c, h, w), dtype=share.dtype)
        d_in[...] = share
        return d_in

    def output_shape(self, input_shape: tuple) -> tuple:
        if len(input_shape) != 3:
            raise self.shape_error(f"expected inputs of shape (channels, height, width), got {input_shape}")
        return (input_shape[0], 1, 1) if self.keepdims else (input_shape[0],)

    def flops(self, input_shape: tuple) -> int:
        """One addition per input value (the division per channel is not counted)."""
        return math.prod(input_shape)

    def to_torch_module(self, nn: Any) -> Any:
        if self.keepdims:
            return nn.AdaptiveAvgPool2d(1)
        return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())

    def get_config(self) -> dict[str, Any]:
        return {"keepdims": True} if self.keepdims else {}

    def summary_name(self) -> str:
        return "GlobalAvgPool2d(keepdims=True)" if self.keepdims else "GlobalAvgPool2d()"


def adaptive_windows(size: int, out: int) -> list[tuple[int, int]]:
    """PyTorch's adaptive windows of ``out`` outputs over ``size`` inputs: window ``a`` runs from
    ``⌊a·size/out⌋`` to ``⌈(a + 1)·size/out⌉`` (excluded)."""
    return [((a * size) // out, -(-(a + 1) * size // out)) for a in range(out)]


@register_layer
class AdaptiveAvgPool2d(Layer):
    """PyTorch's ``AdaptiveAvgPool2d``: average pooling to a chosen output size, whatever the
    input's.

    Windows: output row ``a`` of ``H_out`` averages the input rows ``h0_a = ⌊a·H/H_out⌋`` to
    ``h1_a = ⌈(a + 1)·H/H_out⌉`` (excluded), and likewise for the columns; when ``H_out`` does
    not divide ``H`` the windows have different sizes and neighbours may share a row.

    Forward: ``o[n, c, a, b] = (1 / (r_a·k_b)) · Σ_{h0_a ≤ h < h1_a} Σ_{w0_b ≤ w < w1_b} x[n, c, h, w]``
    with ``r_a = h1_a − h0_a`` rows and ``k_b = w1_b − w0_b`` columns: with the pooling matrices
    ``P_h[a, h] = 1/r_a`` on window ``a``'s rows (0 elsewhere) and ``P_w`` likewise, ``o = P_h · x ·
    P_wᵀ`` for every ``(n, c)``.

    Backward: ``δx = P_hᵀ · δ · P_w``: each pixel receives ``δ[n, c, a, b] / (r_a·k_b)`` from every
    window ``(a, b)`` that holds it.

    Args:
        output_size: ``m`` or ``(m_h, m_w)``; ``None`` in the pair keeps that axis's input size.
            ``1`` is global average pooling keeping the ``1×1`` axes (see :class:`GlobalAvgPool2d`).

    Input shape: ``(batch, C, H, W)``. Output shape: ``(batch, C, m_h, m_w)``. Exact arithmetic: yes.
    """

    supports_exact = True
    torch_twins = ("AdaptiveAvgPool2d",)

    def __init__(self, output_size: Union[int, tuple, list] = 1) -> None:
        super().__init__()
        items = output_size if isinstance(output_size, (tuple, list)) else (output_size, output_size)
        ok = len(items) == 2 and all(
            v is None or (isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 1)
            for v in items
        )
        if not ok or output_size is None:
            raise ConfigError(
                "AdaptiveAvgPool2d: output_size must be a positive int or a pair of them (None in "
                f"the pair keeps the input's size), got {output_size!r}"
            )
        self.output_size: Union[int, tuple] = (
            tuple(None if v is None else int(v) for v in items)
            if isinstance(output_size, (tuple, list))
            else int(output_size)
        )
        self._cache: Optional[tuple] = None

    def _cache_attrs(self) -> tuple[str, ...]:
        return ("_cache",)

    def _out_hw(self, h: int, w: int) -> tuple[int, int]:
        size = self.output_size if isinstance(self.output_size, tuple) else (self.output_size,) * 2
        return (h if size[0] is None else size[0], w if size[1] is None else size[1])

    def _check_shape(self, shape: tuple) -> None:
        if len(shape) != 4:
            raise self.shape_error(
                f"expected input of shape (batch, channels, height, width), got {tuple(shape)}"
            )

    @staticmethod
    def _matrix(size: int, out: int, dtype: np.dtype) -> np.ndarray:
        """``P[a, h] = 1/r_a`` on window ``a``'s rows, shape ``(out, size)``, in ``dtype``."""
        exact = is_exact(dtype)
        p = np.full((out, size), Fraction(0), dtype=object) if exact else np.zeros((out, size), dtype=dtype)
        for a, (start, end) in enumerate(adaptive_windows(size, out)):
            p[a, start:end] = Fraction(1, end - start) if exact else 1 / (end - start)
        return p

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._check_shape(x.shape)
        h, w = x.shape[2:]
        ho, wo = self._out_hw(h, w)
        ph, pw = self._matrix(h, ho, x.dtype), self._matrix(w, wo, x.dtype)
        if self.training:
            self._cache = (tuple(x.shape), ph, pw)
        return np.ascontiguousarray(ph @ (x @ pw.T))

    def backward(self, delta_out: np.ndarray, need_input_delta: bool = True) -> np.ndarray:
        self.check_trainable(self._cache)
        shape, ph, pw = self._cache
        expected = (*shape[:2], ph.shape[0], pw.shape[0])
        if delta_out.shape != expected:
            raise self.shape_error(f"δ has shape {tuple(delta_out.shape)}, expected {expected}")
        return np.ascontiguousarray(ph.T @ (delta_out @ pw))

    def output_shape(self, input_shape: tuple) -> tuple:
        self._check_shape((None, *input_shape))
        return (input_shape[0], *self._out_hw(input_shape[1], input_shape[2]))

    def flops(self, input_shape: tuple) -> int:
        """One addition per window element: ``C · Σ_a r_a · Σ_b k_b``."""
        c, h, w = input_shape
        ho, wo = self._out_hw(h, w)
        rows = sum(e - s for s, e in adaptive_windows(h, ho))
        return c * rows * sum(e - s for s, e in adaptive_windows(w, wo))

    def get_config(self) -> dict[str, Any]:
        size = self.output_size
        return {"output_size": list(size) if isinstance(size, tuple) else size}

    def to_torch_module(self, nn: Any) -> Any:
        return nn.AdaptiveAvgPool2d(self.output_size)

    def summary_name(self) -> str:
        return f"AdaptiveAvgPool2d({self.output_size!r})"


__all__ = ["AdaptiveAvgPool2d", "AvgPool2d", "GlobalAvgPool2d", "MaxPool2d"]
