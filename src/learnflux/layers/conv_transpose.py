"""Transposed 2-D convolution, PyTorch's ``ConvTranspose2d``: the adjoint of a ``Conv2d``, run on
the same kernels. Its forward pass is a convolution's input-δ pass (``conv2d_input_delta``); its
backward pass is a convolution's forward pass (the input δ) and weight gradient."""

from __future__ import annotations

import math
from typing import Any, Optional

import numpy as np

from .. import kernels
from ..core.layer import Layer, register_layer
from ..errors import ConfigError
from ..init import initialize
from ..kernels.geometry import ConvGeometry
from ..kernels.reference.conv import zeros_like_dtype
from ..kernels.workspace import Scratch
from ..seeding import RngLike
from .conv import IntOrPair, channel_args, channels, conv_config, conv_from_torch, conv_summary, pair


@register_layer
class ConvTranspose2d(Layer):
    """Transposed convolution ("fractionally strided", "deconvolution"), PyTorch's
    ``ConvTranspose2d``: every input pixel spreads its value, weighted by the kernel, over a
    window of the output; windows ``s`` pixels apart overlap and add.

    It is the adjoint of ``C = Conv2d(out_channels → in_channels, k, stride, padding, dilation,
    groups)`` with the same weight tensor: ``forward`` is ``C``'s input-δ pass and ``backward``
    is ``C``'s forward pass plus its weight gradient. Forward, for input channel ``c`` of group
    ``g`` (``C_g = out_channels/groups`` output channels ``o = g·C_g + o'``), on the output
    ``ỹ`` padded by ``p`` on each side::

        ỹ[n, o, s_h·a + d_h·i, s_w·b + d_w·j] += W[c, o', i, j] · x[n, c, a, b]   (all a, b, i, j, c ∈ g)
        y = ỹ with its padding cut off (and ``output_padding`` rows/columns added at the bottom/right),
        y[n, o] += bias[o]

    Backward, with ``δ = ∂Loss/∂y`` (padded with zeros to ``δ̃``):

    * input δ: the convolution of δ by the same kernel,
      ``δx[n, c, a, b] = Σ_{o' , i, j} W[c, o', i, j] · δ̃[n, o, s_h·a + d_h·i, s_w·b + d_w·j]``
    * kernel gradient: ``δW[c, o', i, j] = Σ_{n,a,b} x[n, c, a, b] · δ̃[n, o, s_h·a + d_h·i, s_w·b + d_w·j]``
      (``C``'s weight gradient, with ``δ`` as ``C``'s input and ``x`` as its δ)
    * bias gradient: ``δbias[o] = Σ_{n,h,w} δ[n, o, h, w]``

    Args:
        in_channels, out_channels: channels of the input and of the output.
        kernel_size: ``k`` or ``(kh, kw)``.
        stride: ``s`` or ``(s_h, s_w)``: the output grows by ``s`` per input pixel.
        padding: ``p`` or ``(p_h, p_w)``: rows and columns cut off each side of the output
            (``d·(k − 1) − p`` zeros of padding in the equivalent direct convolution).
        output_padding: rows/columns added at the bottom/right of the output (to pick one of
            the sizes a strided Conv2d maps to the same size); smaller than the stride or the
            dilation, as in PyTorch.
        groups: independent transposed convolutions over groups of channels.
        bias: a learnable bias per output channel; it **starts at 0** (PyTorch draws it).
        dilation: spacing between kernel taps.
        padding_mode: ``"zeros"`` only (as PyTorch's ConvTranspose2d).
        init: weight initialiser; default ``"torch_default"``, U(−1/√fan_in, 1/√fan_in) with
            PyTorch's ``fan_in = (out_channels/groups)·kh·kw`` (its fan of the weight's axis 1).
        rng: generator or seed for the initialisation.

    Weights: ``weight`` of shape ``(in_channels, out_channels/groups, kh, kw)`` (PyTorch's layout:
    the input channels first, as the adjoint convolution's output channels) and ``bias`` of shape
    ``(out_channels,)``.

    Input shape: ``(batch, in_channels, H, W)``. Output shape: ``(batch, out_channels, H_out,
    W_out)`` with ``H_out = (H − 1)·s_h − 2·p_h + d_h·(kh − 1) + output_padding_h + 1``.
    Exact arithmetic: yes (products and sums).
    """

    supports_exact = True
    torch_twins = ("ConvTranspose2d",)

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: IntOrPair,
        stride: IntOrPair = 1,
        padding: IntOrPair = 0,
        output_padding: IntOrPair = 0,
        groups: int = 1,
        bias: bool = True,
        dilation: IntOrPair = 1,
        padding_mode: str = "zeros",
        init: Any = "torch_default",
        rng: RngLike = None,
    ) -> None:
        super().__init__()
        name = "ConvTranspose2d"
        if padding_mode != "zeros":
            raise ConfigError(
                f"{name}: padding_mode={padding_mode!r} is not supported; only 'zeros' (as PyTorch's "
                "ConvTranspose2d)"
            )
        self.in_channels, self.out_channels, self.groups = channels(name, in_channels, out_channels, groups)
        self.kernel_size = pair(kernel_size, "kernel_size", name)
        self.stride = pair(stride, "stride", name)
        self.padding = pair(padding, "padding", name, minimum=0)
        self.output_padding = pair(output_padding, "output_padding", name, minimum=0)
        self.dilation = pair(dilation, "dilation", name)
        for op, s, d in zip(self.output_padding, self.stride, self.dilation, strict=True):
            if op >= s and op >= d:
                raise ConfigError(
                    f"{name}: output_padding {self.output_padding} must be smaller than the stride "
                    f"{self.stride} or the dilation {self.dilation} (as PyTorch)"
                )
        self.padding_mode = "zeros"
        self.use_bias = bool(bias)
        self.init = init
        kh, kw = self.kernel_size
        shape = (self.in_channels, self.out_channels // self.groups, kh, kw)
        # PyTorch's fans of this tensor: axis 1 × the kernel is fan_in
        self.add_param("weight", initialize(init, shape, shape[1] * kh * kw, self.in_channels * kh * kw, rng))
        if self.use_bias:
            self.add_param("bias", np.zeros(self.out_channels))
        self._cache: Optional[tuple] = None
        self._scratch = Scratch()

    # ------------------------------------------------------------------ shapes
    def _output_hw(self, h: int, w: int) -> tuple[int, int]:
        sizes = tuple(
            (n - 1) * s - 2 * p + d * (k - 1) + op + 1
            for n, s, p, d, k, op in zip(
                (h, w),
                self.stride,
                self.padding,
                self.dilation,
                self.kernel_size,
                self.output_padding,
                strict=True,
            )
        )
        if min(sizes) < 1:
            raise self.shape_error(
                f"the output would be {sizes[0]}×{sizes[1]} for an input of {h}×{w}: the padding "
                f"{self.padding} cuts off more than the transposed convolution produces"
            )
        return sizes[0], sizes[1]

    def _check_shape(self, shape: tuple) -> None:
        if len(shape) != 4 or shape[1] != self.in_channels:
            raise self.shape_error(
                f"expected input of shape (batch, {self.in_channels}, height, width), got {tuple(shape)}"
            )

    def output_shape(self, input_shape: tuple) -> tuple:
        self._check_shape((None, *input_shape))
        return (self.out_channels, *self._output_hw(input_shape[1], input_shape[2]))

    def flops(self, input_shape: tuple) -> int:
        """A multiply-add per input value and kernel tap, ``2·(C_out/groups)·kh·kw`` per input value,
        plus the bias once per output value."""
        kh, kw = self.kernel_size
        spread = 2 * (self.out_channels // self.groups) * kh * kw * math.prod(input_shape)
        return spread + (math.prod(self.output_shape(input_shape)) if self.use_bias else 0)

    @property
    def geometry(self) -> ConvGeometry:
        """The adjoint convolution's windows (its output channels are this layer's input ones)."""
        ph, pw = self.padding
        return ConvGeometry(
            self.kernel_size, self.stride, self.dilation, (ph, ph, pw, pw), self.groups, self.in_channels
        )

    # ------------------------------------------------------------------ forward / backward
    def forward(self, x: np.ndarray) -> np.ndarray:
        self._check_shape(x.shape)
        n, _, h, w = x.shape
        shape = (n, self.out_channels, *self._output_hw(h, w))
        out = kernels.ops().conv2d_input_delta(x, self.weight.value, self.geometry, shape)
        if self.use_bias:
            out += self.bias.value[:, None, None]
        if self.training:
            self._cache = (x,)
        return out

    def backward(self, delta_out: np.ndarray, need_input_delta: bool = True) -> Optional[np.ndarray]:
        self.check_trainable(self._cache)
        (x,) = self._cache
        n, _, h, w = x.shape
        expected = (n, self.out_channels, *self._output_hw(h, w))
        if delta_out.shape != expected:
            raise self.shape_error(f"δ has shape {tuple(delta_out.shape)}, expected {expected}")
        geo = self.geometry
        ops = kernels.ops()
        # the adjoint convolution's forward pass on δ: the input δ, and what its weight gradient
        # reads; its output is (H + ⌊op_h/s_h⌋) × ... when output_padding ≥ stride (dilation > stride):
        # those extra rows meet no input, x gets zeros there
        d_in, saved = ops.conv2d_forward(delta_out, self.weight.value, None, geo, self._scratch, True)
        if d_in.shape[2:] != (h, w):
            x_full = zeros_like_dtype(d_in.shape, x.dtype)
            x_full[:, :, :h, :w] = x
            x, d_in = x_full, np.ascontiguousarray(d_in[:, :, :h, :w])
        _, gw, _ = ops.conv2d_backward(saved, x, self.weight.value, geo, False, False)
        self.weight.set_grad(np.ascontiguousarray(gw).reshape(self.weight.value.shape))
        if self.use_bias:
            self.bias.set_grad(np.asarray(delta_out.sum(axis=(0, 2, 3))))
        return d_in if need_input_delta else None

    def _cache_attrs(self) -> tuple[str, ...]:
        return ("_cache",)

    # ------------------------------------------------------------------ config
    @classmethod
    def state_shapes(cls, args: Any) -> dict[str, tuple]:
        i, o, g = channel_args(args)
        kh, kw = args.pair("kernel_size", None, 1, args.max_size)
        for key, default, high in (
            ("dilation", 1, args.max_dilation),
            ("stride", 1, args.max_int),
            ("padding", 0, args.max_int),
            ("output_padding", 0, args.max_int),
        ):
            args.pair(key, default, 1 if key in ("dilation", "stride") else 0, high)
        return {"weight": (i, o // g, kh, kw), **({"bias": (o,)} if args.flag("bias", True) else {})}

    @classmethod
    def from_torch_module(cls, module: Any) -> Layer:
        return conv_from_torch(
            cls, module, padding=tuple(module.padding), output_padding=tuple(module.output_padding)
        )

    def to_torch_module(self, nn: Any) -> Any:
        return nn.ConvTranspose2d(**{k: v for k, v in self.get_config().items() if k != "init"})

    def get_config(self) -> dict[str, Any]:
        # PyTorch's order of the arguments: dilation after bias
        return conv_config(self, ("stride", "padding", "output_padding", "groups", "bias", "dilation"))

    def summary_name(self) -> str:
        kh, kw = self.kernel_size
        return conv_summary(self, f"{kh}×{kw}")


__all__ = ["ConvTranspose2d"]
