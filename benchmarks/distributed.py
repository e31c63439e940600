"""Data-parallel scaling: 1 rank against 2 MPI ranks, each with one BLAS thread.

``.venv/bin/python -m benchmarks.distributed`` (about a minute) runs, for the ``mlp`` and ``cnn``
cases of the suite (MLP 784-512-512-10 on a global batch of 128, the LeNet-like CNN on 64), the
training step of :mod:`learnflux.distributed` (every rank: forward and backward on its half of
the global batch, the gradients summed over the ranks, the SGD update) on 1 process and under
``mpiexec -n 2``, alternately, ``--rounds`` times (each round launches both; medians over the
rounds). Every rank has one BLAS thread (``OPENBLAS_NUM_THREADS=1``...), so 2 ranks use the 2
cores that 1 rank leaves half idle: the scaling efficiency is what data parallelism adds over one
single-threaded process.

Measured per step, on rank 0, median over the steps of a run, then over the rounds:

* ``step_ms``: the whole step; ``samples_per_s`` = global batch / step time;
* ``compute_ms``: forward and backward on the rank's share;
* ``wait_ms``: a barrier before the exchange (the time one rank waits for the slower one);
* ``exchange_ms``: the gradient exchange itself (:class:`~learnflux.distributed.GradientReducer`,
  the ordered sum), and ``exchange_mpi_ms`` the same gradients through ``MPI_Allreduce`` (the two
  alternate step by step);
* ``allreduce_share``: ``(wait + exchange) / step``, what a profiler shows in the allreduce;
* ``efficiency``: ``samples_per_s(2) / (2 · samples_per_s(1))``.

Results: ``benchmarks/results/distributed-<UTC timestamp>.json`` (``--results DIR``: another
folder); ``--update`` also writes
``benchmarks/results/distributed.json``, the run docs/distributed.md quotes.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
CASES = {
    "mlp": {"model": "mlp", "kwargs": {"sizes": (784, 512, 512, 10)}, "shape": (784,), "batch": 128},
    "cnn": {"model": "cnn", "kwargs": {}, "shape": (1, 28, 28), "batch": 64},
}
ONE_THREAD = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "LEARNFLUX_NUM_THREADS": "1",
}


# ---------------------------------------------------------------------------- one rank's run
def worker(case_name: str, steps: int, warmup: int, out: str) -> None:
    """Time ``steps`` training steps of ``case_name`` in this process's world; rank 0 writes the
    per-step timings (seconds) to ``out``."""
    import learnflux as lf
    import learnflux.distributed as dist

    from . import learnflux_ref

    case = CASES[case_name]
    world = dist.init()
    lf.seed(0)
    model = learnflux_ref.build(case["model"], **case["kwargs"])
    dist.broadcast_parameters(model, world)
    rng = np.random.default_rng(0)
    batch = case["batch"]
    xs = [rng.random((batch, *case["shape"]), dtype=np.float32) for _ in range(4)]
    ys = [rng.integers(0, 10, batch) for _ in range(4)]
    shard = dist.shard_of(np.arange(batch), world)
    loss = lf.CrossEntropyLoss()
    opt = lf.SGD(model.parameters(), lr=0.01)
    reducers = {
        "ordered": dist.GradientReducer(model.parameters(), world, reduction="ordered"),
        "mpi": dist.GradientReducer(model.parameters(), world, reduction="mpi"),
    }
    times: dict[str, list[float]] = {k: [] for k in ("step", "compute", "wait", "exchange", "exchange_mpi")}
    world.barrier()
    for i in range(warmup + steps):
        kind = "ordered" if i % 2 == 0 else "mpi"
        xb, yb = xs[i % 4][shard.indices], ys[i % 4][shard.indices]
        t0 = time.perf_counter()
        loss.forward(model(xb), yb)
        model.backward(shard.scale(loss.backward()), need_input_delta=False)
        t1 = time.perf_counter()
        world.barrier()
        t2 = time.perf_counter()
        reducers[kind].reduce()
        t3 = time.perf_counter()
        opt.step()
        t4 = time.perf_counter()
        if i >= warmup:
            times["step"].append(t4 - t0)
            times["compute"].append(t1 - t0)
            times["wait"].append(t2 - t1)
            times["exchange" if kind == "ordered" else "exchange_mpi"].append(t3 - t2)
    if world.rank == 0:
        info = {
            "ranks": world.size,
            "global_batch": batch,
            "gradient_bytes": reducers["ordered"].nbytes,
            "times": times,
        }
        Path(out).write_text(json.dumps(info))


# ---------------------------------------------------------------------------- the driver
def _launch(case: str, ranks: int, steps: int, warmup: int, tmp: Path) -> dict[str, Any]:
    out = tmp / f"{case}-{ranks}.json"
    cmd = [sys.executable, "-m", "benchmarks.distributed", "--worker", case, "--steps", str(steps)]
    cmd += ["--warmup", str(warmup), "--out", str(out)]
    if ranks > 1:
        mpiexec = Path(sys.executable).parent / "mpiexec"
        cmd = [str(mpiexec), "-n", str(ranks), *cmd]
    env = {**os.environ, **ONE_THREAD}
    for var in ("PMI_SIZE", "PMI_RANK", "OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "SLURM_NTASKS"):
        env.pop(var, None)
    subprocess.run(cmd, check=True, cwd=ROOT, env=env, timeout=600)
    return json.loads(out.read_text())


def _ms(values: list[float]) -> float:
    return 1000 * statistics.median(values) if values else float("nan")


def summarize(runs: dict[int, list[dict[str, Any]]]) -> dict[str, Any]:
    """Medians over the steps of each run, then over the rounds."""
    out: dict[str, Any] = {}
    for ranks, rounds in runs.items():
        per_round = []
        for r in rounds:
            t = r["times"]
            step = _ms(t["step"])
            row = {
                "step_ms": step,
                "compute_ms": _ms(t["compute"]),
                "wait_ms": _ms(t["wait"]),
                "exchange_ms": _ms(t["exchange"]),
                "exchange_mpi_ms": _ms(t["exchange_mpi"]),
                "samples_per_s": r["global_batch"] / (step / 1000),
            }
            per_round.append(row)
        med = {k: statistics.median(row[k] for row in per_round) for k in per_round[0]}
        med["allreduce_share"] = (med["wait_ms"] + med["exchange_ms"]) / med["step_ms"] if ranks > 1 else 0.0
        med["rounds"] = per_round
        med["gradient_bytes"] = rounds[0]["gradient_bytes"]
        out[str(ranks)] = med
    one, two = out["1"], out.get("2")
    if two is not None:
        ratios = [
            b["samples_per_s"] / (2 * a["samples_per_s"])
            for a, b in zip(one["rounds"], two["rounds"], strict=True)
        ]
        out["efficiency"] = statistics.median(ratios)
        out["efficiency_min_max"] = [min(ratios), max(ratios)]
        out["speedup"] = 2 * out["efficiency"]
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", default="mlp,cnn", help="comma-separated: mlp, cnn")
    parser.add_argument("--rounds", type=int, default=5, help="launches of each variant, alternated")
    parser.add_argument("--steps", type=int, default=40, help="timed steps per launch")
    parser.add_argument("--warmup", type=int, default=6)
    parser.add_argument(
        "--update", action="store_true", help="also write benchmarks/results/distributed.json"
    )
    parser.add_argument("--results", default=str(RESULTS), help="the folder of the timestamped results")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.worker, args.steps, args.warmup, args.out)
        return
    import tempfile

    import learnflux as lf

    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%d-%H%M%S")
    report: dict[str, Any] = {
        "date_utc": stamp,
        "load_average_before": os.getloadavg(),
        "cpu_count": os.cpu_count(),
        "threads_per_rank": 1,
        "learnflux_kernels": lf.info().get("kernels"),
        "rounds": args.rounds,
        "steps": args.steps,
        "cases": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        for case in args.cases.split(","):
            runs: dict[int, list[dict[str, Any]]] = {1: [], 2: []}
            for _ in range(args.rounds):
                for ranks in (1, 2):  # alternated: the machine's drift hits both alike
                    runs[ranks].append(_launch(case, ranks, args.steps, args.warmup, Path(tmp)))
            report["cases"][case] = summarize(runs)
            s = report["cases"][case]
            one, two = s["1"], s["2"]
            print(
                f"{case}: 1 rank {one['samples_per_s']:.0f} samples/s, 2 ranks "
                f"{two['samples_per_s']:.0f} samples/s, efficiency {s['efficiency']:.2f}, "
                f"allreduce share {two['allreduce_share']:.1%} (exchange {two['exchange_ms']:.2f} ms "
                f"ordered, {two['exchange_mpi_ms']:.2f} ms MPI_Allreduce, wait {two['wait_ms']:.2f} ms, "
                f"step {two['step_ms']:.2f} ms)",
                flush=True,
            )
    report["load_average_after"] = os.getloadavg()
    folder = Path(args.results)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"distributed-{stamp}.json"
    path.write_text(json.dumps(report, indent=1) + "\n")
    print(f"results: {path}")
    if args.update:
        (RESULTS / "distributed.json").write_text(json.dumps(report, indent=1) + "\n")
        print("updated benchmarks/results/distributed.json")


if __name__ == "__main__":
    main()
