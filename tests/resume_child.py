"""A training run to kill and resume (run as a script by ``tests/test_resume.py`` and
``tools/resume_trials.py``).

A tiny CNN with BatchNorm, Dropout (its masks from the global generator), Adam and a cosine
schedule stepped per update, on a slice of the embedded digits, with early stopping (best
weights kept) and a CSV log, backed up by ``BackupAndRestore`` every ``--save-freq`` updates.
When it completes it writes its final weights and history to ``--out`` (``.npz``).

``--kill-step N --kill-in batch`` sends itself SIGKILL at the end of update N;
``--kill-in save`` at the first backup written after update N, half-way through writing it.
Without them it runs to the end (a run resumed from a backup may be killed again).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import signal
import sys

import numpy as np

import learnflux as lf
import learnflux.training.checkpoint as lfcheckpoint
from learnflux.training.checkpoint import BackupAndRestore


def build(samples: int) -> tuple:
    x, y = lf.data.load_digits()
    x, y = x[:samples], y[:samples]
    lf.seed(0)
    model = lf.Sequential(
        lf.Input((1, 8, 8)),
        lf.Conv2d(1, 4, 3, padding=1),
        lf.BatchNorm2d(4),
        lf.ReLU(),
        lf.MaxPool2d(2),
        lf.Flatten(),
        lf.Dropout(0.25),
        lf.Linear(64, 10),
    )
    return model, x, y


class _KillAtStep(lf.Callback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_batch_end(self, batch: int, logs: dict) -> None:
        if self.trainer.global_step == self.step:
            os.kill(os.getpid(), signal.SIGKILL)


def _kill_while_saving(after_step: int, trainer_box: list) -> None:
    """Make the first backup written after update ``after_step`` die half-way through."""
    original = lfcheckpoint.atomic_write  # the writer the backup callback calls

    def atomic_write(path, write):  # type: ignore[no-untyped-def]
        trainer = trainer_box[0] if trainer_box else None
        if str(path).endswith(".lfs") and trainer is not None and trainer.global_step >= after_step:

            def half(fh):  # type: ignore[no-untyped-def]
                buf = io.BytesIO()
                write(buf)
                data = buf.getvalue()
                fh.write(data[: len(data) // 2])
                fh.flush()
                os.kill(os.getpid(), signal.SIGKILL)

            return original(path, half)
        return original(path, write)

    lfcheckpoint.atomic_write = atomic_write


class _Box(lf.Callback):
    def __init__(self, box: list) -> None:
        self.box = box

    def on_train_begin(self) -> None:
        self.box[:] = [self.trainer]


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--backup", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--samples", type=int, default=256)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--save-freq", type=int, default=3)
    p.add_argument("--kill-step", type=int, default=None)
    p.add_argument("--kill-in", choices=("batch", "save"), default="batch")
    args = p.parse_args(argv)

    model, x, y = build(args.samples)
    opt = lf.Adam(model.parameters(), lr=1e-2)
    steps = -(-args.samples // args.batch_size) * args.epochs
    schedule = lf.optim.CosineAnnealingLR(opt, T_max=steps)
    backup = BackupAndRestore(args.backup, save_freq=args.save_freq)
    box: list = []
    callbacks: list = [
        _Box(box),
        lf.EarlyStopping("loss", patience=50, restore_best=True),
        lf.CSVLogger(os.path.join(args.backup, "history.csv")),
        backup,
    ]
    resuming = os.path.exists(backup.path)
    kill_at = -1  # the same callbacks in every run (a resumed run must have the killed run's)
    if args.kill_step is not None:
        if args.kill_in == "batch":
            kill_at = args.kill_step
        else:
            _kill_while_saving(args.kill_step, box)
    callbacks.append(_KillAtStep(kill_at))
    history = model.fit(
        x,
        y,
        epochs=args.epochs,
        batch_size=args.batch_size,
        loss=lf.CrossEntropyLoss(),
        optimizer=opt,
        scheduler=schedule,
        scheduler_interval="step",
        callbacks=callbacks,
        seed=7,
        verbose=0,
    )
    arrays = {f"w:{k}": v for k, v in model.state_dict().items()}
    arrays["history"] = np.frombuffer(json.dumps(history.history).encode(), dtype=np.uint8)
    arrays["resumed"] = np.array(resuming)
    np.savez(args.out, **arrays)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
