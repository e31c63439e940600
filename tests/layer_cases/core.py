"""Cases for the layers of the core engine."""

import learnflux as lf

from ..harness import LayerCase


def _torch(factory):
    def build():
        import torch

        return factory(torch.nn).double()

    return build


def _torch_merge(kind, dim=None):
    """A parameter-free torch module taking several inputs: their sum, or ``torch.cat``."""

    def build():
        import torch

        class Merge(torch.nn.Module):
            def forward(self, *xs):
                if kind == "cat":
                    return torch.cat(xs, dim=dim)
                out = xs[0]
                for x in xs[1:]:
                    out = out + x
                return out

        return Merge().double()

    return build


# Concat on every axis of 2-D, 3-D and 4-D inputs (per-sample shapes of 1, 2 and 3 axes), with
# sizes that differ along the axis, so that cutting δ on any other axis gives wrong shapes
_CONCAT_AXES = [
    ("2d-axis1", 1, [(4,), (2,), (3,)]),
    ("2d-axis-1", -1, [(4,), (2,)]),
    ("3d-axis1", 1, [(2, 3), (1, 3), (3, 3)]),
    ("3d-axis2", 2, [(2, 3), (2, 1)]),
    ("3d-axis-1", -1, [(2, 3), (2, 2)]),
    ("3d-axis-2", -2, [(2, 3), (3, 3)]),
    ("4d-axis1", 1, [(2, 3, 4), (1, 3, 4)]),
    ("4d-axis2", 2, [(2, 3, 4), (2, 1, 4), (2, 2, 4)]),
    ("4d-axis3", 3, [(2, 3, 4), (2, 3, 2)]),
    ("4d-axis-1", -1, [(2, 3, 4), (2, 3, 1)]),
    ("4d-axis-3", -3, [(2, 3, 4), (3, 3, 4)]),
]

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
    LayerCase("add", lambda: lf.Add(), [(4,), (4,)], exact=True, torch=_torch_merge("sum")),
    LayerCase(
        "add-3",
        lambda: lf.Add(),
        [(2, 3, 3), (2, 3, 3), (2, 3, 3)],
        exact=True,
        torch=_torch_merge("sum"),
    ),
    LayerCase("add-4-vectors", lambda: lf.Add(), [(5,)] * 4, exact=True, torch=_torch_merge("sum")),
    LayerCase("concat", lambda: lf.Concat(), [(4,), (2,)], exact=True),
    LayerCase("concat-channels", lambda: lf.Concat(axis=1), [(2, 3, 3), (1, 3, 3)]),
    *[
        LayerCase(
            f"concat-{name}",
            (lambda axis=axis: lf.Concat(axis=axis)),
            shapes,
            exact=True,
            torch=_torch_merge("cat", axis),
        )
        for name, axis, shapes in _CONCAT_AXES
    ],
]
