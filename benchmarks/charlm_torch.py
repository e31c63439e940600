"""The character-level language model of ``examples/charlm.toml``, learnflux beside PyTorch: the
same model (the very same initial weights), data, batches in the same order, optimizer, schedule,
clipping and time budget. One command prints the figures and writes them as JSON::

    .venv/bin/python -m benchmarks.charlm_torch     # ~ 2 × the learnflux run + PyTorch's run

1. **learnflux**: ``learnflux train --config examples/charlm.toml`` in a subprocess, its wall time
   measured around the whole command (start-up, data, training, validation, the sample, the run
   folder): the job's figure, the validation bits per character it reaches and in what time.
2. **PyTorch, same steps**: the model the config builds (``lf.seed`` of the run: the CLI run's
   initial weights), converted layer by layer (``lf.to_torch``; the learned positions by hand) and
   its ``state_dict`` copied; the same training windows in the same order (``fit`` draws each
   epoch's order as ``np.random.default_rng(seed).permutation``, so does this), ``AdamW`` with the
   same two parameter groups, ``OneCycleLR`` stepped per update, ``clip_grad_norm_``, validation
   at each epoch end. Its training seconds are comparable to ``metrics.json``'s ``seconds``.
3. **PyTorch, same time budget**: as many epochs as fit into learnflux's training seconds at
   PyTorch's measured epoch time (the one-cycle schedule spread over them): the validation bits
   per character PyTorch reaches in the time learnflux takes.

Both frameworks get the same threads (those of NumPy's BLAS, or ``--threads``). The machine's load average is
recorded before and after each part: on a loaded machine the times mean little, run it on a
quiet one. Options: ``--config``, ``--json`` (default ``benchmarks/results/charlm.json``),
``--skip-budget`` (part 3 off), ``--epochs N`` (override the config's epochs in every part).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Optional

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "examples" / "charlm.toml"
JSON_OUT = ROOT / "benchmarks" / "results" / "charlm.json"


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def load() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def _shown(path: Path) -> str:
    """``path`` relative to the repository when inside it."""
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


# ------------------------------------------------------------------------------- learnflux
def run_learnflux(config: Path, epochs: Optional[int], threads: Optional[int] = None) -> dict[str, Any]:
    """``learnflux train`` as a user runs it; wall time around the whole command (``threads``:
    its BLAS threads, through ``OPENBLAS_NUM_THREADS`` / ``OMP_NUM_THREADS``)."""
    env = dict(os.environ)
    if threads:
        env.update({k: str(threads) for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")})
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        cmd = [str(Path(sys.executable).parent / "learnflux"), "train", "--config", str(config)]
        cmd += ["--out", str(out), "--quiet", "--no-plot"] + (["--epochs", str(epochs)] if epochs else [])
        before = load()
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env)
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            raise SystemExit(f"learnflux train failed ({proc.returncode}):\n{proc.stderr}")
        metrics = json.loads((out / "metrics.json").read_text())
        history = (out / "history.csv").read_text().splitlines()
    header = history[0].split(",")
    val_bpc = [float(row.split(",")[header.index("val_bits_per_char")]) for row in history[1:]]
    return {
        "command": " ".join(["learnflux", *cmd[1:3], _shown(config)]),
        "wall_s": round(wall, 1),
        "train_s": metrics["seconds"],
        "epochs": metrics["epochs"],
        "val_bits_per_char": metrics["final"]["val_bits_per_char"],
        "val_bits_per_char_per_epoch": val_bpc,
        "val_loss": metrics["final"]["val_loss"],
        "parameters": metrics["parameters"],
        "loadavg_before": before,
        "loadavg_after": load(),
        "result_line": proc.stdout.strip().splitlines()[:1],
        "sample": metrics.get("sample"),
    }


# ------------------------------------------------------------------------------- PyTorch
def torch_twin(model: Any) -> Any:
    """The learnflux model as a ``torch.nn.Sequential`` with the same ``state_dict`` names and
    values (float32): ``lf.to_torch`` layer by layer, a small module for the learned positions
    (``x + W[:T]``), which have no torch.nn class."""
    import torch

    import learnflux as lf

    class Positions(torch.nn.Module):
        def __init__(self, max_len: int, dim: int) -> None:
            super().__init__()
            self.weight = torch.nn.Parameter(torch.zeros(max_len, dim))

        def forward(self, x: Any) -> Any:
            return x + self.weight[: x.shape[1]]

    modules = []
    for layer in model.layers:
        if type(layer).__name__ == "LearnedPositionalEmbedding":
            modules.append(Positions(layer.max_len, layer.embedding_dim))
        else:
            modules.append(lf.to_torch(layer))
    twin = torch.nn.Sequential(*modules).float()
    twin.load_state_dict(
        {k: torch.from_numpy(np.array(v, dtype=np.float32)) for k, v in model.state_dict().items()}
    )
    return twin


def run_torch(
    config: Path, epochs: Optional[int], label: str, threads: Optional[int] = None
) -> dict[str, Any]:
    """Train the PyTorch twin as ``learnflux train`` trains the model (see the module
    docstring); ``epochs`` overrides the config's (the schedule spans the run either way)."""
    import torch

    from learnflux.config import build_model, load_config, load_data
    from learnflux.optim import param_groups

    from .common import numpy_blas_threads, setup_torch_threads

    threads_used = setup_torch_threads(threads or numpy_blas_threads())
    cfg = load_config(config)
    t = cfg.training
    n_epochs = epochs or t["epochs"]
    data = load_data(cfg)
    model = build_model(cfg, data.sample_shape)  # the CLI run's initial weights (same seed)
    twin = torch_twin(model)
    opt_spec, sched_spec = cfg.optimizer, cfg.schedule
    if opt_spec["type"] != "AdamW" or (sched_spec or {}).get("type") != "OneCycleLR":
        raise SystemExit("this comparison mirrors AdamW + OneCycleLR (per step), as examples/charlm.toml")
    args = dict(opt_spec["args"])
    decay = args.pop("weight_decay", 0.01)
    names = {id(p): n for n, p in model.named_parameters()}
    groups_lf = param_groups(model, weight_decay=decay, no_decay=opt_spec.get("no_decay") or ())
    torch_params = dict(twin.named_parameters())
    groups = [
        {"params": [torch_params[names[id(p)]] for p in g["params"]], "weight_decay": g["weight_decay"]}
        for g in groups_lf
    ]
    opt = torch.optim.AdamW(groups, **{k: v for k, v in args.items() if k in ("lr", "betas", "eps")})
    x, y = (torch.from_numpy(a) for a in data.train)
    xv, yv = (torch.from_numpy(a) for a in data.val)
    n, bs = len(x), t["batch_size"]
    steps = -(-n // bs)
    sched_args = {k: v for k, v in sched_spec["args"].items() if k != "total_steps"}
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, total_steps=n_epochs * steps, **sched_args)
    rng = np.random.default_rng(t["seed"])  # fit's batches: one permutation per epoch
    ce = torch.nn.functional.cross_entropy
    per_epoch = []
    t0 = time.perf_counter()
    before = load()
    for epoch in range(n_epochs):
        twin.train()
        order = torch.from_numpy(rng.permutation(n))
        for i in range(0, n, bs):
            idx = order[i : i + bs]
            opt.zero_grad(set_to_none=True)
            loss = ce(twin(x[idx]), y[idx])
            loss.backward()
            if t["clip_norm"]:
                torch.nn.utils.clip_grad_norm_(twin.parameters(), t["clip_norm"])
            opt.step()
            sched.step()
        twin.eval()
        total = 0.0
        with torch.no_grad():
            for i in range(0, len(xv), bs):
                total += float(ce(twin(xv[i : i + bs]), yv[i : i + bs])) * len(xv[i : i + bs])
        val_loss = total / len(xv)
        per_epoch.append(
            {
                "epoch": epoch + 1,
                "val_bits_per_char": val_loss / math.log(2),
                "seconds": time.perf_counter() - t0,
            }
        )
        bpc, at = per_epoch[-1]["val_bits_per_char"], per_epoch[-1]["seconds"]
        log(f"  {label}: epoch {epoch + 1}/{n_epochs} val bits/char {bpc:.4f} [{at:.0f}s]")
    seconds = time.perf_counter() - t0
    return {
        "torch": torch.__version__,
        "threads": threads_used,
        "epochs": n_epochs,
        "train_s": round(seconds, 1),
        "val_bits_per_char": per_epoch[-1]["val_bits_per_char"],
        "val_bits_per_char_per_epoch": [e["val_bits_per_char"] for e in per_epoch],
        "loadavg_before": before,
        "loadavg_after": load(),
    }


