"""``fit`` over N ranks: the trainer of :mod:`learnflux.train`, data-parallel.

:class:`DistributedTrainer` is a :class:`~learnflux.train.Trainer` that, on a world of N ranks:

* starts every rank from rank 0's weights, buffers and random generators (the epochs' orders are
  then the same everywhere);
* cuts every global batch (the ``batch_size`` of the options: the same batches one process would
  train on) into the ranks' shares (:func:`~learnflux.distributed.shard_of`: rank ``r`` takes
  positions ``r, r + N, …``; the first ``len % N`` ranks take one more);
* scales each rank's δ by its share ``b_r/B`` (and ``1/k`` when accumulating ``k`` batches) and
  **sums** the gradients over the ranks before anything reads them (clipping, callbacks, the
  step): the update is one process's on the global batch;
* reports global values: the epoch's loss and metrics are sums over the ranks divided by the
  global counts; the validation data is shared among the ranks the same way;
* lets rank 0 alone write files (``ModelCheckpoint``, ``CSVLogger``, ``JSONLogger``,
  ``BackupAndRestore``'s backups, any callback with ``rank_zero_only = True``) and show the
  progress bar; the other ranks run the same callbacks' logic without writing;
* takes rank 0's ``stop_training`` at the end of every epoch (early stopping decided once,
  obeyed by all).

On one process (a :class:`~learnflux.distributed.SingleWorld`) it is the plain trainer, bit for
bit.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any, Iterator, Optional

import numpy as np

from ..errors import ConfigError, NonFiniteError
from ..training.callbacks import CallbackList, CSVLogger, JSONLogger, ModelCheckpoint
from ..training.train import History, Trainer, _arrays, _count, _is_loader, _take, iterate_batches
from .reduce import BUCKET_BYTES, GradientReducer, broadcast_parameters, optimizer_params
from .sampler import share_positions
from .world import DistributedError, World, check_same, init

_WRITERS: tuple[type, ...] = (ModelCheckpoint, CSVLogger, JSONLogger)
_HOOKS = (
    "on_train_begin",
    "on_train_end",
    "on_epoch_begin",
    "on_epoch_end",
    "on_batch_begin",
    "on_after_backward",
    "on_step_end",
    "on_batch_end",
)


def _noop(*args: Any, **kwargs: Any) -> None:
    return None


def _writes_files(callback: Any) -> bool:
    from ..training.checkpoint import BackupAndRestore

    flag = getattr(callback, "rank_zero_only", None)
    if flag is not None:
        return bool(flag)
    return isinstance(callback, (*_WRITERS, BackupAndRestore))


class _Shares:
    """The run's batches (``train._EpochBatches``), each global batch cut to this rank's share.
    Records the share's size and the global batch's for the δ scaling."""

    def __init__(self, data: Any, trainer: DistributedTrainer) -> None:
        self._data = data
        self._trainer = trainer

    def __getattr__(self, name: str) -> Any:
        return getattr(self._data, name)

    def _cut(self, batches: Any) -> Iterator[tuple[Any, Any]]:
        world = self._trainer.world
        for xb, yb in batches:
            total = len(yb) if yb is not None else _length(xb)
            positions = share_positions(total, world.rank, world.size)
            self._trainer._share = (len(positions), total)
            yield _take(xb, positions), (None if yb is None else yb[positions])

    def epoch(self) -> Iterator[tuple[Any, Any]]:
        return self._cut(self._data.epoch())

    def replay(self, start: int, start_state: dict[str, Any], seen: Any) -> Iterator[tuple[Any, Any]]:
        return self._cut(self._data.replay(start, start_state, seen))


def _length(x: Any) -> int:
    return int(np.shape(x[0] if isinstance(x, list) else x)[0])


class _RankZeroBackup:
    """A BackupAndRestore seen by the trainer: every rank decides together when to back up (the
    running sums of a mid-epoch backup are the global ones, summed then), rank 0 writes."""

    def __init__(self, backup: Any, trainer: DistributedTrainer) -> None:
        self._backup = backup
        self._trainer = trainer

    def __getattr__(self, name: str) -> Any:
        return getattr(self._backup, name)

    def save(self, trainer: Any, position: dict[str, Any]) -> None:
        if "meter" in position:
            position = {**position, "meter": self._trainer._global_meter_state(position["meter"])}
        if self._trainer.world.rank == 0:
            self._backup.save(trainer, position)


class DistributedTrainer(Trainer):
    """A :class:`~learnflux.train.Trainer` over the ranks of ``world`` (module docstring).

    ``DistributedTrainer(model, loss=..., optimizer=..., ..., world=None, reduction="ordered",
    bucket_bytes=BUCKET_BYTES)``: the trainer's arguments, plus the world (default
    :func:`~learnflux.distributed.init`), how the gradients are summed (``"ordered"``: a fixed
    order, the same bits on every rank and run; ``"mpi"``: ``MPI_Allreduce``) and the bucket size.
    ``batch_size`` is the **global** batch: each rank trains on about ``batch_size/N`` samples.
    """

    def __init__(
        self,
        model: Any,
        *args: Any,
        world: Optional[World] = None,
        reduction: str = "ordered",
        bucket_bytes: int = BUCKET_BYTES,
        **kwargs: Any,
    ) -> None:
        self.world = world if world is not None else init()
        super().__init__(model, *args, **kwargs)
        self.reducer = GradientReducer(
            optimizer_params(self.optimizer), self.world, bucket_bytes=bucket_bytes, reduction=reduction
        )
        self._share = (1, 1)
        self._started = False

    @property
    def distributed(self) -> bool:
        return self.world.size > 1

    def _callback_list(self, options: Any) -> CallbackList:
        callbacks = super()._callback_list(options)
        if self.world.size > 1 and self.world.rank != 0:
            for cb in callbacks.callbacks:
                if _writes_files(cb):  # the logic runs (its state stays the same), nothing is written
                    for hook in _HOOKS:
                        setattr(cb, hook, _noop)
        return callbacks

    # ------------------------------------------------------------------ a run
    def _prepare(self, x: Any, y: Any, options: Any, validation_data: Any) -> Any:
        if not self.distributed:
            return super()._prepare(x, y, options, validation_data)
        world = self.world
        if world.rank != 0:
            options = options.replace(verbose=0)  # one progress display: rank 0's
        run = super()._prepare(x, y, options, validation_data)
        n = self._run_signature["samples"]
        if n is not None:
            if options.batch_size < world.size:
                raise ConfigError(
                    f"fit: batch_size {options.batch_size} is the global batch; it cannot be shared "
                    f"by {world.size} ranks (give at least {world.size})"
                )
            last = n % options.batch_size
            if 0 < last < world.size and not options.drop_last and _has_sync_batchnorm(self.model):
                raise ConfigError(
                    f"fit: the last batch of each epoch holds {last} of the {n} samples, fewer than "
                    f"the {world.size} ranks, and a synchronized BatchNorm needs a sample on every "
                    "rank: give drop_last=True or another batch_size"
                )
        check_same(world, "the run (samples, batch size, shuffling, accumulation)", self._run_signature)
        if not self._started:  # every rank starts from rank 0's weights and generators
            from ..training.checkpoint import _rng_states, _set_rng_states

            broadcast_parameters(self.model, world)
            _set_rng_states(self, world.broadcast(_rng_states(self)), "DistributedTrainer")
            self._started = True
        run.data = _Shares(run.data, self)
        return run

    def _restore(self, run: Any) -> None:
        super()._restore(run)
        if not self.distributed:
            return
        where = None if run.resume is None else (int(run.resume["epoch"]), int(run.resume["batch"]))
        check_same(self.world, "the position to resume from (is the backup folder on every rank?)", where)
        if run.backup is not None:
            if run.resume is not None and "meter" in run.resume and self.world.rank != 0:
                run.resume["meter"] = _zero_meter_state(run.resume["meter"])  # rank 0 holds the sums
            run.backup = _RankZeroBackup(run.backup, self)

    def _end_epoch(self, number: int, logs: dict[str, Any], run: Any) -> None:
        super()._end_epoch(number, logs, run)
        if self.distributed:  # decided once, on rank 0, obeyed by all
            self.stop_training, self.stop_reason = self.world.broadcast(
                (self.stop_training, self.stop_reason)
            )

    # ------------------------------------------------------------------ a batch
    def _batch_pass(self, index: int, xb: Any, yb: Any, epoch: Any) -> Optional[dict[str, Any]]:
        """A rank with no sample of the batch (the last one is smaller than the number of ranks):
        no forward or backward pass, a zero gradient, but the same exchange and step (the rest of
        ``Trainer._train_batch``). Such a rank is never rank 0, so it draws no progress bar."""
        if self._share[0] == 0 and self.distributed:
            if epoch.group.first:
                for p in self.reducer.params:
                    p.grad = None  # counts as zero in the exchange
            return {"batch": index, "loss": float("nan")}
        return super()._batch_pass(index, xb, yb, epoch)

    def _forward_loss(self, index: int, xb: Any, yb: Any) -> Optional[tuple[Any, Any]]:
        if not self.distributed:
            return super()._forward_loss(index, xb, yb)
        try:
            out = self.model.forward(xb)
            return out, self.scoring.value(out, yb)
        except NonFiniteError as exc:  # the other ranks cannot stop gently: the job stops here
            raise NonFiniteError(
                f"rank {self.world.rank} of {self.world.size}, batch {index}: {exc}"
            ) from None

    def _backward(self, group: Any) -> None:
        if not self.distributed:
            return super()._backward(group)
        delta = self.scoring.loss.backward()
        local, total = self._share
        if self.scoring.per_sample_loss:  # a sum over the samples: the ranks' sums add up
            local = total = 1
        factor = _ratio(local, total * group.size, delta.dtype)
        if factor != 1:
            delta = delta * factor
        if self._is_model:
            self.model.backward(delta, need_input_delta=False, accumulate=not group.first)
        else:
            self.model.backward(delta, need_input_delta=False)

    def _reduce_gradients(self) -> None:
        if self.distributed:
            self.reducer.reduce()

    # ------------------------------------------------------------------ global values
    def _global_meter_state(self, state: dict[str, Any]) -> dict[str, Any]:
        names = list(state["totals"])
        values = [state["loss_total"], state["n"]]
        for name in names:
            values += list(state["totals"][name])
        summed = self.world.sum_ordered(np.array(values, dtype=np.float64))
        totals = {name: [float(summed[2 + 2 * i]), int(summed[3 + 2 * i])] for i, name in enumerate(names)}
        return {"loss_total": float(summed[0]), "n": int(summed[1]), "totals": totals}

    def _epoch_logs(self, meter: Any) -> dict[str, float]:
        if not self.distributed:
            return super()._epoch_logs(meter)
        merged = self.scoring.meter()
        merged.load_state(self._global_meter_state(meter.state()))
        return merged.result()

    def evaluate(self, x: Any, y: Any = None, batch_size: int = 256) -> dict[str, float]:
        """Loss and metrics over ``(x, y)``, the batches shared among the ranks as in training;
        the global values on every rank."""
        if not self.distributed:
            return super().evaluate(x, y, batch_size=batch_size)
        batch_size = _count("batch_size", batch_size, 1)
        if _is_loader(x, y):
            batches: Any = x
        else:
            x, y = _arrays(self.model, "evaluate", x, y, "evaluate needs targets y")
            self.scoring.resolve_metrics(y)
            batches = iterate_batches(x, y, batch_size)
        meter = None
        world = self.world
        was = self.model.training
        self.model.set_phase(False)
        try:
            for xb, yb in batches:
                if meter is None:
                    self.scoring.resolve_metrics(yb)
                    meter = self.scoring.meter()
                positions = share_positions(len(yb), world.rank, world.size)
                if not len(positions):
                    continue
                xs, ys = _take(xb, positions), yb[positions]
                out = self.model.forward(xs)
                meter.update(self.scoring.value(out, ys), out, ys)
        finally:
            self.model.set_phase(was)
        if meter is None:
            raise ConfigError("evaluate: no samples")
        merged = self.scoring.meter()
        merged.load_state(self._global_meter_state(meter.state()))
        return merged.result()


def _ratio(num: int, den: int, dtype: Any) -> Any:
    if np.dtype(dtype) == object:
        return Fraction(num, den)
    if num == den:
        return 1
    return np.dtype(dtype).type(num / den)


def _zero_meter_state(state: dict[str, Any]) -> dict[str, Any]:
    return {"loss_total": 0.0, "n": 0, "totals": {k: [0.0, 0] for k in state["totals"]}}


def _has_sync_batchnorm(model: Any) -> bool:
    from .sync_batchnorm import _SyncBatchNorm

    stack = [model]
    while stack:
        layer = stack.pop()
        if isinstance(layer, _SyncBatchNorm):
            return True
        stack.extend(getattr(layer, "layers", []) or [])
    return False


def fit(model: Any, x: Any, y: Any = None, *, world: Optional[World] = None, **kwargs: Any) -> History:
    """``lf.fit`` data-parallel: ``dist.fit(model, x, y, epochs=..., batch_size=..., ...)`` takes
    the arguments of :func:`learnflux.train.fit` (``batch_size`` is the global batch) and trains
    with a :class:`DistributedTrainer`; every rank returns the same (global) history."""
    from ..training.train import FIT_ARGUMENTS, fit_options

    options, validation_data = fit_options("fit", FIT_ARGUMENTS, (), kwargs)
    trainer = DistributedTrainer(model, options=options, world=world)
    history = trainer.fit(x, y, validation_data=validation_data)
    model._fit_defaults = {"loss": trainer.loss, "metrics": options.metrics}
    return history


__all__ = ["DistributedTrainer", "fit", "DistributedError"]
