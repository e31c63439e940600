"""Harness cases for ConvTranspose2d (PyTorch's nn.ConvTranspose2d): stride with output_padding,
padding, dilation (with output_padding ≥ stride, allowed below the dilation), groups, rectangular
kernels, 1×1, no bias, batch 1."""

import numpy as np

import learnflux as lf

from ..harness import LayerCase, torch_twin


def _deconv(*args, **kwargs):
    """Seeded weights and a non-zero bias (ours starts at 0)."""

    def make():
        layer = lf.ConvTranspose2d(*args, rng=13, **kwargs)
        if layer.use_bias:
            layer.bias.value = np.random.default_rng(14).uniform(-1, 1, layer.out_channels)
        return layer

    return make


def _case(id, input_shape, *args, exact=False, batch_sizes=(1, 3), **kwargs):
    return LayerCase(
        id,
        _deconv(*args, **kwargs),
        input_shape,
        batch_sizes=batch_sizes,
        exact=exact,
        torch=torch_twin(lambda nn: nn.ConvTranspose2d(*args, **kwargs)),
    )


CASES = [
    _case("convtranspose2d-3x3", (2, 4, 5), 2, 3, 3, exact=True),
    _case(
        "convtranspose2d-stride2-pad1-outpad1",
        (3, 4, 3),
        3,
        2,
        3,
        stride=2,
        padding=1,
        output_padding=1,
        exact=True,
    ),
    _case("convtranspose2d-k2-s2", (2, 3, 3), 2, 4, 2, stride=2, batch_sizes=(1,)),
    _case("convtranspose2d-groups2", (4, 3, 4), 4, 6, 3, stride=(2, 1), padding=(1, 0), groups=2),
    _case("convtranspose2d-dilation-outpad", (2, 4, 3), 2, 2, 3, dilation=2, output_padding=1, exact=True),
    _case("convtranspose2d-dilation-pad-outpad", (2, 3, 4), 2, 3, 3, dilation=2, padding=1, output_padding=1),
    _case(
        "convtranspose2d-rect-mixed",
        (2, 3, 5),
        2,
        3,
        (2, 3),
        stride=(3, 2),
        padding=(1, 2),
        output_padding=(2, 0),
        dilation=(1, 2),
    ),
    _case("convtranspose2d-1x1-stride2", (3, 3, 3), 3, 2, 1, stride=2, bias=False, exact=True),
    _case("convtranspose2d-depthwise-nobias", (3, 5, 4), 3, 3, 3, groups=3, padding=1, bias=False),
]
