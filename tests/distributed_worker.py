"""Small data-parallel runs, the same code on one process and on N MPI ranks (run as a script by
``tests/test_distributed.py`` under ``mpiexec -n N``; imported by it for the one-process run).

``python tests/distributed_worker.py CASE OUT`` runs ``CASE`` in the world :func:`dist.init`
gives and, on rank 0, writes its results to ``OUT`` (``.npz``; exact numbers as ``"p/q"`` text).
The fault cases (``kill``, ``raise``, ``stop``) make rank 1 die, raise or freeze at step 5 of a
long run, and never write anything.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable

import numpy as np

import learnflux as lf
import learnflux.distributed as dist


def _data(n: int, features: int, classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, features))
    y = rng.integers(0, classes, n)
    return x, y


def _train(
    model: Any,
    opt: Any,
    loss: Any,
    x: Any,
    y: Any,
    world: dist.World,
    epochs: int,
    batch_size: int,
) -> dict[str, Any]:
    """The standalone API's loop: broadcast, shard, scale δ, sum the gradients, step. Returns the
    final weights and the global mean loss of each epoch."""
    dist.broadcast_parameters(model, world)
    sampler = dist.DistributedSampler(len(y), batch_size, world=world, seed=3)
    params = dist.optimizer_params(opt)
    losses = []
    for epoch in range(epochs):
        total = count = 0.0
        for shard in sampler.epoch(epoch):
            if shard.local:
                value = loss(model(x[shard.indices]), y[shard.indices])
                model.backward(shard.scale(loss.backward()), need_input_delta=False)
                total += float(value) * shard.local
                count += shard.local
            else:  # an empty share (the last batch is smaller than the number of ranks)
                for p in params:
                    p.grad = None
            opt.step()
        losses.append(dist.reduce_mean(total, count, world))
    out = {name: p.value for name, p in model.named_parameters()}
    out.update({name: np.asarray(b) for name, b in model.named_buffers()})
    out["epoch_loss"] = np.array(losses)
    return out


def mlp(world: dist.World, dtype: str = "float64", reduction: str = "ordered") -> dict[str, Any]:
    """A 2-layer MLP with cross-entropy and SGD with momentum; 41 samples in global batches of 10
    (the last batch has 1 sample: empty shares on ranks 1 and 2)."""
    x, y = _data(41, 6, 3, seed=1)
    lf.seed(5)
    model = lf.Sequential(lf.Input(6), lf.Linear(6, 8), lf.ReLU(), lf.Linear(8, 3)).astype(dtype)
    x = x.astype(dtype)
    opt = dist.DistributedOptimizer(
        lf.SGD(model.parameters(), lr=0.1, momentum=0.9), world, reduction=reduction
    )
    return _train(model, opt, lf.CrossEntropyLoss(), x, y, world, epochs=3, batch_size=10)


def exact(world: dist.World) -> dict[str, Any]:
    """The seed's kind of model in Fractions: Linear-ReLU-Linear, ½(o − y)², SGD lr 1/10; one
    epoch of 13 samples in batches of 4, 4, 4, 1 (the digits grow with every step)."""
    rng = np.random.default_rng(2)
    x = lf.numbers.exact_array(rng.integers(-4, 5, (13, 3)))
    y = lf.numbers.exact_array(rng.integers(0, 3, (13, 2)))
    lf.seed(7)
    model = lf.Sequential(lf.Input(3), lf.Linear(3, 4), lf.ReLU(), lf.Linear(4, 2)).astype("exact")
    for p in model.parameters():  # small fractions, so that the numbers stay readable
        p.value = np.vectorize(lambda v: Fraction(round(float(v) * 8), 8), otypes=[object])(p.value)
    opt = dist.DistributedOptimizer(lf.SGD(model.parameters(), lr=Fraction(1, 10)), world)
    return _train(model, opt, lf.SquaredError(), x, y, world, epochs=1, batch_size=4)


def cnn_syncbn(world: dist.World) -> dict[str, Any]:
    """A CNN whose BatchNorm is synchronized, float64: 47 images in global batches of 10."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((47, 2, 5, 5))
    y = rng.integers(0, 3, 47)
    lf.seed(9)
    model = lf.Sequential(
        lf.Input((2, 5, 5)),
        lf.Conv2d(2, 4, 3, padding=1, bias=False),  # BatchNorm follows: a bias would have no gradient
        lf.BatchNorm2d(4),
        lf.ReLU(),
        lf.GlobalAvgPool2d(),
        lf.Linear(4, 3),
    ).astype("float64")
    assert dist.convert_sync_batchnorm(model) == 1
    opt = dist.DistributedOptimizer(lf.Adam(model.parameters(), lr=0.01), world)
    return _train(model, opt, lf.CrossEntropyLoss(), x, y, world, epochs=2, batch_size=10)


