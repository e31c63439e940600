"""Harness cases for AdaptiveAvgPool2d with any output size (PyTorch's windows ⌊a·H/m⌋ …
⌈(a + 1)·H/m⌉): dividing the input, not dividing it (windows of unequal sizes that overlap),
larger than the input, None (keep an axis), rectangular."""

import learnflux as lf

from ..harness import LayerCase, torch_twin


def _case(id, input_shape, output_size, batch_sizes=(1, 3)):
    return LayerCase(
        id,
        lambda: lf.AdaptiveAvgPool2d(output_size),
        input_shape,
        batch_sizes=batch_sizes,
        exact=True,
        torch=torch_twin(lambda nn: nn.AdaptiveAvgPool2d(output_size)),
    )


CASES = [
    _case("adaptive-avgpool-2-divides", (3, 6, 4), 2),
    _case("adaptive-avgpool-3-uneven", (2, 7, 5), 3),
    _case("adaptive-avgpool-rect", (2, 5, 8), (2, 3), batch_sizes=(1,)),
    _case("adaptive-avgpool-larger", (2, 3, 4), (5, 6)),
    _case("adaptive-avgpool-keep-h", (2, 5, 9), (None, 4)),
]
