"""Fused kernels of the NumPy set: the unfused kernels one after the other (the reference the
compiled set's fused passes are checked against, bit for bit)."""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from ..geometry import ConvGeometry
from ..workspace import Scratch
from .conv import conv2d_forward
from .eltwise import relu_forward


def conv2d_relu_forward(
    x: np.ndarray,
    weight: np.ndarray,
    bias: Optional[np.ndarray],
    geo: ConvGeometry,
    scratch: Scratch,
    training: bool,
) -> tuple[np.ndarray, Any, Optional[np.ndarray]]:
    """``ReLU(conv(x))``: the output, the convolution's saved state and, in training, ReLU's
    mask ``[z ≥ 0]`` of the pre-activation ``z = conv(x)`` (ReLU'(0) = 1: it cannot be read off
    the output, where ``z = 0`` and ``z < 0`` both give 0)."""
    z, saved = conv2d_forward(x, weight, bias, geo, scratch, training)
    out, mask = relu_forward(z, training)
    return out, saved, mask
