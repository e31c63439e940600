"""Batching NumPy arrays: ``ArrayLoader`` yields ``(xb, yb)`` mini-batches, seeded and reproducible."""

from __future__ import annotations

import numbers
from typing import Any, Iterator, Optional, Tuple, Union

import numpy as np

from ..errors import ConfigError, ShapeError
from ..seeding import get_rng

SeedLike = Optional[Union[int, np.random.Generator]]


def _as_array(a: Any, name: str) -> np.ndarray:
    arr = np.asarray(a)  # no copy for an ndarray
    if arr.ndim == 0:
        raise ShapeError(f"ArrayLoader: {name} must have a sample axis, got a scalar")
    return arr


class ArrayLoader:
    """Mini-batches ``(xb, yb)`` over NumPy arrays, with seeded shuffling.

    Each ``for xb, yb in loader`` is one epoch. With ``shuffle=True`` every epoch visits the samples
    in a new order, drawn from ``seed`` and the epoch number, so two loaders built with the same seed
    give the same sequence of epochs (and :meth:`set_epoch` replays any epoch, e.g. when a training
    run resumes). With ``shuffle=False`` the samples come in dataset order and each batch is a view
    (no copy); with shuffling each batch costs exactly one fancy-index copy of its own rows.

    Args:
        x: array of samples, first axis = samples (any array-like; an ndarray is not copied).
        y: optional array of targets with the same number of samples (``yb`` is ``None`` without).
        batch_size: samples per batch (int >= 1). The last batch is smaller when ``len(x)`` is not a
            multiple of it, unless ``drop_last``.
        shuffle: visit the samples in a new random order every epoch.
        drop_last: drop the last, incomplete batch (so every batch has ``batch_size`` samples).
        seed: int or ``numpy.random.Generator`` for the shuffling; ``None`` draws the seed once
            from learnflux's global generator (reproducible after ``lf.seed(n)``).

    Example:
        >>> loader = ArrayLoader(x, y, batch_size=64, seed=0)
        >>> len(loader)            # batches per epoch
        >>> for xb, yb in loader:  # one epoch
        ...     ...
    """

    def __init__(
        self,
        x: Any,
        y: Any = None,
        batch_size: int = 32,
        shuffle: bool = True,
        drop_last: bool = False,
        seed: SeedLike = None,
    ) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size < 1:
            raise ConfigError(f"ArrayLoader: batch_size must be an integer >= 1, got {batch_size!r}")
        self.x = _as_array(x, "x")
        self.y = None if y is None else _as_array(y, "y")
        if self.y is not None and len(self.y) != len(self.x):
            raise ShapeError(
                f"ArrayLoader: x and y must have the same number of samples, "
                f"got {len(self.x)} (x shape {self.x.shape}) and {len(self.y)} (y shape {self.y.shape})"
            )
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        if seed is None or isinstance(seed, np.random.Generator):
            self.seed = int(get_rng(seed).integers(2**63))
        elif isinstance(seed, numbers.Integral) and not isinstance(seed, bool) and seed >= 0:
            self.seed = int(seed)
        else:
            raise ConfigError(f"ArrayLoader: seed must be None, an int >= 0 or a Generator, got {seed!r}")
        self.epoch = 0  # the epoch the next iteration will produce

    @property
    def num_samples(self) -> int:
        """Number of samples in the dataset."""
        return len(self.x)

    def __len__(self) -> int:
        """Number of batches per epoch."""
        n, b = len(self.x), self.batch_size
        return n // b if self.drop_last else -(-n // b)

    def set_epoch(self, epoch: int) -> None:
        """Make the next iteration produce epoch ``epoch`` (0-based) of this loader's sequence."""
        self.epoch = int(epoch)

    def order(self, epoch: int) -> Optional[np.ndarray]:
        """The sample order of epoch ``epoch`` (an index array), or ``None`` without shuffling."""
        if not self.shuffle:
            return None
        return np.random.default_rng([self.seed, int(epoch)]).permutation(len(self.x))

    def __iter__(self) -> Iterator[Tuple[np.ndarray, Optional[np.ndarray]]]:
        order = self.order(self.epoch)
        self.epoch += 1
        return self._batches(order)

    def _batches(self, order: Optional[np.ndarray]) -> Iterator[Tuple[np.ndarray, Optional[np.ndarray]]]:
        x, y, b = self.x, self.y, self.batch_size
        stop_at = len(self) * b
        for start in range(0, min(stop_at, len(x)), b):
            if order is None:
                sl = slice(start, start + b)
                yield x[sl], (None if y is None else y[sl])
            else:
                idx = order[start : start + b]
                yield x[idx], (None if y is None else y[idx])

    def __repr__(self) -> str:
        return (
            f"ArrayLoader(samples={len(self.x)}, batch_size={self.batch_size}, shuffle={self.shuffle}, "
            f"drop_last={self.drop_last}, seed={self.seed})"
        )
