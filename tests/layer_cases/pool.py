"""Harness cases for the pooling layers, each with a PyTorch twin. Max-pooling inputs are a
scaled random permutation: no two values are equal or closer than the finite-difference step,
so the gradient check never crosses a kink (a change of arg-max)."""

import numpy as np

import learnflux as lf

from ..harness import LayerCase


def distinct(rng: np.random.Generator, shape: tuple) -> np.ndarray:
    """Distinct values spread over [−2, 2): no ties, no near-ties."""
    size = int(np.prod(shape))
    return rng.permutation(size).reshape(shape) * (4.0 / size) - 2.0


def _torch(factory):
    def build():
        import torch

        return factory(torch.nn).double()

    return build


def _max(id, input_shape, *args, exact=True, **kwargs):
    return LayerCase(
        id,
        lambda: lf.MaxPool2d(*args, **kwargs),
        input_shape,
        exact=exact,
        input_fn=distinct,
        torch=_torch(lambda nn: nn.MaxPool2d(*args, **kwargs)),
    )


def _avg(id, input_shape, *args, **kwargs):
    return LayerCase(
        id,
        lambda: lf.AvgPool2d(*args, **kwargs),
        input_shape,
        exact=True,
        torch=_torch(lambda nn: nn.AvgPool2d(*args, **kwargs)),
    )


CASES = [
    _max("maxpool-2x2", (2, 6, 6), 2),
    _max("maxpool-ceil-7x7", (1, 7, 7), 2, ceil_mode=True),  # docs/conventions.md, 'Max pooling': 4×4
    _max("maxpool-floor-odd", (2, 5, 7), 2),
    _max("maxpool-3x3-s2-pad1", (2, 7, 8), 3, stride=2, padding=1),  # overlapping windows
    _max("maxpool-3x3-s2-pad1-ceil", (1, 6, 6), 3, stride=2, padding=1, ceil_mode=True),
    _max("maxpool-rect-ceil", (1, 5, 7), (2, 3), stride=(1, 2), ceil_mode=True),
    _max("maxpool-s1-overlap", (2, 4, 5), 2, stride=1),
    _avg("avgpool-2x2", (2, 6, 6), 2),
    _avg("avgpool-ceil-7x7", (1, 7, 7), 2, ceil_mode=True),
    _avg("avgpool-3x3-s2-pad1", (2, 7, 7), 3, stride=2, padding=1),
    _avg("avgpool-pad-exclude", (2, 7, 6), 3, stride=2, padding=1, count_include_pad=False),
    _avg("avgpool-pad-ceil", (1, 6, 6), 3, stride=2, padding=1, ceil_mode=True),
    _avg(
        "avgpool-pad-ceil-exclude", (1, 6, 5), 3, stride=2, padding=1, ceil_mode=True, count_include_pad=False
    ),
    _avg("avgpool-rect", (2, 5, 7), (2, 3), stride=(1, 2)),
    LayerCase(
        "global-avgpool",
        lambda: lf.GlobalAvgPool2d(),
        (3, 5, 4),
        exact=True,
        torch=_torch(lambda nn: nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())),
    ),
    LayerCase(
        "global-avgpool-keepdims",
        lambda: lf.GlobalAvgPool2d(keepdims=True),
        (2, 3, 3),
        exact=True,
        torch=_torch(lambda nn: nn.AdaptiveAvgPool2d(1)),
    ),
    LayerCase(
        "adaptive-avgpool-1",
        lambda: lf.AdaptiveAvgPool2d(1),
        (3, 4, 5),
        exact=True,
        torch=_torch(lambda nn: nn.AdaptiveAvgPool2d(1)),
    ),
]
