"""2-D convolution over channels-first images: the maths here, the machinery in ``kernels``
(``conv2d_forward`` / ``conv2d_backward`` of the active kernel set).

The helpers ``pair`` and ``compact`` are shared with the pooling layers; ``channels``,
``channel_args`` and ``conv_summary`` with the other convolutions.
"""

from __future__ import annotations

import math
from typing import Any, Optional, Union

import numpy as np

from .. import kernels
from ..core.layer import Layer, register_layer
from ..errors import ConfigError, UnsupportedTorchOption
from ..init import initialize
from ..kernels.geometry import ConvGeometry, conv_output_size
from ..kernels.workspace import Scratch
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


def channels(owner: str, in_channels: Any, out_channels: Any, groups: Any) -> tuple[int, int, int]:
    """``(in_channels, out_channels, groups)`` as ints, both channel counts divisible by the
    groups (the convolutions' check); a :class:`ConfigError` naming ``owner`` otherwise."""
    for arg, value in (("in_channels", in_channels), ("out_channels", out_channels), ("groups", groups)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
            raise ConfigError(f"{owner}: {arg} must be a positive int, got {value!r}")
    if in_channels % groups or out_channels % groups:
        raise ConfigError(
            f"{owner}: in_channels ({in_channels}) and out_channels ({out_channels}) must both be "
            f"divisible by groups ({groups})"
        )
    return int(in_channels), int(out_channels), int(groups)


def channel_args(args: Any) -> tuple[int, int, int]:
    """``channels`` for the loader: ``(in_channels, out_channels, groups)`` read from a file's
    arguments (``Layer.state_shapes``)."""
    i, o = args.size("in_channels"), args.size("out_channels")
    g = args.size("groups", 1)
    if i % g or o % g:
        args.fail("groups", f"in_channels ({i}) and out_channels ({o}) must be divisible by groups ({g})")
    return i, o, g


def conv_from_torch(cls: type, module: Any, **options: Any) -> Layer:
    """``cls`` built from a PyTorch convolution (``Conv1d``, ``Conv2d``, ``ConvTranspose2d``): the
    arguments they all have, plus ``options`` (the padding, ``output_padding``);
    :class:`UnsupportedTorchOption` for a ``padding_mode`` other than ``"zeros"``."""
    if module.padding_mode != "zeros":
        raise UnsupportedTorchOption(f"padding_mode={module.padding_mode!r} (only 'zeros')")
    return cls(
        module.in_channels,
        module.out_channels,
        tuple(module.kernel_size),
        stride=tuple(module.stride),
        dilation=tuple(module.dilation),
        groups=module.groups,
        bias=module.bias is not None,
        **options,
    )


#: the convolutions' defaults: a config leaves these out
CONV_DEFAULTS: dict[str, Any] = {
    "stride": (1, 1),
    "padding": (0, 0),
    "output_padding": (0, 0),
    "dilation": (1, 1),
    "groups": 1,
    "bias": True,
}


def conv_config(layer: Any, names: tuple[str, ...]) -> dict[str, Any]:
    """A convolution's config: the channels and the kernel, then the arguments ``names`` (in that
    order) that differ from :data:`CONV_DEFAULTS` (pairs stored as :func:`compact` gives them), then
    a named ``init`` other than PyTorch's."""
    config: dict[str, Any] = {
        "in_channels": layer.in_channels,
        "out_channels": layer.out_channels,
        "kernel_size": compact(layer.kernel_size),
    }
    for name in names:
        value = layer.use_bias if name == "bias" else getattr(layer, name)
        if value != CONV_DEFAULTS[name]:
            config[name] = value if isinstance(value, (str, int)) else compact(value)
    if isinstance(layer.init, str) and layer.init != "torch_default":
        config["init"] = layer.init
    return config


def conv_summary(layer: Any, kernel: str) -> str:
    """``Conv2d(1 → 16, 3×3, padding=1)``: the channels, the kernel, then the other arguments of
    the layer's config."""
    extras = [
        f", {k}={v!r}"
        for k, v in layer.get_config().items()
        if k not in ("in_channels", "out_channels", "kernel_size")
    ]
    return f"{type(layer).__name__}({layer.in_channels} → {layer.out_channels}, {kernel}{''.join(extras)})"


@register_layer
class Conv2d(Layer):
    """2-D convolution (cross-correlation, no kernel flip) with zero padding, PyTorch's ``Conv2d``.

    Forward, for output channel ``o`` of group ``g`` (``C_g = in_channels/groups`` input channels
    ``c = g·C_g + c'``), with the input zero-padded to ``x̃``::

        o[n, o, a, b] = bias[o] + Σ_{c'<C_g} Σ_{i<kh} Σ_{j<kw} W[o, c', i, j]
                                                             · x̃[n, c, s_h·a + d_h·i, s_w·b + d_w·j]

    Backward, with ``δ = ∂Loss/∂o`` of shape ``(batch, out_channels, H_out, W_out)`` (docs/conventions.md,
    'Convolution'):

    * kernel gradient: ``δW[o, c', i, j] = Σ_{n,a,b} δ[n, o, a, b] · x̃[n, c, s_h·a + d_h·i, s_w·b + d_w·j]``
    * bias gradient: ``δbias[o] = Σ_{n,a,b} δ[n, o, a, b]`` (every position the bias was added to)
    * input δ: each padded pixel sums every output position it impacted,
      ``δx̃[n, c, s_h·a + d_h·i, s_w·b + d_w·j] += Σ_{o ∈ g} W[o, c', i, j] · δ[n, o, a, b]``
      over all ``(a, b, i, j)``; the padding border is then cut off.

    How it runs: as one GEMM per group over the columns ``X_col[(c, i, j), (n, a, b)] =
    x̃[n, c, s_h·a + d_h·i, s_w·b + d_w·j]``: ``o = W_mat · X_col``, ``δW = δ_mat · X_colᵀ``, ``δX_col
    = W_matᵀ · δ_mat`` added back to the pixels the columns came from (col2im). The kernel sets
    (``learnflux.kernels``) differ in how they move the data: the NumPy set uses flat-shifted rows
    of a padded channel-major copy at stride 1 and strided views otherwise; the compiled set builds
    the exact columns and the layouts in C, on every core. Everything stays in the layer's dtype
    (float32 by default); exact ``Fraction`` values run the NumPy set.

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
        bias: add a learnable bias per output channel. It **starts at 0** (docs/conventions.md,
            'Initialisation'), unlike PyTorch's default which draws the conv bias at random.
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
    torch_twins = ("Conv2d",)

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
        name = type(self).__name__
        self.in_channels, self.out_channels, self.groups = channels(name, in_channels, out_channels, groups)
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
        self._scratch = Scratch()  # the kernels' buffers kept between calls (padded input)

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

    def flops(self, input_shape: tuple) -> int:
        """Per output value, ``2·(C_in/groups)·kh·kw`` (a multiply-add per tap), ``+ 1`` for the
        bias."""
        kh, kw = self.kernel_size
        per_out = 2 * (self.in_channels // self.groups) * kh * kw + (1 if self.use_bias else 0)
        return per_out * math.prod(self.output_shape(input_shape))

    # ------------------------------------------------------------------ forward / backward
    def _kernel_weight(self) -> np.ndarray:
        """The weight as the kernels take it, ``(out_channels, in_channels/groups, kh, kw)``
        (Conv1d: a view of its ``(out, in/groups, k)`` weight)."""
        return self.weight.value

    @property
    def geometry(self) -> ConvGeometry:
        """The windows, as the kernels take them."""
        return ConvGeometry(
            self.kernel_size, self.stride, self.dilation, self._pads, self.groups, self.out_channels
        )

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._check_shape(x.shape)
        self._output_hw(x.shape[2], x.shape[3])  # a clear error when the kernel does not fit
        bias = self.bias.value if self.use_bias else None
        out, saved = kernels.ops().conv2d_forward(
            x, self._kernel_weight(), bias, self.geometry, self._scratch, self.training
        )
        if self.training:
            self._cache = saved
        return out

    def forward_relu(self, x: np.ndarray) -> tuple[np.ndarray, Optional[np.ndarray]]:
        """``ReLU(forward(x))`` and, in training, ReLU's mask ``[z ≥ 0]`` of the pre-activation
        ``z`` (for :meth:`ReLU.forward_fused`), in one kernel call: the compiled direct
        convolution applies the ReLU in its output pass, with the same values as the two layers
        one after the other. A ``Sequential`` calls it for a ``Conv2d`` followed by a ``ReLU``
        when nothing records the pre-activation (see ``Sequential.forward``)."""
        self._check_shape(x.shape)
        self._output_hw(x.shape[2], x.shape[3])
        bias = self.bias.value if self.use_bias else None
        out, saved, mask = kernels.ops().conv2d_relu_forward(
            x, self._kernel_weight(), bias, self.geometry, self._scratch, self.training
        )
        if self.training:
            self._cache = saved
        return out, mask

    def backward(self, delta_out: np.ndarray, need_input_delta: bool = True) -> Optional[np.ndarray]:
        cache = self._cache
        self.check_trainable(cache)
        n, c, h, w = cache[2]
        ho, wo = self._output_hw(h, w)
        if delta_out.shape != (n, self.out_channels, ho, wo):
            raise self.shape_error(
                f"δ has shape {tuple(delta_out.shape)}, expected {(n, self.out_channels, ho, wo)}"
            )
        # the kernel set that ran the forward pass reads its own cache
        impl = kernels.compiled if cache[0] == "compiled" else kernels.reference
        d_in, gw, gb = impl.conv2d_backward(
            cache, delta_out, self._kernel_weight(), self.geometry, self.use_bias, need_input_delta
        )
        self.weight.set_grad(np.ascontiguousarray(gw).reshape(self.weight.value.shape))
        if gb is not None:
            self.bias.set_grad(gb)
        return d_in

    def _cache_attrs(self) -> tuple[str, ...]:
        return ("_cache",)

    # ------------------------------------------------------------------ config
    @classmethod
    def state_shapes(cls, args: Any) -> dict[str, tuple]:
        """The weight's shape from the arguments; zero padding beyond the kernel's reach (more
        than ``max(args.max_padding, d·(k − 1))``) is refused: it would only add rows of zeros."""
        i, o, g = channel_args(args)
        kh, kw = args.pair("kernel_size", None, 1, args.max_size)
        dh, dw = args.pair("dilation", 1, 1, args.max_dilation)
        args.pair("stride", 1, 1, args.max_int)
        padding = args.get("padding", 0)
        if not isinstance(padding, str):
            ph, pw = args.pair("padding", 0, 0, args.max_int)
            reach = (max(args.max_padding, dh * (kh - 1)), max(args.max_padding, dw * (kw - 1)))
            if ph > reach[0] or pw > reach[1]:
                args.fail(
                    "padding",
                    f"padding {args.show(padding)} exceeds the kernel's reach (at most "
                    f"{reach[0]}×{reach[1]} here: beyond it a convolution only adds rows of zeros)",
                )
        return {"weight": (o, i // g, kh, kw), **({"bias": (o,)} if args.flag("bias", True) else {})}

    @classmethod
    def from_torch_module(cls, module: Any) -> Layer:
        padding = module.padding if isinstance(module.padding, str) else tuple(module.padding)
        return conv_from_torch(cls, module, padding=padding)

    def to_torch_module(self, nn: Any) -> Any:
        """``nn.Conv2d`` (Conv1d: ``nn.Conv1d``) with the config's arguments (PyTorch's names),
        without ``init``: the weights are copied afterwards."""
        return getattr(nn, self.torch_twins[0])(**{k: v for k, v in self.get_config().items() if k != "init"})

    def get_config(self) -> dict[str, Any]:
        return conv_config(self, ("stride", "padding", "dilation", "groups", "bias"))

    def summary_name(self) -> str:
        kh, kw = self.kernel_size
        return conv_summary(self, f"{kh}×{kw}")


__all__ = ["Conv2d"]
