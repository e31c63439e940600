"""Cases for learnflux.distributed's SyncBatchNorm1d/2d in a single-process world (no MPI is
imported): the global batch is the local one, so each is BatchNorm on that batch, and PyTorch's
BatchNorm is its twin (torch's own SyncBatchNorm needs a process group). The statistics across
ranks are checked under mpiexec in tests/test_distributed.py."""

import learnflux.distributed as dist

from ..harness import LayerCase
from .norm import _randomized, _torch

CASES = [
    LayerCase(
        "sync-batchnorm1d",
        lambda: _randomized(dist.SyncBatchNorm1d(4)),
        (4,),
        batch_sizes=(2, 5),
        deterministic=False,
        torch=_torch(lambda nn: nn.BatchNorm1d(4)),
    ),
    LayerCase(
        "sync-batchnorm2d",
        lambda: _randomized(dist.SyncBatchNorm2d(3, eps=1e-3, momentum=0.3)),
        (3, 4, 5),
        deterministic=False,
        torch=_torch(lambda nn: nn.BatchNorm2d(3, eps=1e-3, momentum=0.3)),
    ),
]
