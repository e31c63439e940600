"""Kill training runs with SIGKILL at random points, resume them, and check that they end with
exactly the weights of the uninterrupted run (the test suite runs a few of these trials,
``tests/test_resume.py``).

Usage (from the repository root; POSIX)::

    .venv/bin/python tools/resume_trials.py                 # 24 Python trials + 4 command-line trials
    .venv/bin/python tools/resume_trials.py --trials 50 --seed 3

Python trials run ``tests/resume_child.py`` (a tiny CNN with BatchNorm, Dropout, Adam and a cosine
schedule per update, early stopping and a CSV log, backed up every 3 updates), killed at a
seeded random point: at the end of a random update (mid-epoch or at an epoch's end), half-way
through writing a backup, or at a random moment after the first backup. A run may be killed
again after it resumed (up to three times). Command-line trials run ``learnflux train`` on a small
config, kill it at a random moment after its first backup and continue it with
``learnflux train --resume``. Every trial must end bit-identical (weights, buffers, history) to
the uninterrupted run, with no backup or temporary file left. Exit status 0 when all are.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
CHILD = ROOT / "tests" / "resume_child.py"
STATE = "train_state.lfs"


def _child(backup: Path, out: Path, *extra: str) -> int:
    cmd = [sys.executable, str(CHILD), "--backup", str(backup), "--out", str(out), *extra]
    return subprocess.run(cmd, capture_output=True, timeout=300).returncode


def _kill_later(cmd: list[str], watch: Path, delay: float, cwd: Path) -> int:
    """Start ``cmd``, wait until ``watch`` exists, then ``delay`` seconds, then SIGKILL it."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=cwd)
    limit = time.monotonic() + 300
    while not watch.exists() and proc.poll() is None and time.monotonic() < limit:
        time.sleep(0.002)
    time.sleep(delay)
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    return proc.wait(300)


