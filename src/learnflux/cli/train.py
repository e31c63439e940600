"""``learnflux train``: train a model described by a TOML config (default: a small CNN on the
embedded digits), then test it and write the run folder."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Optional

import numpy as np

from ..config import DEFAULT_CONFIG, RunConfig, default_config, load_config
from ..errors import ConfigError

EPILOG = """\
without --config: a small CNN (conv 16 → BN → ReLU → pool → conv 32 → ReLU → pool → linear)
learns the embedded 8×8 handwritten digits (train / validation / test split fixed by the seed)
with Adam, a cosine schedule and label smoothing; `learnflux train --print-config` shows it.

the run folder (--out, default runs/<timestamp>) receives:
  model.lf       the trained model (lf.load("model.lf"); JSON architecture + arrays, no pickle)
  metrics.json   test_accuracy, test_loss, epochs, seconds, model_path, the final train/val values
  history.csv    one row per epoch: loss, accuracy, lr, val_loss, val_accuracy
  curves.png     loss and accuracy per epoch, train and validation
  config.toml    the config of the run (what `learnflux evaluate` uses to rebuild the split)
  preprocess.json  the standardisation statistics, when [data] standardize = true

config format (TOML; every table but [model] is optional, defaults shown):
  [data]
  dataset = "digits"      # "digits" | "mnist" | "fashion" | "csv"
  root = "data/mnist"     # mnist/fashion: folder with the IDX files (.gz or raw)
  download = false        # mnist/fashion: fetch missing files (SHA-256 checked)
  path = "data.csv"       # csv file; target = -1 (column index or header name)
  val_fraction = 0.15     # validation part taken from the training data
  test_fraction = 0.15    # test part (digits, csv; mnist uses its test files)
  stratify = true         # keep class proportions
  standardize = false     # z = (x - mean) / std fitted on the training part
  limit = 0               # > 0: only that many training samples

  [model]
  input_shape = [1, 8, 8] # optional, the data's sample shape by default
  [[model.layers]]        # one table per layer, in order
  type = "Conv2d"         # a layer class of learnflux, then its arguments
  out_channels = 16       # in_channels / in_features / num_features can be
  kernel_size = 3         # left out: inferred from the incoming shape
  padding = 1

  [loss]
  type = "CrossEntropyLoss"   # plus its arguments (label_smoothing = 0.1 ...)
  [optimizer]
  type = "Adam"               # SGD, Adam, AdamW, RMSprop, Adagrad + arguments
  lr = 0.001
  no_decay = ["bias", "norm"] # with weight_decay: no decay on biases, norm layers
  [schedule]                  # optional: StepLR, CosineAnnealingLR, OneCycleLR ...
  type = "CosineAnnealingLR"  # T_max / total_steps default to the run length
  interval = "epoch"          # or "step"
  [training]
  epochs = 20
  batch_size = 32
  seed = 0                    # weights, split, shuffling: same seed, same run
  metrics = ["accuracy"]      # also "top3_accuracy" ...
  clip_norm = 0               # > 0: clip the gradient's global norm
  accumulate = 1              # batches per update (gradient accumulation)
  early_stopping = 0          # > 0: patience on val_loss, best weights kept
  [output]
  dir = "runs/my-run"

