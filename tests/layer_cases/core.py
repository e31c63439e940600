"""Cases for the layers of the core engine."""

import learnflux as lf

from ..harness import LayerCase


def _torch(factory):
    def build():
        import torch

        return factory(torch.nn).double()

    return build


CASES = [
    LayerCase("input", lambda: lf.Input(4), (4,), exact=True),
    LayerCase("linear", lambda: lf.Linear(4, 3), (4,), exact=True, torch=_torch(lambda nn: nn.Linear(4, 3))),
    LayerCase(
        "linear-nobias",
        lambda: lf.Linear(5, 2, bias=False),
        (5,),
        exact=True,
        torch=_torch(lambda nn: nn.Linear(5, 2, bias=False)),
    ),
    LayerCase("relu", lambda: lf.ReLU(), (6,), exact=True, torch=_torch(lambda nn: nn.ReLU())),
    LayerCase("relu-image", lambda: lf.ReLU(), (2, 3, 3), exact=True, torch=_torch(lambda nn: nn.ReLU())),
    LayerCase(
        "leaky-relu", lambda: lf.LeakyReLU(), (6,), exact=True, torch=_torch(lambda nn: nn.LeakyReLU())
    ),
    LayerCase(
        "leaky-relu-0.2",
        lambda: lf.LeakyReLU(0.2),
        (6,),
        exact=True,
        torch=_torch(lambda nn: nn.LeakyReLU(0.2)),
    ),
    LayerCase("sigmoid", lambda: lf.Sigmoid(), (5,), torch=_torch(lambda nn: nn.Sigmoid())),
    LayerCase("tanh", lambda: lf.Tanh(), (5,), torch=_torch(lambda nn: nn.Tanh())),
    LayerCase("add", lambda: lf.Add(), [(4,), (4,)], exact=True),
    LayerCase("add-3", lambda: lf.Add(), [(2, 3, 3), (2, 3, 3), (2, 3, 3)]),
    LayerCase("concat", lambda: lf.Concat(), [(4,), (2,)], exact=True),
    LayerCase("concat-channels", lambda: lf.Concat(axis=1), [(2, 3, 3), (1, 3, 3)]),
]
