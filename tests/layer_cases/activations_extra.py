"""Cases for the activations added by issue 3: GELU (erf and tanh forms), SiLU, Softmax and
LogSoftmax along several axes. Inputs are spread wider than N(0, 1) so GELU's tails are used."""

import learnflux as lf

from ..harness import LayerCase


def _torch(factory):
    def build():
        import torch

        return factory(torch.nn).double()

    return build


def _wide(rng, shape):
    return 3.0 * rng.standard_normal(shape)


CASES = [
    LayerCase("gelu", lambda: lf.GELU(), (7,), input_fn=_wide, torch=_torch(lambda nn: nn.GELU())),
    LayerCase("gelu-image", lambda: lf.GELU(), (2, 3, 3), torch=_torch(lambda nn: nn.GELU())),
    LayerCase(
        "gelu-tanh",
        lambda: lf.GELU(approximate="tanh"),
        (7,),
        input_fn=_wide,
        torch=_torch(lambda nn: nn.GELU(approximate="tanh")),
    ),
    LayerCase("silu", lambda: lf.SiLU(), (7,), input_fn=_wide, torch=_torch(lambda nn: nn.SiLU())),
    LayerCase(
        "softmax", lambda: lf.Softmax(), (5,), input_fn=_wide, torch=_torch(lambda nn: nn.Softmax(dim=-1))
    ),
    LayerCase("softmax-dim1", lambda: lf.Softmax(dim=1), (4, 3), torch=_torch(lambda nn: nn.Softmax(dim=1))),
    LayerCase(
        "softmax-image-channels",
        lambda: lf.Softmax(dim=1),
        (3, 2, 2),
        torch=_torch(lambda nn: nn.Softmax(dim=1)),
    ),
    LayerCase(
        "logsoftmax",
        lambda: lf.LogSoftmax(),
        (5,),
        input_fn=_wide,
        torch=_torch(lambda nn: nn.LogSoftmax(dim=-1)),
    ),
    LayerCase(
        "logsoftmax-dim1",
        lambda: lf.LogSoftmax(dim=1),
        (4, 2, 3),
        torch=_torch(lambda nn: nn.LogSoftmax(dim=1)),
    ),
]
