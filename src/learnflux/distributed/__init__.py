"""Data-parallel training over MPI: every rank holds the whole model, trains on its share of
each global batch, and the gradients are summed over the ranks before every update, so that N
ranks compute what one process computes on the same global batches (docs/distributed.md).

::

    import learnflux.distributed as dist

    world = dist.init()                      # rank, size; one process when not under mpiexec
    dist.broadcast_parameters(model, world)  # rank 0's initial weights and buffers everywhere
    opt = dist.DistributedOptimizer(lf.SGD(model.parameters(), lr=0.1), world)
    sampler = dist.DistributedSampler(len(x), batch_size=64, world=world, seed=0)
    for shard in sampler.epoch(0):           # this rank's share of each global batch
        loss(model(x[shard.indices]), y[shard.indices])
        model.backward(shard.scale(loss.backward()))   # the δ of the global batch's mean loss
        opt.step()                           # gradients summed over the ranks, then the update

Importing this package imports no MPI: mpi4py (the ``learnflux[mpi]`` extra) is imported by
:func:`init`, and only when the process was launched by an MPI launcher with more than one rank.
"""

from .reduce import (
    BUCKET_BYTES,
    DistributedOptimizer,
    GradientReducer,
    broadcast_parameters,
    delta_scale,
    optimizer_params,
    reduce_mean,
    reduce_sums,
)
from .sampler import DistributedSampler, Shard, shard_of, shards, share_positions, share_sizes
from .sync_batchnorm import (
    SyncBatchNorm1d,
    SyncBatchNorm2d,
    convert_sync_batchnorm,
    revert_sync_batchnorm,
)
from .trainer import DistributedTrainer, fit
from .world import (
    DistributedError,
    MPIWorld,
    SingleWorld,
    World,
    abort_on_error,
    check_same,
    get_world,
    init,
    launched_size,
)

__all__ = [name for name in dir() if not name.startswith("_")]