errors in the config (unknown layer or key, wrong type, shapes that do not fit between layers)
are reported with the file, line and key path before any training starts.
examples: examples/*.toml
"""


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "train",
        help="train a model (default: a small CNN on the embedded digits)",
        description="Train a model from a TOML config (default: a small CNN on the embedded\n"
        "8×8 digits), test it, and write the model, metrics, history and curves to a run folder.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--config", metavar="FILE", help="TOML run description (format below)")
    p.add_argument("--out", metavar="DIR", help="run folder (default: [output] dir, else runs/<timestamp>)")
    p.add_argument("--epochs", type=_positive, help="override [training] epochs")
    p.add_argument("--batch-size", type=_positive, help="override [training] batch_size")
    p.add_argument("--seed", type=_non_negative, help="override [training] seed")
    p.add_argument("--lr", type=float, help="override [optimizer] lr")
    p.add_argument("--quiet", action="store_true", help="no progress output, only the result")
    p.add_argument("--no-plot", action="store_true", help="do not draw curves.png")
    p.add_argument("--print-config", action="store_true", help="print the config that would run, and exit")
    p.set_defaults(func=main)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text}")
    return value


def main(args: argparse.Namespace) -> int:
    if args.print_config:
        print(Path(args.config).read_text(encoding="utf-8") if args.config else DEFAULT_CONFIG, end="")
        return 0
    cfg = load_config(args.config) if args.config else default_config()
    if args.epochs is not None:
        cfg.training["epochs"] = args.epochs
    if args.batch_size is not None:
        cfg.training["batch_size"] = args.batch_size
    if args.seed is not None:
        cfg.training["seed"] = args.seed
    if args.lr is not None:
        if not args.lr > 0:
            raise ConfigError(f"--lr must be positive, got {args.lr}")
        cfg.optimizer["args"]["lr"] = args.lr
    out = Path(args.out or cfg.output_dir or default_run_dir())
    verbose = 0 if args.quiet else (1 if sys.stdout.isatty() else 2)
    result = run(cfg, out, verbose=verbose, plot=not args.no_plot)
    acc = result.get("test_accuracy")
    line = f"test accuracy: {acc:.4f}" if acc is not None else f"test loss: {result['test_loss']:.6g}"
    if acc is not None:
        line += f" (test loss {result['test_loss']:.4f})"
    print(line)
    print(f"run folder: {out}  (model.lf, metrics.json, history.csv{'' if args.no_plot else ', curves.png'})")
    return 0


def default_run_dir() -> Path:
    base = Path("runs") / time.strftime("%Y%m%d-%H%M%S")
    path, i = base, 1
    while path.exists():
        i += 1
        path = Path(f"{base}-{i}")
    return path


def run(cfg: RunConfig, out: Path, verbose: Any = 0, plot: bool = True) -> dict[str, Any]:
    """Everything ``learnflux train`` does, callable from Python: check and build, train, test,
    write the run folder; returns the content of ``metrics.json``."""
    from ..callbacks import CSVLogger, EarlyStopping, TerminateOnNaN
    from ..config import build_loss, build_model, build_optimizer, build_schedule, check_output, load_data
    from ..io import atomic_write, save
    from ..summary import summary
    from ..train import Trainer

    # every check happens here, before any training
    dataset = load_data(cfg)
    model = build_model(cfg, dataset.sample_shape)
    check_output(cfg, model, dataset)
    loss = build_loss(cfg, dataset)
    optimizer = build_optimizer(cfg, model)
    t = cfg.training
    n_train = len(dataset.train[0])
    steps = -(-n_train // t["batch_size"]) // max(1, t["accumulate"]) or 1
    schedule, interval = build_schedule(cfg, optimizer, steps)

    out.mkdir(parents=True, exist_ok=True)
    _write_text(out / "config.toml", cfg.text, atomic_write)
    if dataset.standardizer is not None:
        _write_text(
            out / "preprocess.json",
            json.dumps({"standardizer": dataset.standardizer.get_config()}),
            atomic_write,
        )
    callbacks: list[Any] = [TerminateOnNaN(), CSVLogger(out / "history.csv")]
    if t["early_stopping"]:
        callbacks.append(
            EarlyStopping(
                "val_loss" if dataset.val else "loss", patience=t["early_stopping"], restore_best=True
            )
        )
    metrics = t["metrics"] if t["metrics"] is not None else (["accuracy"] if dataset.n_classes else [])
    trainer = Trainer(
        model,
        loss=loss,
        optimizer=optimizer,
        metrics=metrics,
        callbacks=callbacks,
        scheduler=schedule,
        scheduler_interval=interval,
        clip_norm=t["clip_norm"] or None,
        accumulate=t["accumulate"],
        seed=cfg.seed,
        verbose=verbose,
    )
    if verbose:
        s = summary(model)
        sizes = ", ".join(
            f"{name} {len(part[0])}"
            for name, part in (("train", dataset.train), ("val", dataset.val), ("test", dataset.test))
            if part
        )
        print(f"data: {dataset.description} · {sizes}")
        print(
            f"model: {len(model.layers) - 1} layers, {s.total_params:,} parameters, "
            f"{s.total_flops:,} FLOPs per sample · {type(optimizer).__name__} · "
            f"{t['epochs']} epochs of batches of {t['batch_size']}"
        )
    history = trainer.fit(
        *dataset.train, epochs=t["epochs"], batch_size=t["batch_size"], validation_data=dataset.val
    )
    model_path = out / "model.lf"
    save(model, model_path)
    result: dict[str, Any] = {}
    if dataset.test is not None:
        test = trainer.evaluate(*dataset.test)
        result.update({f"test_{k}": v for k, v in test.items()})
    last = {k: v[-1] for k, v in history.history.items()}
    result.update(
        {
            "epochs": len(history),
            "seconds": round(history.seconds, 3),
            "model_path": str(model_path),
            "dataset": cfg.data["dataset"],
            "samples": {
                "train": n_train,
                "val": len(dataset.val[0]) if dataset.val else 0,
                "test": len(dataset.test[0]) if dataset.test else 0,
            },
            "seed": cfg.seed,
            "parameters": int(sum(p.size for p in model.parameters())),
            "final": last,
            "stop_reason": history.stop_reason,
            "config": cfg.source,
        }
    )
    if "test_loss" not in result:  # no test split: report the validation (or training) values
        src = "val_" if "val_loss" in last else ""
        result["test_loss"] = last[src + "loss"]
        if src + "accuracy" in last:
            result["test_accuracy"] = last[src + "accuracy"]
    _write_text(out / "metrics.json", json.dumps(_jsonable(result), indent=2) + "\n", atomic_write)
    if plot:
        plot_curves(history, out / "curves.png")
    return result


def _jsonable(value: Any) -> Any:
    import math

    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "item"):
        return value.item()
    return value


def _write_text(path: Path, text: str, atomic_write: Any) -> None:
    atomic_write(path, lambda fh: fh.write(text.encode("utf-8")))


def plot_curves(history: Any, path: Path) -> Optional[Path]:
    """Loss and accuracy per epoch, train and validation, into a PNG (matplotlib, Agg)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed (pip install learnflux[train]): no curves.png", file=sys.stderr)
        return None
    h = history.history
    epochs = [e + 1 for e in history.epoch]
    metric = next((k for k in h if k not in ("loss", "lr") and not k.startswith("val_")), None)
    panels = [("loss", "loss")] + ([(metric, metric.replace("_", " "))] if metric else [])
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4), squeeze=False)
    for ax, (key, title) in zip(axes[0], panels):
        ax.plot(epochs, h[key], "o-", ms=3, label="train")
        if "val_" + key in h:
            ax.plot(epochs, h["val_" + key], "s-", ms=3, label="validation")
        ax.set_xlabel("epoch")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend()
        values = [v for v in h[key] + h.get("val_" + key, []) if np.isfinite(v)]
        if key == "loss" and values and min(values) > 0 and max(values) > 20 * min(values):
            ax.set_yscale("log")  # losses spanning orders of magnitude
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)
    return path
