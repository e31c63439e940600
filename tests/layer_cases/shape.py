"""Cases for the shape layers (Flatten, Reshape, Permute): exact-capable, PyTorch twins where one
exists (``nn.Flatten``, ``nn.Unflatten`` for a Reshape of vectors, and for Permute the module
``lf.to_torch`` builds: ``x.permute(*dims)``, torch.nn having no Permute)."""

import learnflux as lf

from ..harness import LayerCase


def _torch(factory):
    def build():
        import torch

        return factory(torch.nn).double()

    return build


CASES = [
    LayerCase("flatten", lambda: lf.Flatten(), (2, 3, 4), exact=True, torch=_torch(lambda nn: nn.Flatten())),
    LayerCase(
        "flatten-vector", lambda: lf.Flatten(), (5,), exact=True, torch=_torch(lambda nn: nn.Flatten())
    ),
    LayerCase(
        "flatten-start2", lambda: lf.Flatten(2), (2, 3, 4), exact=True, torch=_torch(lambda nn: nn.Flatten(2))
    ),
    LayerCase(
        "flatten-1-to-minus2",
        lambda: lf.Flatten(1, -2),
        (2, 3, 4),
        exact=True,
        torch=_torch(lambda nn: nn.Flatten(1, -2)),
    ),
    LayerCase(
        "reshape-unflatten",
        lambda: lf.Reshape((3, 4)),
        (12,),
        exact=True,
        torch=_torch(lambda nn: nn.Unflatten(1, (3, 4))),
    ),
    LayerCase(
        "reshape-minus1",
        lambda: lf.Reshape((-1,)),
        (2, 3, 3),
        exact=True,
        torch=_torch(lambda nn: nn.Flatten()),
    ),
    LayerCase("reshape-image", lambda: lf.Reshape((2, -1)), (3, 4), exact=True),
    LayerCase(
        "permute-sequence",
        lambda: lf.Permute([0, 2, 1]),
        (5, 3),
        exact=True,
        torch=_torch(lambda nn: lf.to_torch(lf.Permute([0, 2, 1]))),
    ),
    LayerCase(
        "permute-3-axes",
        lambda: lf.Permute([0, 3, 1, 2]),
        (2, 3, 4),
        exact=True,
        torch=_torch(lambda nn: lf.to_torch(lf.Permute([0, 3, 1, 2]))),
    ),
]
