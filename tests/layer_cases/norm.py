"""Cases for the normalization layers (BatchNorm1d, BatchNorm2d, LayerNorm, RMSNorm).

Each layer gets random γ, β (and running statistics), so that a backward pass that forgot γ
(or used the running statistics in the training phase) cannot pass by luck with γ = 1, β = 0.
Batch norm differs between the phases (batch vs running statistics): ``deterministic=False``.
"""

import numpy as np

import learnflux as lf

from ..harness import LayerCase


def _torch(factory):
    def build():
        import torch

        return factory(torch.nn).double()

    return build


def _randomized(layer, seed=0):
    rng = np.random.default_rng(seed)
    for p in layer.parameters():
        if p.name == "weight":
            p.value = rng.uniform(0.5, 1.5, p.shape)
        else:
            p.value = rng.normal(0.0, 0.5, p.shape)
    for name, buf in list(layer.named_buffers()):
        if name == "running_mean":
            layer.set_buffer(name, rng.normal(0.0, 0.5, buf.shape))
        elif name == "running_var":
            layer.set_buffer(name, rng.uniform(0.5, 2.0, buf.shape))
        elif name == "num_batches_tracked":
            layer.set_buffer(name, np.array(3))
    return layer


CASES = [
    LayerCase(
        "batchnorm1d",
        lambda: _randomized(lf.BatchNorm1d(4)),
        (4,),
        batch_sizes=(2, 5),
        deterministic=False,
        torch=_torch(lambda nn: nn.BatchNorm1d(4)),
    ),
    LayerCase(
        "batchnorm1d-ncl",
        lambda: _randomized(lf.BatchNorm1d(3)),
        (3, 5),
        deterministic=False,
        torch=_torch(lambda nn: nn.BatchNorm1d(3)),
    ),
    LayerCase(
        "batchnorm1d-momentum-none",
        lambda: _randomized(lf.BatchNorm1d(4, momentum=None)),
        (4,),
        batch_sizes=(2, 3),
        deterministic=False,
        torch=_torch(lambda nn: nn.BatchNorm1d(4, momentum=None)),
    ),
    LayerCase(
        "batchnorm2d",
        lambda: _randomized(lf.BatchNorm2d(3)),
        (3, 4, 5),
        deterministic=False,
        torch=_torch(lambda nn: nn.BatchNorm2d(3)),
    ),
    LayerCase(
        "batchnorm2d-eps-momentum",
        lambda: _randomized(lf.BatchNorm2d(2, eps=1e-3, momentum=0.3)),
        (2, 3, 3),
        deterministic=False,
        torch=_torch(lambda nn: nn.BatchNorm2d(2, eps=1e-3, momentum=0.3)),
    ),
    LayerCase(
        "batchnorm2d-noaffine",
        lambda: _randomized(lf.BatchNorm2d(3, affine=False)),
        (3, 3, 3),
        deterministic=False,
        torch=_torch(lambda nn: nn.BatchNorm2d(3, affine=False)),
    ),
    # without running statistics both phases use the batch's: the same output
    LayerCase(
        "batchnorm2d-no-running-stats",
        lambda: _randomized(lf.BatchNorm2d(2, track_running_stats=False)),
        (2, 3, 3),
        torch=_torch(lambda nn: nn.BatchNorm2d(2, track_running_stats=False)),
    ),
    LayerCase(
        "layernorm", lambda: _randomized(lf.LayerNorm(6)), (6,), torch=_torch(lambda nn: nn.LayerNorm(6))
    ),
    LayerCase(
        "layernorm-last2",
        lambda: _randomized(lf.LayerNorm((4, 5))),
        (3, 4, 5),
        torch=_torch(lambda nn: nn.LayerNorm((4, 5))),
    ),
    LayerCase(
        "layernorm-noaffine",
        lambda: lf.LayerNorm(5, elementwise_affine=False),
        (2, 5),
        torch=_torch(lambda nn: nn.LayerNorm(5, elementwise_affine=False)),
    ),
    LayerCase(
        "layernorm-nobias-eps",
        lambda: _randomized(lf.LayerNorm(4, eps=1e-3, bias=False)),
        (4,),
        torch=_torch(lambda nn: nn.LayerNorm(4, eps=1e-3, bias=False)),
    ),
    # RMSNorm: eps=None is the dtype's machine epsilon, in both frameworks
    LayerCase("rmsnorm", lambda: _randomized(lf.RMSNorm(6)), (6,), torch=_torch(lambda nn: nn.RMSNorm(6))),
    LayerCase(
        "rmsnorm-seq-eps",
        lambda: _randomized(lf.RMSNorm(8, eps=1e-3), 1),
        (5, 8),
        torch=_torch(lambda nn: nn.RMSNorm(8, eps=1e-3)),
    ),
    LayerCase(
        "rmsnorm-last2",
        lambda: _randomized(lf.RMSNorm((3, 4)), 2),
        (2, 3, 4),
        torch=_torch(lambda nn: nn.RMSNorm((3, 4))),
    ),
    LayerCase(
        "rmsnorm-noaffine",
        lambda: lf.RMSNorm(5, elementwise_affine=False),
        (3, 5),
        torch=_torch(lambda nn: nn.RMSNorm(5, elementwise_affine=False)),
    ),
]
