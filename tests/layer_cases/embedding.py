"""Cases for Embedding (integer inputs: no input δ, the weight gradient is a scatter-add, so the
random ids below repeat and exercise the accumulation)."""

import learnflux as lf

from ..harness import LayerCase


def _torch(factory):
    def build():
        import torch

        return factory(torch.nn).double()

    return build


CASES = [
    LayerCase(
        "embedding",
        lambda: lf.Embedding(10, 4),
        (5,),
        input_kind="index",
        index_high=10,
        torch=_torch(lambda nn: nn.Embedding(10, 4)),
    ),
    LayerCase(
        "embedding-2d-ids",
        lambda: lf.Embedding(6, 3, rng=0),
        (2, 3),
        input_kind="index",
        index_high=6,
        torch=_torch(lambda nn: nn.Embedding(6, 3)),
    ),
]
