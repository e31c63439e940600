"""Harness cases for Conv1d (PyTorch's nn.Conv1d): odd lengths, stride, padding (numbers, "same"
with an even kernel, "valid"), dilation, groups, depthwise, no bias, kernel 1, batch 1."""

import numpy as np

import learnflux as lf

from ..harness import LayerCase, torch_twin


def _conv(*args, **kwargs):
    """A Conv1d with seeded weights and a non-zero bias (ours starts at 0)."""

    def make():
        layer = lf.Conv1d(*args, rng=11, **kwargs)
        if layer.use_bias:
            layer.bias.value = np.random.default_rng(12).uniform(-1, 1, layer.out_channels)
        return layer

    return make


def _case(id, input_shape, *args, exact=False, batch_sizes=(1, 3), **kwargs):
    return LayerCase(
        id,
        _conv(*args, **kwargs),
        input_shape,
        batch_sizes=batch_sizes,
        exact=exact,
        torch=torch_twin(lambda nn: nn.Conv1d(*args, **kwargs)),
    )


CASES = [
    _case("conv1d-3", (2, 9), 2, 3, 3, exact=True),
    _case("conv1d-same", (3, 7), 3, 4, 3, padding="same", exact=True),
    _case("conv1d-same-even", (2, 8), 2, 2, 4, padding="same", dilation=2),
    _case("conv1d-stride2-pad1", (3, 11), 3, 2, 3, stride=2, padding=1, exact=True),
    _case("conv1d-stride3-dilation2", (2, 13), 2, 3, 3, stride=3, dilation=2, padding=2),
    _case("conv1d-groups2", (4, 10), 4, 6, 5, groups=2, padding=1),
    _case("conv1d-depthwise", (3, 7), 3, 3, 3, groups=3, stride=2, padding=1, exact=True),
    _case("conv1d-nobias-valid", (2, 6), 2, 3, 2, bias=False, padding="valid", exact=True),
    _case("conv1d-k1", (3, 5), 3, 2, 1, batch_sizes=(1,)),
]
