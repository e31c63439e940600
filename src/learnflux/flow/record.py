"""Record the learning flow of a saved model (or of a run config) on a few of its samples.

This is what ``learnflux explain MODEL`` runs: load the model (``model.lf`` of a run folder,
a run folder, a folder of runs, whose newest run is taken, or a run config ``.toml``, whose
model is built with fresh weights), pick samples of its data (the run's data set, or any
``--data`` that ``learnflux evaluate`` accepts), then take a few training steps on them with a
chosen optimizer and learning rate, recording every ``o^k``, ``δ^k``, ``δw`` and ``ŵ``
(:func:`learnflux.trace.record`). The model file is never written: the steps change the
loaded copy only.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from ..errors import ConfigError
from ..training.trace import Trace, record

__all__ = ["Source", "explain_model", "find_model", "make_optimizer", "parse_samples"]


@dataclass
class Source:
    """Where the model and its data come from: ``path`` (the file given), ``model_path`` (a
    ``model.lf``, or None for a config) and a description for the reader."""

    path: Path
    model_path: Optional[Path]
    description: str


def find_model(text: str) -> Source:
    """Resolve MODEL: a model file, a run folder (its ``model.lf``), a folder of runs (the
    newest ``*/model.lf`` in it) or a run config ``.toml``."""
    path = Path(text)
    if path.is_file():
        if path.suffix == ".toml":
            return Source(path, None, f"{path} (a run config: its model with fresh weights)")
        return Source(path, path, str(path))
    if path.is_dir():
        if (path / "model.lf").is_file():
            return Source(path / "model.lf", path / "model.lf", str(path / "model.lf"))
        runs = sorted(path.glob("*/model.lf"), key=lambda p: (p.stat().st_mtime, str(p)))
        if runs:
            newest = runs[-1]
            return Source(newest, newest, f"{newest} (the newest run in {path})")
        raise ConfigError(
            f"{path}: a folder without model.lf and without runs (folders holding a model.lf); "
            "give a model file (runs/<timestamp>/model.lf), a run folder or a run config .toml"
        )
    raise ConfigError(f"{text}: no such model file, run folder or config")


def parse_samples(text: Any) -> list[int]:
    """``"0,1"`` or ``"3"`` or ``"0-4"`` → sample indices (from 0)."""
    if isinstance(text, (list, tuple)):
        return [int(i) for i in text]
    out: list[int] = []
    for part in str(text).split(","):
        part = part.strip()
        if not part:
            continue
        try:
            if "-" in part[1:]:
                lo, hi = part.split("-", 1) if not part.startswith("-") else (part, "")
                out.extend(range(int(lo), int(hi) + 1))
            else:
                out.append(int(part))
        except ValueError:
            raise ConfigError(f"--samples {text!r}: expected indices such as 0,1 or 0-3") from None
    if not out:
        raise ConfigError(f"--samples {text!r}: no sample index given")
    if any(i < 0 for i in out):
        raise ConfigError(f"--samples {text!r}: sample indices count from 0")
    return out


def make_optimizer(name: str, model: Any, lr: Any = None) -> Any:
    """``SGD``, ``Adam``... (any optimizer of ``lf.optim``, case-insensitive) over the model's
    parameters; ``lr`` None keeps the optimizer's default (SGD: 0.01)."""
    from .. import optim

    classes = {
        n.lower(): getattr(optim, n)
        for n in dir(optim)
        if isinstance(getattr(optim, n), type)
        and issubclass(getattr(optim, n), optim.Optimizer)
        and getattr(optim, n) is not optim.Optimizer
    }
    cls = classes.get(str(name).lower())
    if cls is None:
        raise ConfigError(f"--optimizer {name!r}: unknown; choose one of {', '.join(sorted(classes))}")
    if lr is None:
        return cls(model.parameters())
    if "lr" not in inspect.signature(cls).parameters:
        raise ConfigError(f"--optimizer {name}: takes no learning rate")
    return cls(model.parameters(), lr=lr)


def _pick(x: np.ndarray, y: np.ndarray, samples: Sequence[int], what: str) -> tuple[np.ndarray, np.ndarray]:
    bad = [i for i in samples if i >= len(x)]
    if bad:
        raise ConfigError(f"--samples: {what} has {len(x)} samples, numbered 0 to {len(x) - 1}; got {bad[0]}")
    idx = np.asarray(samples, dtype=np.int64)
    return x[idx], y[idx]


