"""Callbacks: early stopping, checkpoints, learning-rate scheduling, loggers, TerminateOnNaN."""

import csv
import json

import numpy as np
import pytest

import learnflux as lf
from learnflux.core.layer import Layer


def data(n=64, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 3)).astype(np.float32)
    y = (x[:, 0] - x[:, 1] > 0).astype(np.int64)
    return x, y


def model(seed=0):
    lf.seed(seed)
    return lf.Sequential(lf.Input(3), lf.Linear(3, 8), lf.ReLU(), lf.Linear(8, 2))


def fit(m, callbacks, epochs=5, lr=0.05, **kw):
    x, y = data()
    xv, yv = data(32, seed=1)
    return m.fit(
        x,
        y,
        epochs=epochs,
        batch_size=16,
        loss=lf.CrossEntropyLoss(),
        optimizer=kw.pop("optimizer", None) or lf.SGD(m.parameters(), lr=lr),
        validation_data=(xv, yv),
        callbacks=callbacks,
        verbose=0,
        seed=0,
        **kw,
    )


class Scripted(lf.Callback):
    """Replaces the monitored value by a script, to drive EarlyStopping deterministically."""

    def __init__(self, values):
        self.values = values

    def on_epoch_end(self, epoch, logs):
        logs["val_loss"] = self.values[epoch]


def test_early_stopping_patience_and_restore_best():
    m = model()
    snapshots = []

    class Snap(lf.Callback):
        def on_epoch_end(self, epoch, logs):
            snapshots.append({k: v.copy() for k, v in self.model.state_dict().items()})

    stop = lf.EarlyStopping(monitor="val_loss", patience=2, restore_best=True)
    hist = fit(m, [Scripted([1.0, 0.5, 0.6, 0.55, 0.1, 0.0]), Snap(), stop], epochs=6)
    assert len(hist) == 4  # best at epoch 2 (index 1), then 2 epochs without improvement, stop
    assert stop.best == 0.5 and stop.best_epoch == 1 and stop.stopped_epoch == 3
    assert "early stopping" in hist.stop_reason
    for k, v in m.state_dict().items():
        np.testing.assert_array_equal(v, snapshots[1][k])


def test_early_stopping_min_delta_and_max_mode():
    stop = lf.EarlyStopping(monitor="val_loss", patience=0, min_delta=0.2)
    hist = fit(model(), [Scripted([1.0, 0.9, 0.5, 0.1]), stop], epochs=4)
    assert len(hist) == 2  # 0.9 is not an improvement of more than 0.2
    assert lf.EarlyStopping(monitor="val_accuracy").tracker.mode == "max"
    with pytest.raises(lf.ConfigError, match="cannot monitor 'val_f2'"):
        fit(model(), [lf.EarlyStopping(monitor="val_f2")], epochs=1)


def test_model_checkpoint_keeps_the_best(tmp_path):
    m = model()
    ckpt = lf.ModelCheckpoint(tmp_path / "best.lf", monitor="val_loss", save_best_only=True)
    fit(m, [Scripted([1.0, 0.5, 0.7, 0.4, 0.9]), ckpt], epochs=5)
    assert ckpt.best_epoch == 3 and len(ckpt.saved) == 3
    assert not list(tmp_path.glob(".*tmp"))  # atomic writes leave no temporary file
    every = lf.ModelCheckpoint(str(tmp_path / "e{epoch:02d}-{loss:.2f}.lf"))
    fit(model(), [every], epochs=2)
    assert sorted(p.name[:3] for p in tmp_path.glob("e*.lf")) == ["e01", "e02"]
    loaded = lf.load(every.saved[-1])
    x, _ = data(5)
    assert loaded.predict(x).shape == (5, 2)