def syncbn_gradients(world: dist.World) -> dict[str, Any]:
    """One SyncBatchNorm1d step on a global batch of 7 rows (uneven shares): the gathered output
    and δx, the summed δγ and δβ, and finite differences of the global loss Σ w·o."""
    rng = np.random.default_rng(6)
    x = rng.standard_normal((7, 3, 2)) * 2 + 1
    w = rng.standard_normal((7, 3, 2))
    layer = dist.SyncBatchNorm1d(3).astype("float64")
    layer.weight.value = rng.standard_normal(3)
    layer.bias.value = rng.standard_normal(3)
    share = dist.shard_of(np.arange(7), world)
    mine = share.indices

    def global_loss(xx: np.ndarray) -> float:
        return dist.reduce_sums([float((layer.forward(xx[mine]) * w[mine]).sum())], world)[0]

    out = layer.forward(x[mine])
    d_in = layer.backward(w[mine])
    grads = dist.GradientReducer(layer.parameters(), world)
    grads.reduce()
    order = np.concatenate(world.allgather(mine))
    result = {
        "out": np.concatenate(world.allgather(out))[np.argsort(order)],
        "d_in": np.concatenate(world.allgather(d_in))[np.argsort(order)],
        "d_weight": layer.weight.grad,
        "d_bias": layer.bias.grad,
        "running_mean": layer.running_mean,
        "running_var": layer.running_var,
    }
    h, fd = 1e-6, []
    for i, j, k in [(0, 0, 0), (3, 1, 1), (6, 2, 0), (5, 0, 1)]:
        plus, minus = x.copy(), x.copy()
        plus[i, j, k] += h
        minus[i, j, k] -= h
        fd.append((global_loss(plus) - global_loss(minus)) / (2 * h))
    result["fd"] = np.array(fd)
    return result


def sum_paths(world: dist.World) -> dict[str, Any]:
    """The ordered sum of a 1 MB float64 vector through both of its paths (Alltoallv + Allgatherv
    on 3 ranks or more; one Allgather for small vectors or 2 ranks), and the sum of the gathered
    vectors added in rank order by NumPy: all three must be the same bits on every rank."""
    rng = np.random.default_rng(100 + world.rank)
    mine = rng.standard_normal(125_000) * 10.0 ** rng.integers(-8, 8, 125_000)
    big = world.sum_ordered(mine.copy())
    saved = dist.world.GATHER_BYTES
    dist.world.GATHER_BYTES = 10**9
    try:
        small = world.sum_ordered(mine.copy())
    finally:
        dist.world.GATHER_BYTES = saved
    everyone = world.allgather(mine)
    reference = everyone[0].copy()
    for v in everyone[1:]:
        reference += v
    agree = world.allgather(big.tobytes() == reference.tobytes() and small.tobytes() == reference.tobytes())
    return {"all_equal": np.array(agree), "sum": big}


def faults(world: dist.World, how: str) -> None:
    """A long run in which rank 1 dies (SIGKILL), raises or freezes (SIGSTOP) at step 5."""
    sys.stderr.write(f"world: {world.describe()}\n")
    sys.stderr.flush()
    x, y = _data(64, 6, 3, seed=1)
    model = lf.Sequential(lf.Input(6), lf.Linear(6, 8), lf.ReLU(), lf.Linear(8, 3)).astype("float64")
    opt = dist.DistributedOptimizer(lf.SGD(model.parameters(), lr=0.1), world)
    loss = lf.CrossEntropyLoss()
    sampler = dist.DistributedSampler(64, 8, world=world)
    step = 0
    for epoch in range(1000):
        for shard in sampler.epoch(epoch):
            step += 1
            if step == 5 and world.rank == 1:
                if how == "kill":
                    os.kill(os.getpid(), signal.SIGKILL)
                elif how == "stop":
                    os.kill(os.getpid(), signal.SIGSTOP)
                else:
                    raise RuntimeError("a fault planted in rank 1 at step 5")
            loss(model(x[shard.indices]), y[shard.indices])
            model.backward(shard.scale(loss.backward()), need_input_delta=False)
            opt.step()
            time.sleep(0.01)


