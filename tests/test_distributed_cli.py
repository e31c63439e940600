"""``mpiexec -n N learnflux train``: the run of one process, data-parallel, one run folder; and
``--resume`` on another number of ranks. float32 (the command line's dtype): within 1e-5 of the
one-process run's weights (measured: 2.6e-7 on 2 ranks, 5.1e-7 on 3)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import learnflux as lf
from tests.test_distributed import MPIEXEC, mpi_env, needs_mpi

LEARNFLUX = Path(sys.executable).parent / "learnflux"

CONFIG = """\
[data]
dataset = "digits"
val_fraction = 0.15
test_fraction = 0.15

[model]
[[model.layers]]
type = "Flatten"
[[model.layers]]
type = "Linear"
out_features = 32
[[model.layers]]
type = "ReLU"
[[model.layers]]
type = "Linear"
out_features = 10

[loss]
type = "CrossEntropyLoss"

[optimizer]
type = "SGD"
lr = 0.1
momentum = 0.9

[training]
epochs = {epochs}
batch_size = 50
seed = 0
"""


def train(tmp_path: Path, ranks: int, *args: str, epochs: int = 2) -> subprocess.CompletedProcess:
    config = tmp_path / "run.toml"
    config.write_text(CONFIG.format(epochs=epochs))
    cmd = [str(LEARNFLUX), "train", "--config", str(config), "--no-plot", "--quiet", *args]
    if ranks > 1:
        cmd = [str(MPIEXEC), "-n", str(ranks), *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, env=mpi_env(), timeout=300)


def max_relative(a: Path, b: Path) -> float:
    sa, sb = lf.load(a).state_dict(), lf.load(b).state_dict()
    return max(float(np.max(np.abs(sa[k] - sb[k])) / np.max(np.abs(sa[k]))) for k in sa)


def test_help_says_the_batch_is_global():
    out = subprocess.run(
        [str(LEARNFLUX), "train", "--help"], capture_output=True, text=True, check=True
    ).stdout
    out = " ".join(out.split())  # argparse wraps the lines
    assert "batch_size is then the global batch" in out and "(under mpiexec: the global batch)" in out


@needs_mpi
@pytest.mark.parametrize("ranks", [2, 3])
def test_mpiexec_learnflux_train_is_the_one_process_run(ranks, tmp_path):
    one = train(tmp_path, 1, "--out", "one")
    assert one.returncode == 0, one.stderr
    many = train(tmp_path, ranks, "--out", "many")
    assert many.returncode == 0, many.stderr
    assert many.stdout.count("test accuracy") == 1  # rank 0 alone prints
    assert f"data-parallel over {ranks} MPI ranks" in many.stderr
    assert sorted(p.name for p in (tmp_path / "many").iterdir()) == [
        "config.toml",
        "history.csv",
        "metrics.json",
        "model.lf",
    ]
    assert max_relative(tmp_path / "one" / "model.lf", tmp_path / "many" / "model.lf") <= 1e-5
    m1 = json.loads((tmp_path / "one" / "metrics.json").read_text())
    mn = json.loads((tmp_path / "many" / "metrics.json").read_text())
    assert mn["test_accuracy"] == pytest.approx(m1["test_accuracy"], abs=1 / 270)
    assert mn["final"]["loss"] == pytest.approx(m1["final"]["loss"], rel=1e-5)


@needs_mpi
def test_killed_on_two_ranks_resumes_on_three(tmp_path):
    """Rank 1 is killed (SIGKILL) once a backup exists; `mpiexec -n 3 learnflux train --resume`
    finishes the run with the uninterrupted one-process run's weights."""
    one = train(tmp_path, 1, "--out", "one", epochs=12)
    assert one.returncode == 0, one.stderr
    config = tmp_path / "run.toml"
    cmd = [str(MPIEXEC), "-n", "2", str(LEARNFLUX), "train", "--config", str(config), "--no-plot", "--quiet"]
    cmd += ["--out", "run", "--backup-every", "3"]
    proc = subprocess.Popen(
        cmd, cwd=tmp_path, env=mpi_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    first = proc.stderr.readline()
    pids = dict(re.findall(r"rank (\d+) pid (\d+)", first))
    assert set(pids) == {"0", "1"}, first
    state = tmp_path / "run" / "train_state.lfs"
    deadline = time.monotonic() + 120
    while not state.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    os.kill(int(pids["1"]), signal.SIGKILL)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode != 0, "the run ended before the kill: make it longer"
    assert not (tmp_path / "run" / "metrics.json").exists() and state.exists()
    resumed = subprocess.run(
        [str(MPIEXEC), "-n", "3", str(LEARNFLUX), "train", "--resume", "run", "--no-plot", "--quiet"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=mpi_env(),
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert max_relative(tmp_path / "one" / "model.lf", tmp_path / "run" / "model.lf") <= 1e-5
    rows = (tmp_path / "run" / "history.csv").read_text().splitlines()
    assert len(rows) == 1 + 12
