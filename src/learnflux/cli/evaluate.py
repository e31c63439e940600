"""``learnflux evaluate MODEL --data ...``: the loss and accuracy of a saved model on a dataset."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from ..config.rundata import _npy, apply_preprocess, load_eval_data  # noqa: F401  (predict's too)
from ..errors import ConfigError

DATA_HELP = """\
data (--data), default: the test split of the run the model comes from (rebuilt from the
config.toml that `learnflux train` writes next to the model file). A model saved from Python
has no such file: then --data is required, since the data it trained on is unknown.
  run            the split of the model's run folder (config.toml beside the model)
  CONFIG.toml    the dataset and split of a run config
  digits         the embedded digits, split with --seed as `learnflux train` does (a
                 model trained on other digits than that split's train part has seen
                 these test samples)
  mnist:DIR      MNIST IDX files in DIR (its t10k test files for --split test)
  fashion:DIR    Fashion-MNIST IDX files in DIR
  csv:FILE       a CSV file whose last column is the target
  X.npy          samples; with --labels Y.npy for the targets
  DATA.npz       an archive holding arrays x and y
The model's preprocessing (preprocess.json beside it, written when the run standardised its
data) is applied to the samples; the loss is the one the run trained with (its config.toml), else
cross-entropy for integer labels and the mean squared error for numbers.
"""


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "evaluate",
        help="loss and accuracy of a saved model on a dataset",
        description="Evaluate a saved model (lf.save format) on a dataset: loss and accuracy.",
        epilog=DATA_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("model", metavar="MODEL", help="a model file (model.lf of a run folder)")
    p.add_argument("--data", default="run", help="what to evaluate on (see below; default: run)")
    p.add_argument("--labels", metavar="Y.npy", help="targets, when --data is a .npy array")
    p.add_argument(
        "--split",
        default="test",
        choices=("train", "val", "test", "all"),
        help="which part of the dataset (default: test)",
    )
    p.add_argument("--seed", type=int, default=None, help="split seed (default: the run's, else 0)")
    p.add_argument(
        "--download",
        action="store_true",
        help="mnist / fashion: download missing IDX files (SHA-256 checked)",
    )
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from ..files.io import load
    from ..training.train import evaluate

    model = load(_existing(args.model))
    x, y, desc = load_eval_data(
        args.data, Path(args.model), args.split, args.seed, args.labels, download=args.download
    )
    x = apply_preprocess(Path(args.model), x)
    loss: Any = "cross_entropy" if np.asarray(y).dtype.kind in "iu" else "mse"
    run_config = Path(args.model).parent / "config.toml"
    if run_config.is_file():  # the loss the run trained with (label smoothing, ...)
        from ..config import build_loss, load_config

        cfg = load_config(run_config)
        if cfg.loss:
            loss = build_loss(cfg)
    from ..training.metrics import looks_like_class_labels

    labels = np.asarray(y)
    if labels.dtype.kind in "iu" and labels.ndim > 1:  # a label per position: a language model
        metrics = ["bits_per_char"]
    else:
        metrics = ["accuracy"] if looks_like_class_labels(y) else []
    result = evaluate(model, x, y, loss=loss, metrics=metrics, batch_size=args.batch_size)
    result["samples"] = int(len(y))
    if args.json:
        print(json.dumps({"data": desc, **result}))
    else:
        parts = [f"{k} {v:.4f}" for k, v in result.items() if k != "samples"]
        print(f"{desc}, {result['samples']} samples: " + " · ".join(parts))
    return 0


def _existing(path: str) -> str:
    if not Path(path).is_file():
        raise ConfigError(f"{path}: no such model file")
    return path