def _load(source: Source, data: str, labels: Optional[str], split: str, seed: Optional[int], download: bool):
    """``(model, loss, x, y, description of the data)``."""
    from ..config import build_loss, build_model, load_config, load_data

    if source.model_path is None:  # a config: its model (fresh weights) and its data
        cfg = load_config(source.path)
        if seed is not None:
            cfg.training["seed"] = seed
        if download:
            cfg.data["download"] = True
        if data == "run":
            ds = load_data(cfg)
            part = {"train": ds.train, "val": ds.val, "test": ds.test}.get(split, ds.train)
            if part is None:
                raise ConfigError(f"{source.path}: the {split} split is empty for this config")
            x, y = part
            desc = f"{ds.description} ({split} split, seed {cfg.seed})"
            model = build_model(cfg, ds.sample_shape)
            return model, build_loss(cfg, ds), x, y, desc
        from ..config.rundata import load_eval_data

        x, y, desc = load_eval_data(data, source.path, split, seed, labels, download=download)
        model = build_model(cfg, x.shape[1:])
        return model, build_loss(cfg), x, y, desc

    from ..config.rundata import apply_preprocess, load_eval_data
    from ..files.io import load

    model = load(source.model_path)
    x, y, desc = load_eval_data(data, source.model_path, split, seed, labels, download=download)
    x = apply_preprocess(source.model_path, x)
    run_config = source.model_path.parent / "config.toml"
    if run_config.is_file():
        cfg = load_config(run_config)
        loss = build_loss(cfg) if cfg.loss else _default_loss(y)
    else:
        loss = _default_loss(y)
    return model, loss, x, y, desc


def _default_loss(y: np.ndarray) -> Any:
    from ..losses import CrossEntropyLoss, MSELoss

    return CrossEntropyLoss() if np.asarray(y).dtype.kind in "iu" else MSELoss()


def explain_model(
    model: str,
    samples: Any = (0, 1),
    data: str = "run",
    labels: Optional[str] = None,
    split: str = "train",
    steps: int = 3,
    batch_size: Optional[int] = None,
    optimizer: str = "SGD",
    lr: Any = None,
    dtype: Optional[str] = None,
    seed: int = 0,
    download: bool = False,
) -> Trace:
    """Load ``model`` (see :func:`find_model`), take ``steps`` training steps on ``samples`` of
    its data (``batch_size`` samples a step, default all of them: every step sees the same
    batch) and return the :class:`~learnflux.trace.Trace`.

    ``trace.extra`` also holds ``source`` (what was loaded), ``data`` (which data),
    ``samples`` (``[{"index": 17, "label": 3}, ...]``: the chosen samples, by their index in
    that data) and ``optimizer`` (its name and arguments)."""
    from ..seeding import seed as set_seed

    if int(steps) < 1:
        raise ConfigError(f"--steps must be at least 1, got {steps}")
    chosen = parse_samples(samples)
    src = find_model(model)
    net, loss, x_all, y_all, desc = _load(src, data, labels, split, None, download)
    x, y = _pick(x_all, y_all, chosen, desc)
    if dtype is not None:
        net.astype(dtype)
    batch = len(chosen) if batch_size is None else int(batch_size)
    if batch < 1:
        raise ConfigError(f"--batch-size must be at least 1, got {batch_size}")
    if lr is not None:
        from ..numbers import is_exact, scalar_like

        lr = scalar_like(lr, net.dtype) if is_exact(net.dtype) else float(lr)
    opt = make_optimizer(optimizer, net, lr)
    set_seed(seed)  # dropout masks: the same every time
    trace = record(net, loss, opt, x, y, batch_size=batch, steps=int(steps))
    trace.extra.update(
        {
            "source": src.description,
            "data": desc,
            "samples": [{"index": int(i), "label": np.asarray(y_all[i]).tolist()} for i in chosen],
            "optimizer": {"name": type(opt).__name__, **_optimizer_args(opt)},
            "sample_notes": [
                f"Samples: {desc}: "
                + ", ".join(
                    f"{pos} = #{i} (target {np.asarray(y_all[i]).tolist()})"
                    for pos, i in enumerate(chosen, start=1)
                )
            ],
        }
    )
    return trace


def _optimizer_args(opt: Any) -> dict[str, Any]:
    from ..training.trace import to_jsonable

    group = opt.param_groups[0]
    return {k: to_jsonable(v) for k, v in group.items() if k != "params" and isinstance(v, (int, float, str))}
