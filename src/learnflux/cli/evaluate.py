"""``learnflux evaluate MODEL --data ...``: the loss and accuracy of a saved model on a dataset."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Optional

import numpy as np

from ..errors import ConfigError, DataError, LearnfluxError

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
    from ..io import load
    from ..train import evaluate

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
    from ..metrics import looks_like_class_labels

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


def apply_preprocess(model_path: Path, x: np.ndarray) -> np.ndarray:
    """Apply ``preprocess.json`` (saved beside the model by ``learnflux train``), if any."""
    pre = model_path.parent / "preprocess.json"
    if not pre.is_file():
        return x
    from ..data import Standardizer

    try:
        spec = json.loads(pre.read_text(encoding="utf-8"))
        if not isinstance(spec, dict):
            raise ValueError("not a JSON object")
    except (ValueError, UnicodeDecodeError) as exc:
        raise DataError(
            f"{pre}: corrupt preprocessing file ({exc}); delete it or rerun the training"
        ) from None
    if "standardizer" in spec:
        try:
            x = Standardizer.from_config(spec["standardizer"]).transform(x)
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, LearnfluxError):
                raise
            raise DataError(f"{pre}: corrupt preprocessing file ({type(exc).__name__}: {exc})") from None
    return x


def load_eval_data(
    spec: str,
    model_path: Path,
    split: str,
    seed: Optional[int],
    labels: Optional[str],
    download: bool = False,
) -> tuple[np.ndarray, np.ndarray, str]:
    """``(x, y, description)`` for a ``--data`` spec (see ``learnflux evaluate --help``)."""
    from ..config import default_config, load_config, load_data

    if spec.endswith(".npy"):
        if not labels:
            raise ConfigError("--data X.npy needs --labels Y.npy")
        return _npy(spec), _npy(labels), spec
    if spec.endswith(".npz"):
        import zipfile

        if not Path(spec).is_file():
            raise ConfigError(f"--data {spec}: no such file")
        try:
            with np.load(spec, allow_pickle=False) as archive:
                return archive["x"], archive["y"], spec
        except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile) as exc:
            raise DataError(f"{spec}: expected an .npz archive with arrays x and y ({exc})") from None
    if spec == "run":
        run_config = model_path.parent / "config.toml"
        if not run_config.is_file():
            raise ConfigError(
                f"{model_path}: no config.toml beside the model (it was not written by "
                "`learnflux train`), so the data it trained on is unknown and its test split "
                "cannot be rebuilt; say what to evaluate on with --data: digits, mnist:DIR, "
                "fashion:DIR, csv:FILE, a run config .toml, X.npy --labels Y.npy or DATA.npz "
                "(data the model has not trained on)"
            )
        cfg = load_config(run_config)
        cfg.data["standardize"] = False  # the saved statistics are applied instead
    elif spec.endswith(".toml"):
        cfg = load_config(spec)
        cfg.data["standardize"] = False
    else:
        cfg = default_config()
        kind, _, where = spec.partition(":")
        if kind not in ("digits", "mnist", "fashion", "csv") or (kind != "digits" and not where):
            raise ConfigError(
                f"--data {spec!r}: expected run, CONFIG.toml, digits, mnist:DIR, "
                "fashion:DIR, csv:FILE, X.npy (with --labels) or DATA.npz"
            )
        cfg.data.update({"dataset": kind})
        if kind in ("mnist", "fashion"):
            cfg.data["root"] = where
        elif kind == "csv":
            cfg.data["path"] = where
    if seed is not None:
        cfg.training["seed"] = seed
    cfg.download_hint = "pass --download to fetch them (SHA-256 checked)"
    if download:
        cfg.data["download"] = True
    if split == "all":
        cfg.data["val_fraction"] = 0.0
        if cfg.data["dataset"] not in ("mnist", "fashion"):
            cfg.data["test_fraction"] = 0.0
    ds = load_data(cfg)
    part = {"train": ds.train, "val": ds.val, "test": ds.test, "all": ds.train}[split]
    if part is None:
        raise ConfigError(f"the {split} split is empty for this dataset configuration")
    x, y = part
    if split == "all" and ds.test is not None:
        x, y = np.concatenate([x, ds.test[0]]), np.concatenate([y, ds.test[1]])
    return x, y, f"{ds.description} ({split} split, seed {cfg.seed})"


def _npy(path: str) -> np.ndarray:
    if not Path(path).is_file():
        raise ConfigError(f"{path}: no such file")
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise DataError(f"{path}: cannot read the array ({exc}); expected a .npy file (np.save)") from None