def _window(cmd: list[str], watch: Path, cwd: Path) -> float:
    """Run ``cmd`` to its end; return the seconds from the moment ``watch`` appeared to the end
    (how long a random kill after the first backup may wait and still land in the run)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=cwd)
    while not watch.exists() and proc.poll() is None:
        time.sleep(0.002)
    seen = time.monotonic()
    assert proc.wait(300) == 0
    return time.monotonic() - seen


def _arrays(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as f:
        return {k: f[k] for k in f.files if k != "resumed"}


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(a[k].dtype == b[k].dtype and np.array_equal(a[k], b[k]) for k in a)


def python_trials(n: int, rng: random.Random, work: Path) -> list[tuple[str, bool]]:
    ref_dir = work / "ref"
    cmd = [sys.executable, str(CHILD), "--backup", str(ref_dir / "backup"), "--out", str(ref_dir / "out.npz")]
    window = _window(cmd, ref_dir / "backup" / STATE, ROOT)
    ref = _arrays(ref_dir / "out.npz")
    ref_csv = (ref_dir / "backup" / "history.csv").read_text()
    steps = 8 * 4  # 256 samples, batches of 32, 4 epochs
    results = []
    for t in range(n):
        folder = work / f"t{t}"
        backup, out = folder / "backup", folder / "out.npz"
        kills = []
        for _ in range(rng.choice([1, 1, 2, 3])):
            how = rng.choice(["batch", "batch", "save", "timer"])
            if how == "timer":
                delay = rng.uniform(0.0, 0.9 * window)
                cmd = [sys.executable, str(CHILD), "--backup", str(backup), "--out", str(out)]
                rc = _kill_later(cmd, backup / STATE, delay, ROOT)
                kills.append(f"timer+{delay:.2f}s")
            else:
                step = rng.randrange(1, steps + 1)
                rc = _child(backup, out, "--kill-step", str(step), "--kill-in", how)
                kills.append(f"{how}@{step}")
            if rc == 0:
                kills[-1] += " (finished first)"
                break
        if not out.exists() or (backup / STATE).exists():
            assert _child(backup, out) == 0
        problems = []
        if not _same(_arrays(out), ref):
            problems.append("weights or history differ")
        if (backup / "history.csv").read_text() != ref_csv:
            problems.append("history.csv differs")
        left = sorted(p.name for p in backup.iterdir() if p.name != "history.csv")
        if left:
            problems.append(f"left behind: {left}")
        ok = not problems
        results.append((" then ".join(kills), ok))
        verdict = "identical" if ok else "DIFFERENT (" + "; ".join(problems) + ")"
        print(f"  python trial {t + 1}: killed {' then '.join(kills)}: {verdict}", flush=True)
        shutil.rmtree(folder)
    return results


CONFIG = """\
[data]
limit = 1000
[model]
[[model.layers]]
type = "Conv2d"
out_channels = 6
kernel_size = 3
padding = 1
[[model.layers]]
type = "BatchNorm2d"
[[model.layers]]
type = "ReLU"
[[model.layers]]
type = "MaxPool2d"
kernel_size = 2
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
epochs = 6
batch_size = 32
"""


def cli_trials(n: int, rng: random.Random, work: Path) -> list[tuple[str, bool]]:
    import learnflux as lf

    learnflux = [sys.executable, "-m", "learnflux"]
    config = work / "run.toml"
    config.write_text(CONFIG)
    common = ["--quiet", "--no-plot", "--backup-every", "3"]
    ref = work / "cli-ref"
    window = _window(
        [*learnflux, "train", "--config", str(config), "--out", str(ref), *common], ref / STATE, work
    )
    ref_state = lf.load(ref / "model.lf").state_dict()
    results = []
    for t in range(n):
        out = work / f"cli{t}"
        delay = rng.uniform(0.0, 0.9 * window)
        cmd = [*learnflux, "train", "--config", str(config), "--out", str(out), *common]
        rc = _kill_later(cmd, out / STATE, delay, work)
        interrupted = rc != 0 and (out / STATE).exists()  # (a kill after the run completed: nothing to do)
        if interrupted:
            resumed = subprocess.run(
                [*learnflux, "train", "--resume", str(out), *common], capture_output=True
            )
            assert resumed.returncode == 0, resumed.stderr.decode()
        state = lf.load(out / "model.lf").state_dict()
        ok = state.keys() == ref_state.keys() and all(np.array_equal(state[k], ref_state[k]) for k in state)
        ok = ok and (out / "history.csv").read_text() == (ref / "history.csv").read_text()
        ok = ok and not (out / STATE).exists() and not any(p.name.endswith(".tmp") for p in out.iterdir())
        what = f"timer+{delay:.2f}s" + ("" if interrupted else " (finished first)")
        results.append((what, ok))
        print(
            f"  command-line trial {t + 1}: killed {what}: {'identical' if ok else 'DIFFERENT'}", flush=True
        )
    return results


def _fingerprint() -> dict[str, float]:
    """The modification times of learnflux's code (Python files and compiled kernels)."""
    src = ROOT / "src" / "learnflux"
    return {str(p): p.stat().st_mtime for p in sorted(src.rglob("*")) if p.suffix in (".py", ".so")}


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=24, help="Python trials")
    p.add_argument("--cli-trials", type=int, default=4, help="command-line trials")
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args(argv)
    rng = random.Random(args.seed)
    t0 = time.perf_counter()
    before = _fingerprint()
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        results = python_trials(args.trials, rng, work)
        results += cli_trials(args.cli_trials, rng, work)
    changed = [p for p, t in _fingerprint().items() if before.get(p) != t]
    if changed:  # a trial compared with a reference computed by other code proves nothing
        print(f"warning: learnflux's code changed during the trials (e.g. {changed[0]}): rerun them")
    good = sum(ok for _, ok in results)
    seconds = time.perf_counter() - t0
    print(f"{len(results)} trials, {good} bit-identical, {len(results) - good} different ({seconds:.0f} s)")
    return 0 if good == len(results) else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(main(sys.argv[1:]))
