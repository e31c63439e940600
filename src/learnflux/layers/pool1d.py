"""Pooling over sequences (``(batch, C, L)``), PyTorch's ``MaxPool1d`` and ``AvgPool1d``: the 2-D
pooling layers and their kernels on the ``(batch, C, 1, L)`` view of the input (``_one_d``)."""

from __future__ import annotations

from typing import Any, Optional

from ..core.layer import register_layer
from ..errors import ConfigError
from ._one_d import IntOr1, _On1d, single
from .pool import AvgPool2d, MaxPool2d


def _windows(owner: str, kernel_size: Any, stride: Any, padding: Any) -> tuple:
    """The 2-D pairs ``(1, k)``, ``(1, s)``, ``(0, p)`` of the 1-D arguments, checked with 1-D
    messages."""
    k = single(kernel_size, "kernel_size", owner)
    s = k if stride is None else single(stride, "stride", owner)
    p = single(padding, "padding", owner, minimum=0)
    if 2 * p > k:
        raise ConfigError(
            f"{owner}: padding {p} must be at most half the kernel size {k} (a window must never "
            "be only padding)"
        )
    return (1, k), (1, s), (0, p)


@register_layer
class MaxPool1d(_On1d, MaxPool2d):
    """Max pooling over sequences, PyTorch's ``MaxPool1d``: each output is the largest input of its
    window.

    Forward: ``o[n, c, t] = max_{i<k} x̃[n, c, s·t + i]``, ``x̃`` the input with a border of −∞
    (padding, and in ceil mode the missing part of a partial last window).

    Backward: each window routes its δ to the one input that was its maximum (the first one on a
    tie, as PyTorch): ``δx[n, c, s·t + i*] += δ[n, c, t]``; an input that is the maximum of
    several overlapping windows receives the sum of their δ.

    Args:
        kernel_size: window length ``k``.
        stride: step between windows; default ``kernel_size``.
        padding: implicit −∞ values on each end, at most ``k/2``.
        ceil_mode: keep a partial last window (round the output length up).

    Input shape: ``(batch, C, L)``. Output shape: ``(batch, C, L_out)`` with
    ``L_out = ⌊(L + 2p − k) / s⌋ + 1`` (``⌈⌉`` in ceil mode, as long as the last window starts
    inside the input or its left padding). PyTorch's ``dilation`` and ``return_indices`` are not
    supported (``lf.from_torch`` refuses them). Exact arithmetic: yes (comparisons only).

    How it runs: :class:`MaxPool2d` with a ``1×k`` window on the ``(batch, C, 1, L)`` view.
    """

    torch_twins = ("MaxPool1d",)

    def __init__(
        self,
        kernel_size: IntOr1,
        stride: Optional[IntOr1] = None,
        padding: IntOr1 = 0,
        ceil_mode: bool = False,
    ) -> None:
        super().__init__(*_windows("MaxPool1d", kernel_size, stride, padding), ceil_mode)


@register_layer
class AvgPool1d(_On1d, AvgPool2d):
    """Average pooling over sequences, PyTorch's ``AvgPool1d``: each output is the mean of its
    window.

    Forward: ``o[n, c, t] = (1 / m_t) · Σ_{i<k} x̃[n, c, s·t + i]`` with ``x̃`` zero-padded; the
    divisor ``m_t`` is the window's length clipped to the padded input
    (``count_include_pad=True``, the default) or its number of real inputs (``False``).

    Backward: every input of window ``t`` receives ``δ[n, c, t] / m_t``, summed over the windows
    that hold it.

    Args:
        kernel_size, stride, padding, ceil_mode: as :class:`MaxPool1d` (zero padding).
        count_include_pad: count the zero padding in the divisor (default True, as PyTorch).

    Input shape: ``(batch, C, L)``. Output shape: as :class:`MaxPool1d`. Exact arithmetic: yes.

    How it runs: :class:`AvgPool2d` with a ``1×k`` window on the ``(batch, C, 1, L)`` view.
    """

    torch_twins = ("AvgPool1d",)

    def __init__(
        self,
        kernel_size: IntOr1,
        stride: Optional[IntOr1] = None,
        padding: IntOr1 = 0,
        ceil_mode: bool = False,
        count_include_pad: bool = True,
    ) -> None:
        super().__init__(*_windows("AvgPool1d", kernel_size, stride, padding), ceil_mode, count_include_pad)


__all__ = ["AvgPool1d", "MaxPool1d"]
