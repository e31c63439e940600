"""Resume, bit for bit: runs killed with SIGKILL (mid-epoch, mid-save, at a random moment) and
resumed from their BackupAndRestore backup end with exactly the uninterrupted run's weights.

The runs are ``tests/resume_child.py`` (a tiny CNN with BatchNorm, Dropout, Adam and a cosine
schedule per update, early stopping and a CSV log, on 256 embedded digits); the larger set of
trials is ``tools/resume_trials.py``.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import learnflux as lf
from learnflux.errors import ConfigError, FileFormatError
from learnflux.training.checkpoint import STATE_FILE, BackupAndRestore

CHILD = Path(__file__).with_name("resume_child.py")
pytestmark = pytest.mark.skipif(os.name != "posix", reason="SIGKILL trials need a POSIX system")


def _run(backup: Path, out: Path, *extra: str, timeout: float = 120) -> int:
    cmd = [sys.executable, str(CHILD), "--backup", str(backup), "--out", str(out), *extra]
    return subprocess.run(cmd, timeout=timeout, capture_output=True).returncode


def _weights(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as f:
        return {k: f[k] for k in f.files if k != "resumed"}


def _identical(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(a[k].dtype == b[k].dtype and np.array_equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    folder = tmp_path_factory.mktemp("reference")
    assert _run(folder / "backup", folder / "out.npz") == 0
    assert not (folder / "backup" / STATE_FILE).exists()  # deleted when the run completes
    return _weights(folder / "out.npz"), (folder / "backup" / "history.csv").read_text()


@pytest.mark.parametrize(
    "kill", [("batch", 11), ("save", 17), ("timer", None)], ids=["mid-epoch", "mid-save", "random-moment"]
)
def test_killed_run_resumes_bit_for_bit(tmp_path, reference, kill):
    ref, ref_csv = reference
    backup, out = tmp_path / "backup", tmp_path / "out.npz"
    how, step = kill
    if how == "timer":  # a seeded random moment after the first backup appeared
        proc = subprocess.Popen(
            [sys.executable, str(CHILD), "--backup", str(backup), "--out", str(out)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while not (backup / STATE_FILE).exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(random.Random(11).uniform(0.0, 0.2))
        proc.send_signal(signal.SIGKILL)
        rc = proc.wait(60)
    else:
        rc = _run(backup, out, "--kill-step", str(step), "--kill-in", how)
        assert rc == -signal.SIGKILL
        assert (backup / STATE_FILE).exists()
    if rc != 0:  # resume (a timer may also have fired after the run completed)
        assert _run(backup, out) == 0
    assert _identical(_weights(out), ref)
    assert (backup / "history.csv").read_text() == ref_csv  # rows of redone epochs not doubled
    assert sorted(p.name for p in backup.iterdir()) == ["history.csv"]  # no backup, no temp file


def _tiny(seed=0):
    lf.seed(seed)
    model = lf.Sequential(lf.Input(4), lf.Linear(4, 8), lf.Dropout(0.5), lf.Linear(8, 3))
    x = np.random.default_rng(0).random((40, 4)).astype(np.float32)
    y = np.arange(40) % 3
    return model, x, y


class _Stop(lf.Callback):
    def __init__(self, at):
        self.at = at

    def on_batch_end(self, batch, logs):
        if self.trainer.global_step == self.at:
            raise KeyboardInterrupt


def _fit(model, x, y, folder, stop=-1, **kw):
    opt = lf.Adam(model.parameters(), lr=1e-2)
    cbs = [BackupAndRestore(folder, save_freq=2), _Stop(stop)]
    kw.setdefault("batch_size", 8)
    return model.fit(
        x, y, epochs=3, loss=lf.CrossEntropyLoss(), optimizer=opt, callbacks=cbs, verbose=0, **kw
    )


def test_in_process_resume_and_history(tmp_path):
    ref, x, y = _tiny()
    href = _fit(ref, x, y, tmp_path / "ref")
    model, _, _ = _tiny()
    with pytest.raises(KeyboardInterrupt):
        _fit(model, x, y, tmp_path / "b", stop=7)
    model, _, _ = _tiny(seed=5)  # another start: everything comes from the backup
    h = _fit(model, x, y, tmp_path / "b")
    assert all(
        np.array_equal(a, b)
        for a, b in zip(ref.state_dict().values(), model.state_dict().values(), strict=True)
    )
    assert h.history == href.history and h.epoch == href.epoch


def test_a_backup_from_another_run_is_refused(tmp_path):
    model, x, y = _tiny()
    with pytest.raises(KeyboardInterrupt):
        _fit(model, x, y, tmp_path, stop=3)
    other, _, _ = _tiny()
    with pytest.raises(ConfigError, match="different run.*batch_size=8.*batch_size=4"):
        _fit(other, x, y, tmp_path, batch_size=4)
    bigger = lf.Sequential(lf.Input(4), lf.Linear(4, 9), lf.Dropout(0.5), lf.Linear(9, 3))
    with pytest.raises(ConfigError, match="another model architecture"):
        _fit(bigger, x, y, tmp_path)


def test_a_corrupt_backup_is_a_file_format_error_and_not_a_model(tmp_path):
    model, x, y = _tiny()
    with pytest.raises(KeyboardInterrupt):
        _fit(model, x, y, tmp_path, stop=3)
    path = tmp_path / STATE_FILE
    with pytest.raises(FileFormatError, match="training state.*not a model"):
        lf.load(path)
    data = bytearray(path.read_bytes())
    path.write_bytes(bytes(data[: len(data) // 2]))
    with pytest.raises(FileFormatError, match=str(path)):
        _fit(model, x, y, tmp_path)


def test_backup_settings_are_checked():
    with pytest.raises(ConfigError, match="save_freq"):
        BackupAndRestore("x", save_freq=0)
    with pytest.raises(ConfigError, match="save_freq"):
        BackupAndRestore("x", save_freq="batch")


class _DieAtEnd(lf.Callback):
    def __init__(self, die):
        self.die = die

    def on_train_end(self):
        if self.die:
            raise KeyboardInterrupt


def test_stop_requested_before_the_kill_is_kept(tmp_path):
    """Early stopping ends a run; killed after its last backup, the resumed run does not train
    on: it ends (restoring the best weights) as the first would have."""

    def run(folder, die=False):
        model, x, y = _tiny()
        opt = lf.Adam(model.parameters(), lr=1e-2)
        stop = lf.EarlyStopping("loss", patience=1, min_delta=10.0, restore_best=True)
        cbs = [stop, _DieAtEnd(die), BackupAndRestore(folder)]
        h = model.fit(
            x, y, epochs=6, batch_size=8, loss=lf.CrossEntropyLoss(), optimizer=opt, callbacks=cbs, verbose=0
        )
        return model, h

    ref, href = run(tmp_path / "ref")
    assert len(href.epoch) == 2 and href.stop_reason.startswith("early stopping")
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "b", die=True)
    assert (tmp_path / "b" / STATE_FILE).exists()
    model, h = run(tmp_path / "b")
    assert h.epoch == href.epoch and h.history == href.history
    assert all(
        np.array_equal(a, b)
        for a, b in zip(ref.state_dict().values(), model.state_dict().values(), strict=True)
    )


CLI_CONFIG = """\
[data]
limit = 600
[model]
[[model.layers]]
type = "Conv2d"
out_channels = 4
kernel_size = 3
padding = 1
[[model.layers]]
type = "BatchNorm2d"
[[model.layers]]
type = "ReLU"
[[model.layers]]
type = "Flatten"
[[model.layers]]
type = "Dropout"
p = 0.2
[[model.layers]]
type = "Linear"
out_features = 10
[optimizer]
type = "Adam"
lr = 0.005
[schedule]
type = "CosineAnnealingLR"
[training]
epochs = 3
batch_size = 32
"""


def test_learnflux_train_resume_continues_a_killed_run_bit_for_bit(tmp_path):
    config = tmp_path / "run.toml"
    config.write_text(CLI_CONFIG)
    cmd = [sys.executable, "-m", "learnflux", "train", "--config", str(config), "--quiet", "--no-plot"]
    ref, run = tmp_path / "ref", tmp_path / "run"
    subprocess.run([*cmd, "--out", str(ref)], check=True, capture_output=True, timeout=300)
    proc = subprocess.Popen(
        [*cmd, "--out", str(run), "--backup-every", "2"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 120
    while not (run / STATE_FILE).exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    time.sleep(random.Random(5).uniform(0.0, 0.05))  # early in its 45 updates: surely mid-run
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(60) == -signal.SIGKILL and (run / STATE_FILE).exists()
    assert not (run / "model.lf").exists()
    done = subprocess.run(
        [sys.executable, "-m", "learnflux", "train", "--resume", str(run), "--quiet", "--no-plot"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "(resumed;" in done.stdout
    a, b = lf.load(ref / "model.lf").state_dict(), lf.load(run / "model.lf").state_dict()
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert (ref / "history.csv").read_text() == (run / "history.csv").read_text()
    assert not (run / STATE_FILE).exists() and not [p for p in run.iterdir() if p.name.endswith(".tmp")]
