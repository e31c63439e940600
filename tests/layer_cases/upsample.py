"""Harness cases for Upsample (PyTorch's nn.Upsample): nearest by 2 (PyTorch's exact shortcut),
by 3, by a non-integer factor and to a size (its float32 index rule), per-axis factors below and
above 1, on sequences and images; bilinear and linear with align_corners False and True, by a
factor and to a size, downsampling, recompute_scale_factor."""

import learnflux as lf

from ..harness import LayerCase, torch_twin


def _case(id, input_shape, exact=True, **kwargs):
    return LayerCase(
        id,
        lambda: lf.Upsample(**kwargs),
        input_shape,
        exact=exact,
        torch=torch_twin(lambda nn: nn.Upsample(**kwargs)),
    )


CASES = [
    _case("upsample-nearest-x2", (2, 3, 4), scale_factor=2),
    _case("upsample-nearest-x3-seq", (3, 5), scale_factor=3),
    _case("upsample-nearest-x1.5", (2, 5, 7), scale_factor=1.5),
    _case("upsample-nearest-axes", (2, 5, 7), scale_factor=(2.5, 0.6)),
    _case("upsample-nearest-size", (1, 5, 4), size=(7, 9)),
    _case("upsample-nearest-down", (2, 8, 7), size=3),
    _case("upsample-bilinear-x2", (2, 4, 5), scale_factor=2, mode="bilinear"),
    _case("upsample-bilinear-x2-corners", (2, 4, 5), scale_factor=2, mode="bilinear", align_corners=True),
    _case("upsample-bilinear-size", (1, 5, 6), size=(7, 3), mode="bilinear"),
    _case("upsample-bilinear-size-corners", (2, 5, 3), size=(9, 1), mode="bilinear", align_corners=True),
    _case("upsample-bilinear-x1.75", (2, 5, 6), scale_factor=1.75, mode="bilinear"),
    _case(
        "upsample-bilinear-recompute",
        (2, 5, 6),
        scale_factor=1.75,
        mode="bilinear",
        recompute_scale_factor=True,
    ),
    _case("upsample-bilinear-down", (2, 9, 8), scale_factor=0.5, mode="bilinear"),
    _case("upsample-linear-x3", (3, 5), scale_factor=3, mode="linear"),
    _case("upsample-linear-size-corners", (2, 5), size=11, mode="linear", align_corners=True),
]