class _KillAt(lf.Callback):
    """SIGKILL this rank at the end of update ``step`` (a fault mid-epoch, after a backup)."""

    def __init__(self, step: int, rank: int) -> None:
        self.step, self.rank = step, rank

    def on_batch_end(self, batch: int, logs: dict) -> None:
        if self.trainer.global_step == self.step and dist.get_world().rank == self.rank:
            os.kill(os.getpid(), signal.SIGKILL)


def fit_run(world: dist.World, folder: str = "", kill_step: int = 0) -> dict[str, Any]:
    """``fit`` with what a real run uses: validation data, accuracy, gradient accumulation over 2
    batches, clipping, a step schedule, early stopping, a CSV log and a best-model checkpoint
    (written by rank 0), and, with ``folder``, a backup every 2 updates. float64, 41 samples in
    global batches of 8 (uneven shares, and an empty one on 3 ranks in the last batch). On one
    process: the plain ``lf.Trainer``; on N ranks: ``dist.DistributedTrainer``."""
    x, y = _data(41, 6, 3, seed=11)
    xv, yv = _data(13, 6, 3, seed=12)
    lf.seed(21)
    model = lf.Sequential(lf.Input(6), lf.Linear(6, 8), lf.ReLU(), lf.Linear(8, 3)).astype("float64")
    opt = lf.SGD(model.parameters(), lr=0.2, momentum=0.5)
    out = Path(folder or ".")
    callbacks = [
        lf.EarlyStopping("val_loss", patience=2, restore_best=True),
        lf.CSVLogger(out / "history.csv") if folder else lf.Callback(),
        lf.ModelCheckpoint(str(out / "best.lf"), save_best_only=True) if folder else lf.Callback(),
    ]
    if folder:
        callbacks.append(lf.BackupAndRestore(out / "backup", save_freq=2))
    if kill_step:
        callbacks.append(_KillAt(kill_step, rank=1))
    options = dict(
        loss=lf.CrossEntropyLoss(),
        optimizer=opt,
        callbacks=callbacks,
        accumulate=2,
        clip_norm=1.0,
        scheduler=lf.optim.StepLR(opt, step_size=2, gamma=0.5),
        seed=4,
        verbose=0,
    )
    if world.size > 1:
        trainer = dist.DistributedTrainer(model, world=world, **options)
    else:
        trainer = lf.Trainer(model, **options)
    history = trainer.fit(x, y, epochs=6, batch_size=8, validation_data=(xv, yv))
    result = {name: p.value for name, p in model.named_parameters()}
    for key, values in history.history.items():
        result["history_" + key] = np.array(values, dtype=np.float64)
    return result


CASES: dict[str, Callable[[dist.World], Any]] = {
    "mlp64": mlp,
    "mlp64-mpi": lambda w: mlp(w, reduction="mpi"),
    "mlp32": lambda w: mlp(w, dtype="float32"),
    "exact": exact,
    "cnn-syncbn": cnn_syncbn,
    "syncbn-gradients": syncbn_gradients,
    "sum-paths": sum_paths,
    "fit": fit_run,
}


def encode(results: dict[str, Any]) -> dict[str, np.ndarray]:
    """Arrays for ``np.savez``: exact arrays as text ``"p/q"`` (no pickle)."""
    sys.set_int_max_str_digits(0)  # the fractions' digits grow with every step
    out = {}
    for k, v in results.items():
        v = np.asarray(v)
        out[k] = v.astype(str) if v.dtype == object else v
    return out


def decode_exact(arr: np.ndarray) -> np.ndarray:
    return np.vectorize(Fraction, otypes=[object])(arr)


def main(argv: list[str]) -> None:
    case, out = argv[0], argv[1] if len(argv) > 1 else ""
    world = dist.init()
    if case in ("kill", "raise", "stop"):
        faults(world, case)
        return
    if case == "fit-backup":  # argv: OUT FOLDER KILL_STEP
        results = fit_run(world, argv[2], int(argv[3]))
    else:
        results = CASES[case](world)
    if world.rank == 0:
        np.savez(out, **encode(results))


if __name__ == "__main__":
    main(sys.argv[1:])
