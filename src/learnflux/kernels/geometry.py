"""What a kernel needs to know about a layer's windows, computed once per layer and shape."""

from __future__ import annotations

from dataclasses import dataclass


def conv_output_size(size: int, pad_total: int, kernel: int, stride: int, dilation: int = 1) -> int:
    """``⌊(size + pad_total − dilation·(kernel − 1) − 1) / stride⌋ + 1`` (≤ 0 if the kernel does
    not fit)."""
    return (size + pad_total - dilation * (kernel - 1) - 1) // stride + 1


@dataclass(frozen=True)
class ConvGeometry:
    """A 2-D convolution's windows: kernel ``(kh, kw)``, stride, dilation, zero padding
    ``(top, bottom, left, right)``, groups and output channels (Conv2d's arguments, resolved)."""

    kernel: tuple[int, int]
    stride: tuple[int, int]
    dilation: tuple[int, int]
    pads: tuple[int, int, int, int]
    groups: int
    out_channels: int

    def output_hw(self, h: int, w: int) -> tuple[int, int]:
        top, bottom, left, right = self.pads
        (kh, kw), (sh, sw), (dh, dw) = self.kernel, self.stride, self.dilation
        return conv_output_size(h, top + bottom, kh, sh, dh), conv_output_size(w, left + right, kw, sw, dw)


@dataclass(frozen=True)
class PoolGeometry:
    """A pooling layer's windows: kernel, stride, padding ``(p_h, p_w)`` on each side, for an
    input of ``(H, W)`` giving ``(H_out, W_out)`` (ceil mode already applied to the sizes)."""

    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    in_hw: tuple[int, int]
    out_hw: tuple[int, int]

    def padded_extent(self) -> tuple[int, int]:
        """Height and width of the padded input the windows read: the padding on the top/left,
        and on the bottom/right whatever the last window needs (padding, or in ceil mode the
        missing part of a partial window)."""
        (kh, kw), (sh, sw), (ph, pw) = self.kernel, self.stride, self.padding
        (h, w), (ho, wo) = self.in_hw, self.out_hw
        return max(ph + h, (ho - 1) * sh + kh), max(pw + w, (wo - 1) * sw + kw)

    def tiles(self) -> bool:
        """True when the windows tile the image exactly (no padding, stride = kernel, sizes
        divisible: the common 2×2 / stride 2 on an even map)."""
        (kh, kw), (sh, sw), (ph, pw) = self.kernel, self.stride, self.padding
        h, w = self.in_hw
        return (kh, kw) == (sh, sw) and ph == pw == 0 and h % kh == 0 and w % kw == 0