def report(result: dict[str, Any]) -> str:
    """The figures, one line each."""
    lf_run, same = result["learnflux"], result["torch_same_steps"]
    lines = [
        f"learnflux: val {lf_run['val_bits_per_char']:.4f} bits/char after {lf_run['epochs']} epochs; the "
        f"whole command {lf_run['wall_s']:.0f} s, of which training {lf_run['train_s']:.0f} s",
        f"PyTorch:   val {same['val_bits_per_char']:.4f} bits/char after the same {same['epochs']} epochs, "
        f"training {same['train_s']:.0f} s ({result['torch_speedup']:.2f}x faster)",
    ]
    budget = result.get("torch_same_budget")
    if budget:
        lines.append(
            f"PyTorch:   val {budget['val_bits_per_char']:.4f} bits/char within learnflux's "
            f"{budget['budget_s']:.0f} s of training ({budget['epochs']} epochs, {budget['train_s']:.0f} s)"
        )
    lines.append(f"load average: {lf_run['loadavg_before']} at the start, {load()} at the end")
    return "\n".join(lines)


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", type=Path, default=CONFIG)
    p.add_argument("--json", type=Path, default=JSON_OUT)
    p.add_argument("--epochs", type=int, help="override the config's epochs in every part")
    p.add_argument("--skip-budget", action="store_true", help="skip PyTorch at learnflux's time budget")
    p.add_argument(
        "--threads",
        type=int,
        help="threads for both (default: those of NumPy's BLAS, as the benchmark suite); on a loaded "
        "machine 1 keeps PyTorch's OpenMP threads from spinning against the other processes",
    )
    args = p.parse_args(argv)
    config = args.config.resolve()
    result: dict[str, Any] = {
        "config": _shown(config),
        "date_utc": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    result["cpus"] = os.cpu_count()
    log(f"learnflux train --config {result['config']} (load average {load()})")
    result["threads"] = args.threads or "NumPy's BLAS threads"
    lf_run = result["learnflux"] = run_learnflux(config, args.epochs, args.threads)
    log(f"  learnflux: val bits/char {lf_run['val_bits_per_char']:.4f}, wall {lf_run['wall_s']:.0f}s")
    same = result["torch_same_steps"] = run_torch(
        config, lf_run["epochs"], "PyTorch, same steps", args.threads
    )
    result["torch_speedup"] = round(lf_run["train_s"] / same["train_s"], 2)
    if not args.skip_budget:
        per_epoch = same["train_s"] / same["epochs"]
        epochs = max(1, int(lf_run["train_s"] // per_epoch))
        budget = result["torch_same_budget"] = run_torch(
            config, epochs, "PyTorch, same time budget", args.threads
        )
        budget["budget_s"] = lf_run["train_s"]
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=1) + "\n")
    print(report(result))
    print(f"written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
