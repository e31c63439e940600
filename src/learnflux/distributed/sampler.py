"""Sharding: each rank's disjoint share of every global batch.

The epoch's order is one permutation, drawn identically on every rank from the shared seed. It is
cut into **global batches** of ``batch_size`` consecutive positions, exactly the batches one
process would train on; rank ``r`` of ``N`` takes positions ``r, r + N, r + 2N, …`` of each
(PyTorch's ``DistributedSampler`` takes ``indices[rank::N]`` of the epoch, which, batched by
``batch_size/N`` on every rank, is the same split). The shares are disjoint and together are the
global batch.

The remainder, when a global batch does not divide by ``N`` (the last one of an epoch, or a batch
size that is not a multiple of ``N``), is handled in one of three ways:

* ``"uneven"`` (learnflux's default): the first ``len % N`` ranks take one sample more. Nothing is
  added or dropped, and each rank's δ is weighted by its share (:meth:`Shard.scale`), so the
  update equals one process's on the same global batch.
* ``"pad"``: PyTorch's ``drop_last=False``: the batch is padded with its own first samples up to a
  multiple of ``N`` (those samples count twice in that update).
* ``"drop"``: PyTorch's ``drop_last=True``: the last ``len % N`` samples of the batch are left out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator, Optional

import numpy as np

from ..errors import ConfigError
from .reduce import delta_scale
from .world import World, get_world

REMAINDERS = ("uneven", "pad", "drop")


@dataclass(frozen=True)
class Shard:
    """This rank's share of one global batch: ``indices`` into the data set, ``local`` =
    ``len(indices)``, ``total`` = the global batch's number of samples (after padding or
    dropping)."""

    indices: np.ndarray
    local: int
    total: int

    def scale(self, delta: np.ndarray) -> np.ndarray:
        """The loss's δ over this shard turned into the δ of the global batch's mean loss:
        ``δ · local/total`` (exact in exact mode). Sum the gradients of the ranks afterwards
        (:class:`~learnflux.distributed.DistributedOptimizer`)."""
        return delta * delta_scale(self.local, self.total, delta.dtype)


def share_positions(batch_len: int, rank: int, size: int, remainder: str = "uneven") -> np.ndarray:
    """The positions (0 … ``batch_len`` − 1) of a global batch that rank ``rank`` of ``size``
    takes; see the module docstring for ``remainder``."""
    if remainder not in REMAINDERS:
        raise ConfigError(f"remainder must be one of {REMAINDERS}, got {remainder!r}")
    extra = batch_len % size
    if remainder == "pad" and extra:
        padded = np.concatenate([np.arange(batch_len), np.arange(size - extra) % batch_len])
        return padded[rank::size]
    if remainder == "drop" and extra:
        return np.arange(rank, batch_len - extra, size)
    return np.arange(rank, batch_len, size)


def share_sizes(batch_len: int, size: int, remainder: str = "uneven") -> list[int]:
    """Every rank's share of a global batch of ``batch_len`` samples."""
    return [len(share_positions(batch_len, r, size, remainder)) for r in range(size)]


class DistributedSampler:
    """Indices of this rank's share of every global batch of an epoch.

    Args:
        num_samples: the size of the data set (the same on every rank).
        batch_size: the **global** batch size (each rank gets about ``batch_size/N``).
        world: the job's world (default :func:`~learnflux.distributed.get_world`).
        shuffle: draw the epoch's order from ``numpy.random.default_rng(seed + epoch)`` (as
            PyTorch's sampler seeds ``seed + epoch``): the same on every rank, a new one each
            epoch; ``False``: data-set order.
        seed: the shared seed.
        drop_last: leave out the last global batch when it is smaller than ``batch_size`` (as one
            process's ``drop_last``).
        remainder: ``"uneven"``, ``"pad"`` or ``"drop"`` (module docstring).

    ``for shard in sampler.epoch(e)`` gives one :class:`Shard` per global batch; ``set_epoch(e)``
    then ``iter(sampler)`` is the same, PyTorch-style.
    """

    def __init__(
        self,
        num_samples: int,
        batch_size: int,
        world: Optional[World] = None,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
        remainder: str = "uneven",
    ) -> None:
        self.world = world if world is not None else get_world()
        for name, value in (("num_samples", num_samples), ("batch_size", batch_size)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ConfigError(f"DistributedSampler: {name} must be a positive integer, got {value!r}")
        if batch_size < self.world.size:
            raise ConfigError(
                f"DistributedSampler: the global batch_size {batch_size} is smaller than the number "
                f"of ranks {self.world.size}: some ranks would have no sample in any batch"
            )
        if remainder not in REMAINDERS:
            raise ConfigError(f"DistributedSampler: remainder must be one of {REMAINDERS}, got {remainder!r}")
        self.num_samples = int(num_samples)
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.seed = int(seed)
        self.drop_last = bool(drop_last)
        self.remainder = remainder
        self._epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self._epoch = int(epoch)

    def order(self, epoch: int) -> np.ndarray:
        """The epoch's order of the data set (the same on every rank)."""
        if not self.shuffle:
            return np.arange(self.num_samples)
        return np.random.default_rng(self.seed + int(epoch)).permutation(self.num_samples)

    def __len__(self) -> int:
        n, b = self.num_samples, self.batch_size
        return n // b if self.drop_last else -(-n // b)

    def epoch(self, epoch: int) -> Iterator[Shard]:
        order = self.order(epoch)
        yield from shards(order, self.batch_size, self.world, self.drop_last, self.remainder)

    def __iter__(self) -> Iterator[Shard]:
        return self.epoch(self._epoch)


def shards(
    order: np.ndarray, batch_size: int, world: World, drop_last: bool = False, remainder: str = "uneven"
) -> Iterator[Shard]:
    """This rank's :class:`Shard` of each global batch of ``order`` (consecutive runs of
    ``batch_size`` positions)."""
    n = len(order)
    stop = n - n % batch_size if drop_last else n
    for begin in range(0, stop, batch_size):
        batch = order[begin : min(begin + batch_size, n)]
        yield shard_of(batch, world, remainder)


def shard_of(batch: Any, world: World, remainder: str = "uneven") -> Shard:
    """This rank's share of one global batch (an array of indices)."""
    batch = np.asarray(batch)
    positions = share_positions(len(batch), world.rank, world.size, remainder)
    total = sum(share_sizes(len(batch), world.size, remainder))
    return Shard(batch[positions], len(positions), total)
