"""The data a trained model is evaluated on: a ``--data`` spec of ``learnflux evaluate``,
``predict`` and ``explain`` (a run's own split, a config, a dataset name, arrays), and the
preprocessing ``learnflux train`` saved beside the model."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Optional

import numpy as np

from ..data import Standardizer
from ..errors import ConfigError, DataError, LearnfluxError
from . import default_config  # the package's: config/__init__.py does not import this module
from .build import load_data
from .parse import RunConfig, load_config


def apply_preprocess(model_path: Path, x: np.ndarray) -> np.ndarray:
    """Apply ``preprocess.json`` (saved beside the model by ``learnflux train``), if any."""
    pre = model_path.parent / "preprocess.json"
    if not pre.is_file():
        return x
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
    if spec.endswith(".npy"):
        if not labels:
            raise ConfigError("--data X.npy needs --labels Y.npy")
        return _npy(spec), _npy(labels), spec
    if spec.endswith(".npz"):
        return _npz(spec)
    cfg = _eval_config(spec, model_path)
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


def _npz(spec: str) -> tuple[np.ndarray, np.ndarray, str]:
    """``x`` and ``y`` of an ``.npz`` archive (never unpickled)."""
    if not Path(spec).is_file():
        raise ConfigError(f"--data {spec}: no such file")
    try:
        with np.load(spec, allow_pickle=False) as archive:
            return archive["x"], archive["y"], spec
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"{spec}: expected an .npz archive with arrays x and y ({exc})") from None


def _eval_config(spec: str, model_path: Path) -> RunConfig:
    """The run config a ``--data`` spec names: the model's own run (``run``), a run config file,
    or a dataset (``digits``, ``mnist:DIR``, ``fashion:DIR``, ``csv:FILE``) on the default run."""
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
        spec = str(run_config)
    if spec.endswith(".toml"):
        cfg = load_config(spec)
        cfg.data["standardize"] = False  # the saved statistics are applied instead
        return cfg
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
    return cfg


def _npy(path: str) -> np.ndarray:
    if not Path(path).is_file():
        raise ConfigError(f"{path}: no such file")
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise DataError(f"{path}: cannot read the array ({exc}); expected a .npy file (np.save)") from None
