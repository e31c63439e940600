"""``fit`` over N MPI ranks (learnflux.distributed.DistributedTrainer) equals the plain trainer on
one process, and a run killed on N ranks resumes on another number of ranks (or on one process)
to the weights of the uninterrupted run.

The run (``tests/distributed_worker.py``'s ``fit_run``): float64, validation data, accuracy,
accumulation over 2 batches, clipping, a step schedule, early stopping with the best weights
restored, a CSV log, a best-model checkpoint and a backup every 2 updates; 41 samples in global
batches of 8 (shares of unequal size, an empty share in the last batch on 3 ranks).
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

import learnflux.distributed as dist
from tests import distributed_worker as worker
from tests.test_distributed import mpirun, needs_mpi, relative, run_case

pytestmark = needs_mpi


def _one_process() -> dict[str, np.ndarray]:
    return worker.encode(worker.fit_run(dist.SingleWorld()))


@pytest.mark.parametrize("n", [2, 3])
def test_fit_on_ranks_equals_the_plain_trainer(n, tmp_path):
    got, want = run_case("fit", n, tmp_path), _one_process()
    assert set(got) == set(want)
    assert len(want["history_loss"]) < 6  # early stopping ended the run
    for key in want:
        assert got[key].shape == want[key].shape, key
        assert relative(want[key], got[key]) <= 1e-12, key


@pytest.mark.parametrize("resume_on", [2, 1])
def test_killed_on_three_ranks_resumes_on_another_number(resume_on, tmp_path):
    """Rank 1 of 3 is killed at update 5 (a backup was written at update 4, mid-epoch); the run
    resumes from it on 2 ranks or on one process and ends with the uninterrupted run's weights,
    history and files (rank 0 wrote them, once)."""
    folder = tmp_path / "run"
    killed = mpirun(3, "fit-backup", str(tmp_path / "unused.npz"), str(folder), "5")
    assert killed.returncode != 0 and "BAD TERMINATION" in killed.stdout + killed.stderr
    assert (folder / "backup" / "train_state.lfs").is_file()
    out = tmp_path / "resumed.npz"
    if resume_on == 1:
        import subprocess
        import sys

        from tests.test_distributed import ROOT, WORKER, mpi_env

        cmd = [sys.executable, str(WORKER), "fit-backup", str(out), str(folder), "0"]
        subprocess.run(cmd, check=True, cwd=ROOT, env=mpi_env(), timeout=120)
    else:
        proc = mpirun(resume_on, "fit-backup", str(out), str(folder), "0")
        assert proc.returncode == 0, proc.stderr[-3000:]
    want = _one_process()
    with np.load(out) as f:
        got = dict(f)
    for key in want:
        assert relative(want[key], got[key]) <= 1e-12, key
    rows = list(csv.DictReader(Path(folder / "history.csv").open()))
    assert [int(r["epoch"]) for r in rows] == list(range(1, len(want["history_loss"]) + 1))
    assert not (folder / "backup" / "train_state.lfs").exists()  # deleted at the end, by rank 0
    assert (folder / "best.lf").is_file()