def test_csv_and_json_loggers(tmp_path):
    hist = fit(model(), [lf.CSVLogger(tmp_path / "h.csv"), lf.JSONLogger(tmp_path / "h.jsonl")], epochs=3)
    with open(tmp_path / "h.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["epoch"] for r in rows] == ["1", "2", "3"]
    assert float(rows[2]["val_loss"]) == pytest.approx(hist.history["val_loss"][2])
    lines = [json.loads(line) for line in (tmp_path / "h.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in lines] == [1, 2, 3]
    assert lines[0]["accuracy"] == pytest.approx(hist.history["accuracy"][0])
    fit(model(), [lf.CSVLogger(tmp_path / "h.csv", append=True)], epochs=1)  # resuming appends
    assert len((tmp_path / "h.csv").read_text().splitlines()) == 5


def test_learning_rate_scheduler_per_epoch_per_step_and_function():
    m = model()
    opt = lf.SGD(m.parameters(), lr=0.1)
    hist = fit(m, [lf.LearningRateScheduler(lf.optim.ExponentialLR(opt, gamma=0.5))], epochs=3, optimizer=opt)
    assert hist.history["lr"] == pytest.approx([0.1, 0.05, 0.025])
    m = model()
    opt = lf.SGD(m.parameters(), lr=0.1)
    sched = lf.optim.StepLR(opt, step_size=4, gamma=0.1)  # 4 updates per epoch (64 / 16)
    hist = fit(m, [lf.LearningRateScheduler(sched, interval="step")], epochs=2, optimizer=opt)
    assert hist.history["lr"] == pytest.approx([0.01, 0.001])
    m = model()
    hist = fit(m, [lf.LearningRateScheduler(lambda epoch, lr: 0.2 / (epoch + 1))], epochs=3)
    assert hist.history["lr"] == pytest.approx([0.2, 0.1, 0.2 / 3])


def test_reduce_lr_on_plateau_reads_the_monitored_value():
    m = model()
    opt = lf.SGD(m.parameters(), lr=0.1)
    plateau = lf.optim.ReduceLROnPlateau(opt, factor=0.5, patience=0)
    hist = fit(
        m, [Scripted([1.0, 1.0, 1.0, 0.5]), lf.LearningRateScheduler(plateau)], epochs=4, optimizer=opt
    )
    assert hist.history["lr"] == pytest.approx([0.1, 0.1, 0.05, 0.025])


class NaNBackward(Layer):
    """Identity forward; its backward returns NaN (a broken layer, to be caught)."""

    def forward(self, x):
        self._x = x if self.training else None
        return x

    def backward(self, delta_out, need_input_delta=True):
        self.check_trainable(self._x)
        return np.full_like(delta_out, np.nan)

    def _cache_attrs(self):
        return ("_x",)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_terminate_on_nan_names_the_layer_whose_output_broke():
    m = model()
    w = m.layers[3].weight.value.copy()
    w[0, 0] = np.inf
    m.layers[3].weight.value = w
    with pytest.raises(lf.NonFiniteError, match=r"output of Linear\(8 → 2\) at '3'.*update was not applied"):
        fit(m, [lf.TerminateOnNaN()], epochs=2)
    assert m.record_intermediates is False and m.last_outputs is None


def test_terminate_on_nan_names_the_layer_whose_gradient_broke():
    lf.seed(0)
    m = lf.Sequential(lf.Input(3), lf.Linear(3, 8), NaNBackward(), lf.ReLU(), lf.Linear(8, 2))
    before = {k: v.copy() for k, v in m.state_dict().items()}
    term = lf.TerminateOnNaN(raise_error=False)
    hist = fit(m, [term], epochs=3)
    assert len(hist) == 1  # the interrupted epoch is recorded, with the loss of its one batch
    assert (
        "δ for the output of Linear(3 → 8) at '1' became NaN in the backward pass of "
        "NaNBackward() at '2'" in term.message
    )
    assert hist.stop_reason == term.message
    for k, v in m.state_dict().items():  # the broken step was not applied
        np.testing.assert_array_equal(v, before[k])
