"""Harness cases for MaxPool1d and AvgPool1d (PyTorch twins): overlapping windows, padding, ceil
mode with a partial last window, count_include_pad, odd lengths. Max pooling reads distinct
values (no ties, see pool.py)."""

import learnflux as lf

from ..harness import LayerCase, torch_twin
from .pool import distinct


def _max(id, input_shape, *args, **kwargs):
    return LayerCase(
        id,
        lambda: lf.MaxPool1d(*args, **kwargs),
        input_shape,
        exact=True,
        input_fn=distinct,
        torch=torch_twin(lambda nn: nn.MaxPool1d(*args, **kwargs)),
    )


def _avg(id, input_shape, *args, **kwargs):
    return LayerCase(
        id,
        lambda: lf.AvgPool1d(*args, **kwargs),
        input_shape,
        exact=True,
        torch=torch_twin(lambda nn: nn.AvgPool1d(*args, **kwargs)),
    )


CASES = [
    _max("maxpool1d-2", (2, 8), 2),
    _max("maxpool1d-odd-floor", (3, 9), 2),
    _max("maxpool1d-3-s2-pad1", (2, 10), 3, stride=2, padding=1),
    _max("maxpool1d-ceil", (1, 7), 2, ceil_mode=True),
    _max("maxpool1d-3-s2-pad1-ceil", (2, 8), 3, stride=2, padding=1, ceil_mode=True),
    _max("maxpool1d-s1-overlap", (2, 6), 3, stride=1),
    _avg("avgpool1d-2", (2, 8), 2),
    _avg("avgpool1d-3-s2-pad1", (3, 9), 3, stride=2, padding=1),
    _avg("avgpool1d-pad-exclude", (2, 10), 3, stride=2, padding=1, count_include_pad=False),
    _avg("avgpool1d-ceil", (1, 7), 2, ceil_mode=True),
    _avg(
        "avgpool1d-pad-ceil-exclude", (2, 8), 3, stride=2, padding=1, ceil_mode=True, count_include_pad=False
    ),
    _avg("avgpool1d-s1-overlap", (2, 5), 4, stride=1, padding=2),
]
