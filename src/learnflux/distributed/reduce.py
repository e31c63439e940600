"""Gradients summed over the ranks, parameters broadcast from rank 0, and the optimizer wrapper.

The 1/n convention across ranks. A loss's δ carries ``1/b`` for the ``b`` samples it saw
(docs/conventions.md, 'Loss and batches'). One process on a global batch of ``B`` samples
backpropagates ``δ = (1/B)(o − y)`` per sample; a rank holding ``b_r`` of them computes
``(1/b_r)(o − y)``. Multiplying its δ by ``b_r/B`` (:func:`delta_scale`) makes it the δ of the
global loss, so that the gradients of the ranks only need to be **summed**: ``Σ_r ∂L/∂W|_r =
∂L/∂W``. With equal shares this is the usual "average the gradients over N ranks" (``b_r/B =
1/N``); with unequal shares (the last batch of an epoch) it weights each rank by its share, and it
keeps layers that couple the ranks (:class:`~learnflux.distributed.SyncBatchNorm2d`) consistent.

Buckets. :class:`GradientReducer` packs the gradients into a few large contiguous vectors (one
per dtype, cut at ``bucket_bytes``) in the parameters' fixed order, and reduces each in one
collective, rather than one message per tensor: the per-message latency is paid a few times per
step, not once per tensor.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any, Iterable, Optional, Sequence

import numpy as np

from ..core.param import Param
from ..errors import ConfigError
from .world import DistributedError, World, check_same, get_world

#: the default bucket size (DDP's default is 25 MiB)
BUCKET_BYTES = 25 * 2**20

REDUCTIONS = ("ordered", "mpi")


def delta_scale(local: int, total: int, dtype: Any) -> Any:
    """``local/total`` in the arithmetic of ``dtype``: the factor that turns the δ of a loss
    over ``local`` samples into the δ of the mean loss over the ``total`` samples of the global
    batch (an exact Fraction in exact mode)."""
    if np.dtype(dtype) == object:
        return Fraction(int(local), int(total))
    return np.dtype(dtype).type(local / total)


class _Bucket:
    """Consecutive parameters of one dtype, reduced as one vector: their gradients, then one
    flag per parameter (1 if this rank has a gradient for it), then the extra values."""

    def __init__(self, params: list[Param], dtype: np.dtype) -> None:
        self.params = params
        self.dtype = dtype
        self.offsets: list[int] = []
        n = 0
        for p in params:
            self.offsets.append(n)
            n += p.size
        self.n_values = n
        self.buffer: Optional[np.ndarray] = None

    def pack(self, extra: Optional[np.ndarray]) -> np.ndarray:
        k = 0 if extra is None else extra.size
        size = self.n_values + len(self.params) + k
        if self.dtype == object:
            buf = np.empty(size, dtype=object)
        else:
            if self.buffer is None or self.buffer.size != size:
                self.buffer = np.empty(size, dtype=self.dtype)
            buf = self.buffer
        zero, one = (Fraction(0), Fraction(1)) if self.dtype == object else (0, 1)
        flags = self.n_values
        for i, (p, at) in enumerate(zip(self.params, self.offsets, strict=True)):
            g = p.grad
            view = buf[at : at + p.size]
            if g is None:
                view[...] = zero
                buf[flags + i] = zero
            else:
                if g.shape != p.shape:
                    raise DistributedError(
                        f"{p.describe()}: its gradient has shape {g.shape}, the parameter {p.shape}"
                    )
                view[...] = g.reshape(-1)
                buf[flags + i] = one
        if k:
            buf[flags + len(self.params) :] = extra
        return buf

    def unpack(self, buf: np.ndarray) -> np.ndarray:
        """Write the summed gradients back; return the summed extra values."""
        flags = self.n_values
        for i, (p, at) in enumerate(zip(self.params, self.offsets, strict=True)):
            if buf[flags + i] == 0:  # no rank had a gradient for it
                p.grad = None
                continue
            summed = buf[at : at + p.size].reshape(p.shape)
            g = p.grad
            if g is not None and g is getattr(p, "_own_grad", None) and g.dtype == summed.dtype:
                np.copyto(g, summed)  # the layer's own buffer: the steady state allocates nothing
            else:
                p.grad = summed.copy()
        return buf[flags + len(self.params) :]


class GradientReducer:
    """Sums the gradients of ``params`` over the ranks of ``world``, in buckets.

    Args:
        params: the parameters whose gradients are summed (an optimizer's, in its order).
        world: the job's world (default :func:`~learnflux.distributed.get_world`).
        bucket_bytes: the largest bucket (gradients of one dtype are packed in order and cut
            when a bucket would exceed it; a parameter larger than it gets a bucket of its own).
        reduction: ``"ordered"`` (default): :meth:`World.sum_ordered`, a fixed order of additions,
            the same bits on every rank and every run; ``"mpi"``: ``MPI_Allreduce`` (the MPI
            library's order: the ranks still agree in practice, but the result may change in the
            last bits with the number of ranks, the message size or the MPI version).

    A parameter without a gradient on a rank (``grad`` None: it took no part in that rank's
    backward pass) counts as zero there, and stays ``None`` when no rank had one.
    """

    def __init__(
        self,
        params: Iterable[Param],
        world: Optional[World] = None,
        bucket_bytes: int = BUCKET_BYTES,
        reduction: str = "ordered",
    ) -> None:
        if reduction not in REDUCTIONS:
            raise ConfigError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
        if isinstance(bucket_bytes, bool) or not isinstance(bucket_bytes, int) or bucket_bytes < 1:
            raise ConfigError(f"bucket_bytes must be a positive integer, got {bucket_bytes!r}")
        self.world = world if world is not None else get_world()
        self.params = _unique(params)
        self.reduction = reduction
        self.buckets: list[_Bucket] = []
        for dtype in dict.fromkeys(p.dtype for p in self.params):
            current: list[Param] = []
            size = 0
            for p in (p for p in self.params if p.dtype == dtype):
                nbytes = p.size * (8 if dtype.kind == "O" else dtype.itemsize)
                if current and size + nbytes > bucket_bytes:
                    self.buckets.append(_Bucket(current, dtype))
                    current, size = [], 0
                current.append(p)
                size += nbytes
            if current:
                self.buckets.append(_Bucket(current, dtype))
        self._checked = False

    def _check(self) -> None:
        check_same(
            self.world,
            "the parameters whose gradients are summed",
            [(p.name, p.shape, str(p.dtype)) for p in self.params],
        )
        self._checked = True

    def reduce(self, extra: Optional[Sequence[float]] = None) -> Optional[np.ndarray]:
        """Sum every gradient over the ranks, in place. ``extra``: a few numbers of this rank to
        sum along with the last bucket (a stop flag, a sample count: no extra message); their
        sums are returned (as float64)."""
        if self.world.size == 1:
            return None if extra is None else np.asarray(extra, dtype=np.float64)
        if not self._checked:
            self._check()
        extra_arr = None if extra is None else np.asarray(extra, dtype=np.float64)
        if not self.buckets:
            if extra_arr is None:
                return None
            return self._sum(extra_arr.copy())
        summed_extra = None
        last = len(self.buckets) - 1
        for i, bucket in enumerate(self.buckets):
            carry = None
            if i == last and extra_arr is not None:
                carry = extra_arr.astype(bucket.dtype) if bucket.dtype != object else _fractions(extra_arr)
            buf = self._sum(bucket.pack(carry))
            rest = bucket.unpack(buf)
            if i == last and extra_arr is not None:
                summed_extra = np.array([float(v) for v in rest], dtype=np.float64)
        return summed_extra

    def _sum(self, vector: np.ndarray) -> np.ndarray:
        if self.reduction == "mpi":
            return self.world.sum_mpi(vector)
        return self.world.sum_ordered(vector)

    @property
    def nbytes(self) -> int:
        """The bytes of gradient each rank contributes per step."""
        return sum(b.n_values * (8 if b.dtype == object else b.dtype.itemsize) for b in self.buckets)


def _fractions(values: np.ndarray) -> np.ndarray:
    out = np.empty(values.size, dtype=object)
    for i, v in enumerate(values):
        out[i] = Fraction(float(v))
    return out


def _unique(params: Iterable[Param]) -> list[Param]:
    seen: set[int] = set()
    out = []
    for p in params:
        if id(p) not in seen:
            seen.add(id(p))
            out.append(p)
    return out


def optimizer_params(optimizer: Any) -> list[Param]:
    """The parameters an optimizer updates, in its order (its param groups')."""
    groups = getattr(optimizer, "param_groups", None)
    if groups is None:
        raise ConfigError(f"{type(optimizer).__name__}: an optimizer with param_groups is needed")
    return _unique(p for g in groups for p in g["params"])


class DistributedOptimizer:
    """An optimizer whose ``step()`` first sums the gradients over the ranks (in buckets), then
    updates: Horovod's ``DistributedOptimizer``. Everything else (``param_groups``,
    ``state_dict``, ``zero_grad``, ``lr`` schedules) is the wrapped optimizer's.

    The gradients are **summed**: backpropagate the δ of the global loss on every rank, i.e.
    multiply the loss's δ by ``local/global`` batch size (:func:`delta_scale`, or
    ``shard.scale(delta)`` from :class:`~learnflux.distributed.DistributedSampler`). With
    ``average=True`` the sum is divided by the number of ranks instead (Horovod's convention:
    right when every rank holds the same number of samples and backpropagates its own mean loss).

    On one process (a :class:`~learnflux.distributed.SingleWorld`) it is the wrapped optimizer.
    """

    def __init__(
        self,
        optimizer: Any,
        world: Optional[World] = None,
        average: bool = False,
        bucket_bytes: int = BUCKET_BYTES,
        reduction: str = "ordered",
    ) -> None:
        if not hasattr(optimizer, "step"):
            raise ConfigError(f"DistributedOptimizer wraps an optimizer, got {optimizer!r}")
        self.optimizer = optimizer
        self.world = world if world is not None else get_world()
        self.average = bool(average)
        self.reducer = GradientReducer(
            optimizer_params(optimizer), self.world, bucket_bytes=bucket_bytes, reduction=reduction
        )

    def synchronize(self) -> None:
        """Sum (or average) the gradients over the ranks now, without stepping."""
        self.reducer.reduce()
        if self.average and self.world.size > 1:
            n = self.world.size
            for p in self.reducer.params:
                if p.grad is not None:
                    p.grad = p.grad / (Fraction(n) if p.grad.dtype == object else p.grad.dtype.type(n))

    def step(self) -> None:
        self.synchronize()
        self.optimizer.step()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.optimizer, name)

    def __repr__(self) -> str:
        return f"DistributedOptimizer({self.optimizer!r}, {self.world!r})"


# ---------------------------------------------------------------------------- broadcasts
def broadcast_parameters(model: Any, world: Optional[World] = None, root: int = 0) -> None:
    """Give every rank rank ``root``'s weights and buffers (BatchNorm's running statistics):
    call it once after building the model, before training, so that every rank starts from the
    same point. The ranks' models must have the same parameters and buffers (names, shapes,
    dtypes), else a :class:`DistributedError` names the ranks that differ."""
    world = world if world is not None else get_world()
    if world.size == 1:
        return
    params = list(model.named_parameters())
    owners = list(model.named_buffer_owners()) if hasattr(model, "named_buffer_owners") else []
    buffers = dict(model.named_buffers())
    signature = [(n, p.shape, str(p.dtype)) for n, p in params] + [
        (n, np.shape(buffers[n]), str(np.asarray(buffers[n]).dtype)) for n, _ in owners
    ]
    check_same(world, "the model's parameters and buffers", signature)
    for _, p in params:
        value = p.value
        if value.dtype == object or not value.flags.c_contiguous:
            p.value = world.broadcast(value if world.rank == root else None, root)
        else:
            world.broadcast_array(value, root)
    for name, (layer, local) in owners:
        arr = np.array(buffers[name], copy=True)
        if arr.dtype == object:
            arr = world.broadcast(arr if world.rank == root else None, root)
        else:
            world.broadcast_array(arr, root)
        layer._buffers[local] = arr


def reduce_sums(values: Sequence[float], world: Optional[World] = None) -> list[float]:
    """Sums over the ranks of a few numbers (loss totals, sample counts, metric counts), added in
    rank order: every rank gets the same floats."""
    world = world if world is not None else get_world()
    arr = np.array([float(v) for v in values], dtype=np.float64)
    return [float(v) for v in world.sum_ordered(arr)]


def reduce_mean(total: float, count: float, world: Optional[World] = None) -> float:
    """``Σ total / Σ count`` over the ranks: a global mean from per-rank sums (a loss summed over
    a rank's samples and its number of samples; correct, accuracy's count)."""
    t, c = reduce_sums([total, count], world)
    return t / c if c else float("nan")
