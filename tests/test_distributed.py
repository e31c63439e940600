"""Data-parallel training over MPI (learnflux.distributed) gives what one process gives.

The runs of ``tests/distributed_worker.py`` are launched with ``mpiexec -n 2`` and ``-n 3`` (shares
of unequal size, and empty ones in the last batch) and compared with the same code on one process:
float64 within 1e-12 (relative to the largest value), Fractions bit for bit, float32 within 1e-5.
The fault tests make one rank die, raise or freeze mid-epoch: the job must stop, within a bounded
time, with an error naming it. Without mpi4py and the mpiexec of the ``mpi`` extra the MPI tests
skip; the single-process tests always run.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

import learnflux as lf
import learnflux.distributed as dist
from tests import distributed_worker as worker

ROOT = Path(__file__).resolve().parent.parent
WORKER = Path(worker.__file__)
MPIEXEC = Path(sys.executable).parent / "mpiexec"  # the mpich wheel puts it beside the venv's python


def _mpi_missing() -> str:
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return 'mpi4py is not installed (pip install -e ".[mpi]")'
    if not MPIEXEC.exists():
        return f"no mpiexec beside this Python ({MPIEXEC}): install the mpich wheel (the mpi extra)"
    return ""


needs_mpi = pytest.mark.skipif(bool(_mpi_missing()), reason=_mpi_missing() or "MPI available")


def mpi_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    # one BLAS thread per rank: N ranks share the machine's cores
    env.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1", LEARNFLUX_NUM_THREADS="1")
    for var in ("PMI_SIZE", "PMI_RANK", "OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "SLURM_NTASKS"):
        env.pop(var, None)
    env.update(extra)
    return env


def mpirun(n: int, *args: str, timeout: float = 120, env: dict | None = None) -> subprocess.CompletedProcess:
    """``mpiexec -n n python tests/distributed_worker.py args`` (more ranks than cores is fine:
    MPICH oversubscribes without a flag)."""
    cmd = [str(MPIEXEC), "-n", str(n), sys.executable, str(WORKER), *args]
    return subprocess.run(
        cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=env or mpi_env()
    )


def run_case(case: str, n: int, tmp_path: Path) -> dict[str, np.ndarray]:
    out = tmp_path / f"{case}-{n}.npz"
    proc = mpirun(n, case, str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    with np.load(out) as f:
        return dict(f)


def single(case: str) -> dict[str, np.ndarray]:
    return worker.encode(worker.CASES[case](dist.SingleWorld()))


def relative(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(a))), 1e-300))


# ---------------------------------------------------------------------------- no MPI
def test_import_learnflux_imports_no_mpi():
    code = (
        "import sys, learnflux, learnflux.distributed as d; w = d.init();"
        "print(type(w).__name__, w.rank, w.size, 'mpi4py' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=mpi_env()
    ).stdout
    assert out.split() == ["SingleWorld", "0", "1", "False"]


def test_launched_without_mpi4py_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "mpi4py", None)  # import mpi4py fails
    monkeypatch.setenv("PMI_SIZE", "2")
    monkeypatch.setattr(dist.world, "_WORLD", None)
    with pytest.raises(dist.DistributedError, match=r"one of 2 MPI ranks, but mpi4py is not installed"):
        dist.init()


def test_single_world_is_the_identity():
    w = dist.SingleWorld()
    v = np.arange(5.0)
    assert w.sum_ordered(v) is v and w.allgather(3) == [3] and w.broadcast("x") == "x"
    model = lf.Sequential(lf.Input(2), lf.Linear(2, 2))
    opt = dist.DistributedOptimizer(lf.SGD(model.parameters(), lr=0.1), w)
    x = np.ones((3, 2), np.float32)
    loss = lf.SquaredError()
    loss(model(x), np.zeros((3, 2)))
    model.backward(loss.backward())
    before = model.layers[1].weight.value.copy()
    grad = model.layers[1].weight.grad.copy()
    opt.step()
    np.testing.assert_array_equal(model.layers[1].weight.value, before - np.float32(0.1) * grad)


@pytest.mark.parametrize("size", [1, 2, 3, 4])
@pytest.mark.parametrize("remainder", ["uneven", "pad", "drop"])
def test_shares_are_disjoint_and_cover_the_batch(size, remainder):
    for length in range(size, 12):
        shares = [dist.share_positions(length, r, size, remainder) for r in range(size)]
        sizes = [len(s) for s in shares]
        everything = np.concatenate(shares)
        if remainder == "uneven":
            assert sorted(everything) == list(range(length))
            assert max(sizes) - min(sizes) <= 1 and sizes == sorted(sizes, reverse=True)
        elif remainder == "drop":
            assert len(set(everything)) == len(everything) == length - length % size
        else:  # pad: every sample once, the first ones again up to a multiple of size
            assert set(everything) == set(range(length)) and len(set(sizes)) == 1
            assert len(everything) == -(-length // size) * size


def test_sampler_matches_one_process_batches():
    """Over the ranks the shards of a batch are exactly the one-process batch; the epoch's order
    depends on seed and epoch, not on the rank or the number of ranks."""

    class Fake(dist.SingleWorld):
        def __init__(self, rank: int, size: int) -> None:
            self.rank, self.size = rank, size

    one = [s.indices for s in dist.DistributedSampler(23, 6, world=dist.SingleWorld(), seed=4).epoch(2)]
    for size in (2, 3):
        samplers = [dist.DistributedSampler(23, 6, world=Fake(r, size), seed=4) for r in range(size)]
        per_rank = [list(s.epoch(2)) for s in samplers]
        for k, batch in enumerate(one):
            shards = [ranks[k] for ranks in per_rank]
            assert sorted(np.concatenate([s.indices for s in shards])) == sorted(batch)
            assert all(s.total == len(batch) for s in shards)
    epochs = [dist.DistributedSampler(23, 6, seed=4).order(e) for e in (0, 1)]
    assert not np.array_equal(*epochs)


def test_sampler_refuses_a_global_batch_smaller_than_the_ranks():
    class Three(dist.SingleWorld):
        size = 3

    with pytest.raises(lf.ConfigError, match="global batch_size 2 is smaller than the number of ranks 3"):
        dist.DistributedSampler(10, 2, world=Three())


def test_delta_scale_is_exact_in_exact_mode():
    assert dist.delta_scale(3, 10, object) == Fraction(3, 10)
    assert dist.delta_scale(3, 10, np.float32) == np.float32(0.3)


def test_sync_batchnorm_is_batchnorm_on_one_process():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 3, 4, 4))
    plain = lf.BatchNorm2d(3).astype("float64")
    sync = lf.BatchNorm2d(3).astype("float64")
    assert dist.convert_sync_batchnorm(lf.Sequential(lf.Input((3, 4, 4)), sync)) == 1
    assert type(sync).__name__ == "SyncBatchNorm2d"
    np.testing.assert_array_equal(plain.forward(x), sync.forward(x))
    np.testing.assert_array_equal(plain.backward(x), sync.backward(x))
    report = lf.gradcheck(sync, x)
    assert report.passed, report


def test_sync_batchnorm_saves_and_loads(tmp_path):
    model = lf.Sequential(lf.Input((2, 3, 3)), dist.SyncBatchNorm2d(2))
    lf.save(model, tmp_path / "m.lf")
    back = lf.load(tmp_path / "m.lf")
    assert type(back.layers[1]) is dist.SyncBatchNorm2d
    assert dist.revert_sync_batchnorm(back) == 1 and type(back.layers[1]) is lf.BatchNorm2d


# ---------------------------------------------------------------------------- N ranks = one process
@needs_mpi
@pytest.mark.parametrize(
    "case, n",
    [("mlp64", 2), ("mlp64", 3), ("mlp64-mpi", 3), ("cnn-syncbn", 2), ("cnn-syncbn", 3)],
)
def test_float64_ranks_equal_one_process(case, n, tmp_path):
    got, want = run_case(case, n, tmp_path), single(case)
    assert set(got) == set(want)
    for key in want:
        assert relative(want[key], got[key]) <= 1e-12, key


@needs_mpi
@pytest.mark.parametrize("n", [2, 3])
def test_exact_ranks_equal_one_process_bit_for_bit(n, tmp_path):
    got, want = run_case("exact", n, tmp_path), single("exact")
    for key in want:
        if want[key].dtype.kind == "U":
            np.testing.assert_array_equal(worker.decode_exact(got[key]), worker.decode_exact(want[key]))
    assert relative(want["epoch_loss"], got["epoch_loss"]) <= 1e-12


@needs_mpi
def test_float32_ranks_within_tolerance(tmp_path):
    got, want = run_case("mlp32", 3, tmp_path), single("mlp32")
    for key in want:
        assert relative(want[key], got[key]) <= 1e-5, key


@needs_mpi
def test_sync_batchnorm_gradients_over_three_ranks(tmp_path):
    """SyncBatchNorm1d over 3 uneven shares: output, δx, δγ, δβ and running statistics equal the
    one-process BatchNorm on the concatenated batch, and δx matches finite differences of the
    global loss."""
    got, want = run_case("syncbn-gradients", 3, tmp_path), single("syncbn-gradients")
    for key in ("out", "d_in", "d_weight", "d_bias", "running_mean", "running_var"):
        assert relative(want[key], got[key]) <= 1e-12, key
    analytic = got["d_in"][[0, 3, 6, 5], [0, 1, 2, 0], [0, 1, 0, 1]]
    np.testing.assert_allclose(got["fd"], analytic, rtol=1e-6, atol=1e-8)


@needs_mpi
def test_both_paths_of_the_ordered_sum_give_the_same_bits(tmp_path):
    got = run_case("sum-paths", 3, tmp_path)
    assert got["all_equal"].tolist() == [True, True, True]


@needs_mpi
def test_the_scaling_benchmark_runs(tmp_path):
    """benchmarks/distributed.py, one launch of each variant, two timed steps: its report holds
    the figures docs/distributed.md quotes."""
    cmd = [sys.executable, "-m", "benchmarks.distributed", "--cases", "cnn", "--rounds", "1"]
    cmd += ["--steps", "2", "--warmup", "1", "--results", str(tmp_path)]
    subprocess.run(cmd, check=True, cwd=ROOT, env=mpi_env(), capture_output=True, timeout=300)
    (path,) = tmp_path.glob("distributed-*.json")
    case = json.loads(path.read_text())["cases"]["cnn"]
    assert case["2"]["gradient_bytes"] == 81960 and case["1"]["allreduce_share"] == 0.0
    assert 0 < case["efficiency"] and 0 < case["2"]["allreduce_share"] < 1


# ---------------------------------------------------------------------------- faults
@needs_mpi
def test_a_killed_rank_stops_the_job(tmp_path):
    """SIGKILL on rank 1 mid-epoch: mpiexec stops the others at once and names the dead process's
    pid, which the world's description maps to rank 1."""
    start = time.monotonic()
    proc = mpirun(2, "kill", timeout=60)
    assert time.monotonic() - start < 60
    assert proc.returncode != 0
    pids = dict(re.findall(r"rank (\d+) pid (\d+)", proc.stderr))
    dead = re.search(r"PID (\d+) RUNNING AT", proc.stdout + proc.stderr)
    assert dead is not None, proc.stdout + proc.stderr
    assert pids.get("1") == dead.group(1)


@needs_mpi
def test_a_raising_rank_stops_the_job_naming_it():
    proc = mpirun(3, "raise", timeout=60)
    assert proc.returncode != 0, proc.stderr
    assert "rank 1 of 3" in proc.stderr and "raised RuntimeError: a fault planted" in proc.stderr


@needs_mpi
def test_a_frozen_rank_is_named_by_the_watchdog():
    """SIGSTOP on rank 1 (the launcher sees nothing): the others' watchdog stops the job after
    the timeout (2 s here) and names rank 1."""
    start = time.monotonic()
    proc = mpirun(3, "stop", timeout=60, env=mpi_env(LEARNFLUX_DIST_TIMEOUT="2"))
    assert time.monotonic() - start < 60
    assert proc.returncode != 0, proc.stderr
    assert re.search(r"rank 1 \(pid \d+ on .*\) did not answer", proc.stderr), proc.stderr
