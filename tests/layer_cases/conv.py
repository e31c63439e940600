"""Harness cases for Conv2d: "same" 3×3 (the series' case), strides, padding, dilation, groups,
no bias, odd sizes, 1×1, asymmetric "same" padding; each with a PyTorch twin."""

import numpy as np

import learnflux as lf

from ..harness import LayerCase


def _conv(*args, **kwargs):
    """A Conv2d with seeded weights and a non-zero bias (ours starts at 0, which would not test
    the bias in the forward pass)."""

    def make():
        layer = lf.Conv2d(*args, rng=7, **kwargs)
        if layer.use_bias:
            layer.bias.value = np.random.default_rng(8).uniform(-1, 1, layer.out_channels)
        return layer

    return make


def _torch(*args, **kwargs):
    def build():
        import torch

        return torch.nn.Conv2d(*args, **kwargs).double()

    return build


def _case(id, input_shape, *args, exact=False, **kwargs):
    return LayerCase(id, _conv(*args, **kwargs), input_shape, exact=exact, torch=_torch(*args, **kwargs))


CASES = [
    _case("conv2d-3x3-same", (2, 5, 5), 2, 3, 3, padding="same", exact=True),
    _case("conv2d-3x3-pad1-odd", (1, 7, 6), 1, 4, 3, padding=1),
    _case("conv2d-stride2", (3, 7, 6), 3, 4, 3, stride=2, padding=1, exact=True),
    _case("conv2d-5x5-valid", (2, 9, 7), 2, 2, 5),
    _case("conv2d-dilation2", (2, 7, 7), 2, 2, 3, dilation=2, padding=2, exact=True),
    _case("conv2d-groups2", (4, 5, 6), 4, 6, (3, 2), groups=2, padding=(1, 0)),
    _case("conv2d-depthwise-stride", (3, 6, 7), 3, 3, 3, groups=3, stride=(1, 2), padding=1),
    _case("conv2d-nobias", (2, 4, 5), 2, 3, 2, bias=False, exact=True),
    _case("conv2d-same-even-kernel", (2, 5, 6), 2, 2, 4, padding="same"),
    _case("conv2d-1x1", (3, 4, 4), 3, 2, 1),
    _case("conv2d-rect-mixed", (2, 6, 7), 2, 3, (2, 3), stride=(2, 1), dilation=(1, 2), padding=(0, 1)),
    _case("conv2d-valid-string", (1, 4, 4), 1, 2, 3, padding="valid"),
]
