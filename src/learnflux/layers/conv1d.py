"""1-D convolution over sequences (``(batch, C, L)``), PyTorch's ``Conv1d``: ``Conv2d``'s maths
and kernels on the ``(batch, C, 1, L)`` view of the input (``_one_d``)."""

from __future__ import annotations

from typing import Any, Union

from ..core.layer import register_layer
from ..errors import ConfigError
from ..seeding import RngLike
from ._one_d import IntOr1, _On1d, single
from .conv import Conv2d, channel_args, conv_summary


@register_layer
class Conv1d(_On1d, Conv2d):
    """1-D convolution (cross-correlation, no kernel flip) with zero padding, PyTorch's ``Conv1d``.

    Forward, for output channel ``o`` of group ``g`` (``C_g = in_channels/groups`` input channels
    ``c = g·C_g + c'``), with the input zero-padded to ``x̃``::

        o[n, o, t] = bias[o] + Σ_{c'<C_g} Σ_{i<k} W[o, c', i] · x̃[n, c, s·t + d·i]

    Backward, with ``δ = ∂Loss/∂o`` of shape ``(batch, out_channels, L_out)``:

    * kernel gradient: ``δW[o, c', i] = Σ_{n,t} δ[n, o, t] · x̃[n, c, s·t + d·i]``
    * bias gradient: ``δbias[o] = Σ_{n,t} δ[n, o, t]``
    * input δ: ``δx̃[n, c, s·t + d·i] += Σ_{o ∈ g} W[o, c', i] · δ[n, o, t]`` over all ``(t, i)``;
      the padding is then cut off.

    How it runs: it is a :class:`Conv2d` with a ``1×k`` kernel on the ``(batch, C, 1, L)`` view of
    the input (no copy), so both kernel sets and exact ``Fraction`` arithmetic run it; the weight
    is handed to the kernels as its ``(out, in/groups, 1, k)`` view. The attributes
    ``kernel_size``, ``stride``, ``padding`` and ``dilation`` hold those 2-D pairs (``(1, k)``...);
    ``get_config`` gives the 1-D values.

    Args:
        in_channels, out_channels: channels of the input and of the output.
        kernel_size: ``k`` (or ``(k,)``).
        stride: ``s``, default 1.
        padding: zeros added on each end, ``p``; or ``"same"`` (stride 1 only: ``L_out = L``; the
            total ``d·(k − 1)`` is split with the extra value at the end when odd, as PyTorch) or
            ``"valid"`` (no padding).
        dilation: spacing ``d`` between kernel taps, default 1.
        groups: independent convolutions over groups of channels (both channel counts divisible
            by it; ``groups=in_channels``: depthwise).
        bias: a learnable bias per output channel; it **starts at 0** (PyTorch draws it at random).
        padding_mode: ``"zeros"`` only (PyTorch's ``"reflect"``, ``"replicate"`` and ``"circular"``
            are refused with a ConfigError).
        init: weight initialiser; default ``"torch_default"``, U(−1/√fan_in, 1/√fan_in) with
            ``fan_in = C_g·k``, as PyTorch.
        rng: generator or seed for the initialisation.

    Weights: ``weight`` of shape ``(out_channels, in_channels/groups, k)`` and ``bias`` of shape
    ``(out_channels,)``, PyTorch's names and layouts.

    Input shape: ``(batch, in_channels, L)``. Output shape: ``(batch, out_channels, L_out)`` with
    ``L_out = ⌊(L + p_left + p_right − d·(k − 1) − 1) / s⌋ + 1``.
    """

    torch_twins = ("Conv1d",)
    _shape_in_cache = 2  # the kernels' cache: (kind, data, input shape...)

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: IntOr1,
        stride: IntOr1 = 1,
        padding: Union[IntOr1, str] = 0,
        dilation: IntOr1 = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
        init: Any = "torch_default",
        rng: RngLike = None,
    ) -> None:
        name = "Conv1d"
        if padding_mode != "zeros":
            raise ConfigError(
                f"{name}: padding_mode={padding_mode!r} is not supported; learnflux pads with zeros "
                "only (padding_mode='zeros')"
            )
        k = single(kernel_size, "kernel_size", name)
        s = single(stride, "stride", name)
        d = single(dilation, "dilation", name)
        pad: Union[str, tuple[int, int]]
        if isinstance(padding, str):
            if padding.lower() not in ("same", "valid"):
                raise ConfigError(f"{name}: padding must be 'same', 'valid' or an int, got {padding!r}")
            if padding.lower() == "same" and s != 1:
                raise ConfigError(
                    f"{name}: padding='same' needs stride 1 (got stride {s}); give the padding as a "
                    "number for a strided convolution"
                )
            pad = padding
        else:
            pad = (0, single(padding, "padding", name, minimum=0))
        super().__init__(
            in_channels,
            out_channels,
            (1, k),
            stride=(1, s),
            padding=pad,
            dilation=(1, d),
            groups=groups,
            bias=bias,
            init=init,
            rng=rng,
        )
        self.padding_mode = "zeros"
        # PyTorch's layout: the (out, in/groups, 1, k) draw (same fan_in, C_g·k) without its 1
        self.add_param(
            "weight", self.weight.value.reshape(self.out_channels, self.in_channels // self.groups, k)
        )

    def _kernel_weight(self) -> Any:
        return self.weight.value[:, :, None, :]

    def output_shape(self, input_shape: tuple) -> tuple:
        if len(input_shape) != 2 or input_shape[0] != self.in_channels:
            raise self.shape_error(
                f"expected input of shape (batch, {self.in_channels}, length), got (batch, "
                f"{', '.join(str(v) for v in input_shape)})"
            )
        return super().output_shape(input_shape)

    @classmethod
    def state_shapes(cls, args: Any) -> dict[str, tuple]:
        """The weight's shape ``(out, in/groups, k)``; padding beyond the kernel's reach refused as
        for Conv2d."""
        i, o, g = channel_args(args)
        k = args.size("kernel_size")
        d = args.pair("dilation", 1, 1, args.max_dilation)[0]
        args.pair("stride", 1, 1, args.max_int)
        padding = args.get("padding", 0)
        if not isinstance(padding, str) and args.pair("padding", 0, 0, args.max_int)[0] > max(
            args.max_padding, d * (k - 1)
        ):
            args.fail("padding", f"padding {args.show(padding)} exceeds the kernel's reach")
        return {"weight": (o, i // g, k), **({"bias": (o,)} if args.flag("bias", True) else {})}

    def summary_name(self) -> str:
        return conv_summary(self, str(self.kernel_size[1]))


__all__ = ["Conv1d"]
