"""Training runs described in a TOML file: dataset, model, loss, optimizer, schedule, training.

Everything is checked **before** training starts: unknown tables, keys and layers, values of the
wrong type or range, and the shapes between layers (propagated with ``layer.output_shape`` from the
data's sample shape). An error names the file, the line when it can be found, the key path
(``model.layers[3].kernel_size``) and what was expected.

The format (every table but ``[model]`` is optional; the values shown are the defaults, which
live in ``DATA_DEFAULTS``, ``TRAINING_DEFAULTS`` and ``OPTIMIZER_DEFAULT``; ``learnflux train
--help`` prints this reference generated from them)::

    [data]
    dataset = "digits"        # "digits" (embedded, 8×8) | "mnist" | "fashion" | "csv"
    root = "data/mnist"       # mnist / fashion: the folder with the IDX files (.gz or raw)
    download = false          # mnist / fashion: fetch missing files (SHA-256 checked)
    base_url = "https://…/"   # optional: fetch them from this folder URL (official SHA-256 still)
    path = "data.csv"         # csv: the file; target = -1 (column index or name)
    val_fraction = 0.15       # held out from the training data for validation
    test_fraction = 0.15      # digits / csv: held out for the final test (mnist: its test files)
    stratify = true           # keep class proportions in the splits
    standardize = false       # z = (x − mean) / std, fitted on the training part
    limit = 0                 # > 0: use only that many training samples (quick runs)

    [model]
    input_shape = [1, 8, 8]   # optional: the data's per-sample shape by default
    [[model.layers]]          # one table per layer, in order; `type` is the class name,
    type = "Conv2d"           # the other keys its constructor arguments
    out_channels = 16         # in_channels / in_features / num_features may be left out:
    kernel_size = 3           # they are inferred from the shape arriving at the layer
    padding = 1

    [loss]
    type = "CrossEntropyLoss" # default for class labels; "MSELoss" for numeric targets

    [optimizer]
    type = "Adam"             # any optimizer of learnflux.optim, with its arguments
    lr = 0.001
    no_decay = ["bias", "norm"]  # optional, with weight_decay: parameters spared from decay

    [schedule]                # optional: any schedule of learnflux.optim.schedules
    type = "CosineAnnealingLR"
    interval = "epoch"        # or "step"; T_max / total_steps are filled in when left out

    [training]
    epochs = 20
    batch_size = 32
    seed = 0                  # weights, splits and shuffling: same seed, same run
    metrics = ["accuracy"]
    clip_norm = 0             # > 0: clip gradients by global norm
    accumulate = 1            # average the gradients of k batches per update
    early_stopping = 0        # > 0: patience (epochs) on val_loss; the best weights are kept

    [output]
    dir = "runs/my-run"       # default: runs/<timestamp>
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import numpy as np

try:  # Python >= 3.11
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the backport (a core dependency there, see pyproject.toml)
    import tomli as tomllib

from .errors import ConfigError, LearnfluxError

#: the run ``learnflux train`` does without ``--config``: a small CNN on the embedded digits
DEFAULT_CONFIG = """\
# learnflux train (no --config): a small CNN on the embedded 8×8 handwritten digits
[data]
dataset = "digits"
val_fraction = 0.15
test_fraction = 0.15
stratify = true

[model]
[[model.layers]]
type = "Conv2d"
out_channels = 32
kernel_size = 3
padding = 1
bias = false
[[model.layers]]
type = "BatchNorm2d"
[[model.layers]]
type = "ReLU"
[[model.layers]]
type = "MaxPool2d"
kernel_size = 2
[[model.layers]]
type = "Conv2d"
out_channels = 64
kernel_size = 3
padding = 1
[[model.layers]]
type = "ReLU"
[[model.layers]]
type = "MaxPool2d"
kernel_size = 2
[[model.layers]]
type = "Flatten"
[[model.layers]]
type = "Dropout"
p = 0.3
[[model.layers]]
type = "Linear"
out_features = 10

[loss]
type = "CrossEntropyLoss"
label_smoothing = 0.1

[optimizer]
type = "Adam"
lr = 0.003

[schedule]
type = "CosineAnnealingLR"

[training]
epochs = 30
batch_size = 32
seed = 0
"""

_TABLES = {"data", "model", "loss", "optimizer", "schedule", "training", "output"}
#: the values of the [data] keys a config leaves out (``learnflux train --help`` prints them)
DATA_DEFAULTS: dict[str, Any] = {
    "dataset": "digits",
    "download": False,
    "target": -1,
    "val_fraction": 0.15,
    "test_fraction": 0.15,
    "stratify": True,
    "standardize": False,
    "limit": 0,
}
#: the values of the [training] keys a config leaves out (``metrics = None``: accuracy for class
#: labels, nothing for numeric targets)
TRAINING_DEFAULTS: dict[str, Any] = {
    "epochs": 20,
    "batch_size": 32,
    "seed": 0,
    "metrics": None,
    "clip_norm": 0,
    "accumulate": 1,
    "early_stopping": 0,
}
#: the optimizer of a config without an [optimizer] table
OPTIMIZER_DEFAULT: dict[str, Any] = {"type": "Adam", "args": {"lr": 0.001}}
_DATA_KEYS = {
    "dataset": str,
    "root": str,
    "download": bool,
    "path": str,
    "target": (int, str),
    "val_fraction": float,
    "test_fraction": float,
    "stratify": bool,
    "standardize": bool,
    "limit": int,
    "base_url": str,
}
_TRAINING_KEYS = {
    "epochs": int,
    "batch_size": int,
    "seed": int,
    "metrics": list,
    "clip_norm": float,
    "accumulate": int,
    "early_stopping": int,
}
_DATASETS = ("digits", "mnist", "fashion", "csv")
#: arguments inferred from the incoming shape when a layer table leaves them out
_INFERRED = {"in_features": -1, "in_channels": 0, "num_features": 0}


def _kind(t: Any) -> str:
    names = {
        int: "an integer",
        float: "a number",
        bool: "true or false",
        str: "a string",
        list: "a list",
        dict: "a table",
    }
    if isinstance(t, tuple):
        return " or ".join(names[x] for x in t)
    return names[t]


def _is(value: Any, t: Any) -> bool:
    if isinstance(t, tuple):
        return any(_is(value, x) for x in t)
    if t is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if t is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, t)


def _key(path: Sequence[Union[str, int]]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


@dataclass
class RunConfig:
    """A validated run description (see the module docstring for the format)."""

    source: str
    text: str
    raw: dict[str, Any]
    data: dict[str, Any] = field(default_factory=dict)
    layers: list[dict[str, Any]] = field(default_factory=list)
    input_shape: Optional[tuple[int, ...]] = None
    loss: dict[str, Any] = field(default_factory=dict)
    optimizer: dict[str, Any] = field(default_factory=dict)
    schedule: Optional[dict[str, Any]] = None
    training: dict[str, Any] = field(default_factory=dict)
    output_dir: Optional[str] = None
    #: how the missing-files error of mnist / fashion says to fetch them (the command line
    #: replaces it with its --download flag)
    download_hint: str = "set download = true in [data] to fetch them (SHA-256 checked)"

    # ------------------------------------------------------------------ errors
    def error(self, path: Sequence[Union[str, int]], message: str) -> ConfigError:
        """``file:line: key.path: message`` (the line when it can be found)."""
        line = locate(self.text, list(path))
        where = f"{self.source}:{line}" if line else self.source
        key = _key(path)
        return ConfigError(f"{where}: {key}: {message}" if key else f"{where}: {message}")

    @property
    def seed(self) -> int:
        return int(self.training["seed"])


def locate(text: str, path: list[Union[str, int]]) -> Optional[int]:
    """The line (1-based) of the TOML text that defines ``path`` (or the closest table above it)."""
    counters: dict[tuple, int] = {}
    current: list[Union[str, int]] = []
    best: tuple[int, int] = (0, 0)  # (matched length, line)
    header = re.compile(r"^\s*(\[\[?)\s*([A-Za-z0-9_.\-\" ]+?)\s*\]\]?\s*(#.*)?$")
    keyline = re.compile(r"^\s*([A-Za-z0-9_\-\".]+)\s*=")
    for lineno, line in enumerate(text.splitlines(), 1):
        m = header.match(line)
        if m:
            names = [p.strip().strip('"') for p in m.group(2).split(".")]
            if m.group(1) == "[[":
                key = tuple(names)
                counters[key] = counters.get(key, -1) + 1
                # a new element resets the counters of tables nested in it
                for other in list(counters):
                    if len(other) > len(key) and other[: len(key)] == key:
                        del counters[other]
                current = [*names, counters[key]]
            else:
                current = list(names)
            candidate = current
        else:
            k = keyline.match(line)
            if not k:
                continue
            candidate = [*current, *[p.strip('"') for p in k.group(1).split(".")]]
        n = 0
        while n < min(len(candidate), len(path)) and candidate[n] == path[n]:
            n += 1
        if n == len(candidate) and n > best[0]:
            best = (n, lineno)
            if n == len(path):
                return lineno
    return best[1] or None


# ---------------------------------------------------------------------------- parsing
def load_config(path: Union[str, Path]) -> RunConfig:
    """Read and validate a TOML run file (no data is loaded, no model is built yet)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read the config file ({exc.strerror or exc})") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{p}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start}); a "
            "config is a TOML file saved as UTF-8"
        ) from None
    return parse_config(text, source=str(p))


def parse_config(text: str, source: str = "<config>") -> RunConfig:
    """Validate TOML text (see the module docstring for the format)."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    cfg = RunConfig(source=source, text=text, raw=raw)
    for key in raw:
        if key not in _TABLES:
            raise cfg.error([key], f"unknown table or key; expected one of {sorted(_TABLES)}")
        if not isinstance(raw[key], dict):
            raise cfg.error([key], f"expected a table [{key}]")
    _parse_data(cfg, raw.get("data", {}))
    _parse_model(cfg, raw.get("model"))
    _parse_training(cfg, raw.get("training", {}))
    cfg.loss = _parse_component(cfg, "loss", raw.get("loss"), required=False)
    cfg.optimizer = _parse_component(
        cfg, "optimizer", raw.get("optimizer"), required=False, extra=("no_decay",)
    ) or {"type": OPTIMIZER_DEFAULT["type"], "args": dict(OPTIMIZER_DEFAULT["args"])}
    no_decay = cfg.optimizer.get("no_decay")
    if no_decay is not None:
        if not isinstance(no_decay, list) or not all(isinstance(p, str) for p in no_decay):
            raise cfg.error(["optimizer", "no_decay"], f"expected a list of name patterns, got {no_decay!r}")
        if "weight_decay" not in cfg.optimizer["args"]:
            raise cfg.error(["optimizer", "no_decay"], "needs weight_decay in the same table")
    cfg.schedule = _parse_component(cfg, "schedule", raw.get("schedule"), required=False, extra=("interval",))
    if cfg.schedule is not None:
        interval = cfg.schedule.get("interval", "epoch")
        if interval not in ("epoch", "step"):
            raise cfg.error(["schedule", "interval"], f'expected "epoch" or "step", got {interval!r}')
    out = raw.get("output", {})
    for key, value in out.items():
        if key != "dir":
            raise cfg.error(["output", key], "unknown key; expected: dir")
        if not isinstance(value, str) or not value:
            raise cfg.error(["output", key], f"expected a folder name (string), got {value!r}")
    cfg.output_dir = out.get("dir")
    return cfg


def _check_keys(cfg: RunConfig, table: str, values: dict, schema: dict) -> None:
    for key, value in values.items():
        if key not in schema:
            raise cfg.error([table, key], f"unknown key; expected one of {sorted(schema)}")
        if not _is(value, schema[key]):
            raise cfg.error([table, key], f"expected {_kind(schema[key])}, got {value!r}")


def _parse_data(cfg: RunConfig, data: dict) -> None:
    _check_keys(cfg, "data", data, _DATA_KEYS)
    d = dict(DATA_DEFAULTS)
    d.update(data)
    if d["dataset"] not in _DATASETS:
        raise cfg.error(["data", "dataset"], f"expected one of {list(_DATASETS)}, got {d['dataset']!r}")
    for key in ("val_fraction", "test_fraction"):
        if not 0 <= d[key] < 1:
            raise cfg.error(["data", key], f"expected a fraction in [0, 1), got {d[key]!r}")
    if d["val_fraction"] + d["test_fraction"] >= 1:
        raise cfg.error(["data", "test_fraction"], "val_fraction + test_fraction must stay below 1")
    if d["limit"] < 0:
        raise cfg.error(["data", "limit"], f"expected 0 (all) or a positive count, got {d['limit']}")
    if d["dataset"] in ("mnist", "fashion") and "root" not in d:
        raise cfg.error(
            ["data", "root"], f"dataset {d['dataset']!r} needs root = the folder with the IDX files"
        )
    if d["dataset"] == "csv" and "path" not in d:
        raise cfg.error(["data", "path"], 'dataset "csv" needs path = the CSV file')
    base = Path(cfg.source).parent if cfg.source not in ("<config>", "<default>") else Path(".")
    for key in ("root", "path"):  # relative: from the current folder, else the config's folder
        if key in d and not Path(d[key]).is_absolute() and not Path(d[key]).exists():
            if (base / d[key]).exists():
                d[key] = str(base / d[key])
    cfg.data = d


def _parse_model(cfg: RunConfig, model: Any) -> None:
    if model is None:
        raise cfg.error(["model"], "missing: a [model] table with [[model.layers]] entries")
    for key in model:
        if key not in ("layers", "input_shape"):
            raise cfg.error(["model", key], "unknown key; expected layers or input_shape")
    if "input_shape" in model:
        shape = model["input_shape"]
        if isinstance(shape, int) and not isinstance(shape, bool):
            shape = [shape]
        if not isinstance(shape, list) or not shape or not all(_is(s, int) and s > 0 for s in shape):
            raise cfg.error(["model", "input_shape"], f"expected a list of positive integers, got {shape!r}")
        cfg.input_shape = tuple(shape)
    layers = model.get("layers")
    if not isinstance(layers, list) or not layers:
        raise cfg.error(["model", "layers"], "expected a non-empty list of layer tables ([[model.layers]])")
    from .layer import LAYER_REGISTRY

    known = sorted(n for n, c in LAYER_REGISTRY.items() if not n.startswith("_") and not _is_abstract(c))
    for i, spec in enumerate(layers):
        path = ["model", "layers", i]
        if not isinstance(spec, dict):
            raise cfg.error(path, f"expected a table with a type key, got {spec!r}")
        name = spec.get("type")
        if name is None:
            raise cfg.error(path, f"missing key type (the layer class, one of {known})")
        if name not in LAYER_REGISTRY or name not in known:
            close = [k for k in known if k.lower() == str(name).lower()]
            hint = f"; did you mean {close[0]!r}?" if close else f"; known layers: {known}"
            raise cfg.error([*path, "type"], f"unknown layer {name!r}{hint}")
        cls = LAYER_REGISTRY[name]
        args = {k: v for k, v in spec.items() if k != "type"}
        _check_layer_args(cfg, path, cls, args)
        cfg.layers.append({"type": name, "args": args})


def _is_abstract(cls: type) -> bool:
    from .model import Model

    return cls.__name__ in ("Layer", "Activation", "Model", "Sequential", "Input") or (
        issubclass(cls, Model) and cls is not Model
    )


def _signature(cls: type) -> dict[str, inspect.Parameter]:
    params = dict(inspect.signature(cls.__init__).parameters)
    params.pop("self", None)
    return {k: p for k, p in params.items() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}


def _check_layer_args(cfg: RunConfig, path: list, cls: type, args: dict) -> None:
    params = _signature(cls)
    for key, value in args.items():
        if key not in params or key == "rng":
            raise cfg.error(
                [*path, key],
                f"{cls.__name__} has no argument {key!r}; "
                f"expected one of {[p for p in params if p != 'rng']}",
            )
        default = params[key].default
        if default is inspect.Parameter.empty or default is None:
            continue
        if isinstance(default, bool):
            ok, want = isinstance(value, bool), "true or false"
        elif isinstance(default, int):
            ok = _is(value, int) or (isinstance(value, list) and all(_is(v, int) for v in value))
            want = "an integer (or a list of integers)"
        elif isinstance(default, float):
            ok, want = _is(value, float), "a number"
        elif isinstance(default, str):
            ok, want = isinstance(value, (str, int, float)) and not isinstance(value, bool), "a string"
        else:
            ok, want = True, ""
        if not ok:
            raise cfg.error([*path, key], f"expected {want}, got {value!r}")


def _parse_training(cfg: RunConfig, training: dict) -> None:
    _check_keys(cfg, "training", training, _TRAINING_KEYS)
    t = dict(TRAINING_DEFAULTS)
    t.update(training)
    for key, low in (("epochs", 1), ("batch_size", 1), ("accumulate", 1), ("seed", 0), ("early_stopping", 0)):
        if t[key] < low:
            raise cfg.error(["training", key], f"expected an integer >= {low}, got {t[key]}")
    if t["clip_norm"] < 0:
        raise cfg.error(
            ["training", "clip_norm"], f"expected 0 (off) or a positive number, got {t['clip_norm']}"
        )
    if t["metrics"] is not None:
        from .metrics import get_metric

        for i, m in enumerate(t["metrics"]):
            try:
                get_metric(m)
            except ConfigError as exc:
                raise cfg.error(["training", "metrics", i], str(exc)) from None
    cfg.training = t


def _parse_component(
    cfg: RunConfig, table: str, spec: Any, required: bool, extra: Sequence[str] = ()
) -> Optional[dict[str, Any]]:
    if spec is None:
        if required:
            raise cfg.error([table], "missing")
        return None
    name = spec.get("type")
    if not isinstance(name, str):
        raise cfg.error([table, "type"], f"expected the class name (a string), got {name!r}")
    known = _components(table)
    if known is not None and name not in known:
        raise cfg.error([table, "type"], f"unknown {table} {name!r}; known: {sorted(known)}")
    args = {k: v for k, v in spec.items() if k != "type" and k not in extra}
    if known is not None:
        params = _signature(known[name])
        for key in args:
            if key not in params or key in ("params", "optimizer"):
                raise cfg.error(
                    [table, key],
                    f"{name} has no argument {key!r}; expected one of "
                    f"{[p for p in params if p not in ('params', 'optimizer')]}",
                )
    out = {"type": name, "args": args}
    out.update({k: spec[k] for k in extra if k in spec})
    return out


def _components(table: str) -> Optional[dict[str, type]]:
    from . import losses, optim

    if table == "loss":
        module: Any = losses
        base: Any = losses.Loss
    elif table == "optimizer":
        module, base = optim, optim.Optimizer
    else:
        try:
            from .optim import schedules as module  # type: ignore[no-redef]
        except ImportError:
            return None
        base = None
    out = {}
    for name in dir(module):
        obj = getattr(module, name)
        if isinstance(obj, type) and not name.startswith("_") and obj is not base:
            if base is None:  # schedules: the classes defined there, not their base
                if obj.__module__ == module.__name__ and name != "LRScheduler" and hasattr(obj, "step"):
                    out[name] = obj
            elif issubclass(obj, base):
                out[name] = obj
    return out


# ---------------------------------------------------------------------------- building
@dataclass
class Dataset:
    """The splits of a run, ready for ``fit``: arrays ``(x, y)`` per split."""

    train: tuple[np.ndarray, np.ndarray]
    val: Optional[tuple[np.ndarray, np.ndarray]]
    test: Optional[tuple[np.ndarray, np.ndarray]]
    sample_shape: tuple[int, ...]
    n_classes: Optional[int]
    standardizer: Any = None
    description: str = ""


def load_data(cfg: RunConfig) -> Dataset:
    """Load the dataset of the run and split it (the split depends only on the seed)."""
    from . import data as lfdata

    d = cfg.data
    seed = cfg.seed
    kind = d["dataset"]
    test: Optional[tuple] = None
    if kind in ("mnist", "fashion") and not d["download"]:
        _check_idx_files(cfg)
    try:
        if kind == "digits":
            x, y = lfdata.load_digits(images=True)
            desc = "digits (embedded, 1,797 images 8×8)"
        elif kind in ("mnist", "fashion"):
            kw = {"kind": kind, "download": d["download"]}
            if "base_url" in d:
                kw["base_url"] = d["base_url"]
            x, y = lfdata.load_mnist(d["root"], split="train", **kw)
            test = lfdata.load_mnist(d["root"], split="test", **kw)
            desc = f"{kind} from {d['root']}"
        else:
            x, y = lfdata.load_csv(d["path"], target=d["target"])
            desc = f"csv {d['path']}"
    except LearnfluxError as exc:
        raise ConfigError(f"{cfg.source}: data.dataset = {kind!r}: {exc}") from None
    if y is None:
        raise cfg.error(["data", "target"], "the data has no target column")
    classification = y.dtype.kind in "iu"
    strat = d["stratify"] and classification
    if test is None and d["test_fraction"] > 0:
        x, x_test, y, y_test = lfdata.train_val_split(x, y, d["test_fraction"], seed=seed, stratify=strat)
        test = (x_test, y_test)
    if d["limit"]:
        x, y = x[: d["limit"]], y[: d["limit"]]
    val = None
    if d["val_fraction"] > 0:
        x, x_val, y, y_val = lfdata.train_val_split(x, y, d["val_fraction"], seed=seed + 1, stratify=strat)
        val = (x_val, y_val)
    std = None
    if d["standardize"]:
        std = lfdata.Standardizer(axis=0 if x.ndim == 2 else (0, *range(2, x.ndim)))
        x = std.fit_transform(x)
        val = (std.transform(val[0]), val[1]) if val else None
        test = (std.transform(test[0]), test[1]) if test else None
    # the largest label of every split (a config may hold out no validation nor test part)
    n_classes = int(max(s[1].max() for s in ((x, y), val, test) if s)) + 1 if classification else None
    return Dataset((x, y), val, test, tuple(x.shape[1:]), n_classes, std, desc)


def _check_idx_files(cfg: RunConfig) -> None:
    """Without download, the four IDX files must be in ``root``: else an error that says how to
    fetch them in the caller's terms (``cfg.download_hint``)."""
    from .data.datasets import MNIST_FILES, _find

    root, kind = Path(cfg.data["root"]), cfg.data["dataset"]
    missing = [n for split in ("train", "test") for n in MNIST_FILES[split] if _find(root, kind, n) is None]
    if missing:
        what = "MNIST" if kind == "mnist" else "Fashion-MNIST"
        message = (
            f"{root} lacks the {what} file{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
            f"(gzipped or not); {cfg.download_hint}, or put the IDX files there"
        )
        if cfg.source == "<default>":
            raise ConfigError(message)
        raise cfg.error(["data", "root"], message)


def build_model(cfg: RunConfig, sample_shape: Optional[Sequence[int]] = None) -> Any:
    """``Sequential(Input(shape), *layers)``, after checking every layer's arguments and the
    shapes between layers. Weights are drawn from ``lf.seed(training.seed)``."""
    from .layer import LAYER_REGISTRY
    from .layers import Input
    from .model import Sequential
    from .seeding import seed as set_seed

    shape = cfg.input_shape or (tuple(sample_shape) if sample_shape is not None else None)
    if shape is None:
        raise cfg.error(["model", "input_shape"], "missing: the per-sample input shape, e.g. [1, 28, 28]")
    if sample_shape is not None and cfg.input_shape is not None and tuple(sample_shape) != cfg.input_shape:
        raise cfg.error(
            ["model", "input_shape"],
            f"is {list(cfg.input_shape)} but the data's samples have shape {list(sample_shape)}",
        )
    set_seed(cfg.seed)
    layers = [Input(tuple(shape))]
    current = tuple(shape)
    for i, spec in enumerate(cfg.layers):
        path = ["model", "layers", i]
        cls = LAYER_REGISTRY[spec["type"]]
        args = dict(spec["args"])
        params = _signature(cls)
        for name, axis in _INFERRED.items():
            if name in params and name not in args and params[name].default is inspect.Parameter.empty:
                if not current:
                    raise cfg.error(path, f"cannot infer {name} from the input shape {current}")
                args[name] = int(current[axis])
        missing = [n for n, p in params.items() if p.default is inspect.Parameter.empty and n not in args]
        if missing:
            raise cfg.error(path, f"{spec['type']} needs {', '.join(missing)}")
        try:
            layer = cls(**args)
        except (LearnfluxError, TypeError, ValueError) as exc:
            named = [k for k in args if re.search(rf"\b{re.escape(k)}\b", str(exc))]
            text = str(exc) if str(exc).startswith(spec["type"]) else f"{spec['type']}: {exc}"
            raise cfg.error([*path, named[0]] if named else path, text) from None
        for name, axis in _INFERRED.items():
            if name in spec["args"] and name in params and current and spec["args"][name] != current[axis]:
                raise cfg.error(
                    [*path, name],
                    f"is {spec['args'][name]} but the input arriving here "
                    f"has shape {list(current)} (so {name} = {current[axis]})",
                )
        before = current
        try:
            current = tuple(int(s) for s in layer.output_shape(current))
        except (LearnfluxError, TypeError, ValueError, IndexError) as exc:
            raise cfg.error(
                path,
                f"{spec['type']} cannot take the input of shape {list(current)} "
                f"arriving from the previous layer: {exc}",
            ) from None
        if any(s <= 0 for s in current):
            raise cfg.error(
                path,
                f"{spec['type']} would output the empty shape {list(current)} "
                f"from the input shape {list(before)}; use a smaller kernel or stride",
            )
        layers.append(layer)
    return Sequential(*layers)


def check_output(cfg: RunConfig, model: Any, dataset: Dataset) -> None:
    """The model's output must fit the targets (e.g. one logit per class)."""
    out = model.output_shape(dataset.sample_shape)
    last = ["model", "layers", len(cfg.layers) - 1]
    loss_type = (cfg.loss or {}).get("type", "CrossEntropyLoss")  # no [loss]: cross-entropy for labels
    if dataset.n_classes is not None and loss_type == "CrossEntropyLoss":
        if len(out) != 1 or out[0] < dataset.n_classes:
            raise cfg.error(
                last,
                f"the model outputs shape {list(out)} but the data has "
                f"{dataset.n_classes} classes: the last layer must output "
                f"{dataset.n_classes} values",
            )


def build_loss(cfg: RunConfig, dataset: Optional[Dataset] = None) -> Any:
    from . import losses

    spec = cfg.loss or {
        "type": "CrossEntropyLoss" if dataset is None or dataset.n_classes else "MSELoss",
        "args": {},
    }
    cls = getattr(losses, spec["type"], None)
    if cls is None:
        raise cfg.error(["loss", "type"], f"loss {spec['type']!r} is not available in this build")
    return _construct(cfg, "loss", cls, spec["args"])


def build_optimizer(cfg: RunConfig, model: Any) -> Any:
    from . import optim

    spec = cfg.optimizer
    cls = getattr(optim, spec["type"], None)
    if cls is None:
        raise cfg.error(["optimizer", "type"], f"optimizer {spec['type']!r} is not available in this build")
    params: Any = model.parameters()
    args = dict(spec["args"])
    if spec.get("no_decay") is not None:  # per-parameter groups: no weight decay on these
        from .optim import param_groups

        params = param_groups(model, weight_decay=args.pop("weight_decay"), no_decay=spec["no_decay"])
    return _construct(cfg, "optimizer", cls, args, params)


def build_schedule(cfg: RunConfig, optimizer: Any, steps_per_epoch: int) -> tuple[Any, str]:
    """``(schedule, interval)`` or ``(None, "epoch")``; fills ``T_max`` (cosine),
    ``total_steps`` (one-cycle) and ``total_iters`` (linear) from the run when left out."""
    if cfg.schedule is None:
        return None, "epoch"
    try:
        from .optim import schedules
    except ImportError:
        raise cfg.error(["schedule"], "learning-rate schedules are not available in this build") from None
    spec = cfg.schedule
    interval = spec.get("interval", "epoch")
    cls = getattr(schedules, spec["type"])
    args = dict(spec["args"])
    params = _signature(cls)
    epochs = cfg.training["epochs"]
    length = epochs if interval == "epoch" else epochs * steps_per_epoch
    if "T_max" in params and "T_max" not in args:
        args["T_max"] = length
    if "total_steps" in params and "total_steps" not in args and "epochs" not in args:
        args["total_steps"] = length
    return _construct(cfg, "schedule", cls, args, optimizer), interval


def _construct(cfg: RunConfig, table: str, cls: type, args: dict, *positional: Any) -> Any:
    try:
        return cls(*positional, **args)
    except (LearnfluxError, TypeError, ValueError) as exc:
        named = [k for k in args if re.search(rf"\b{re.escape(k)}\b", str(exc))]
        text = str(exc) if str(exc).startswith(cls.__name__) else f"{cls.__name__}: {exc}"
        raise cfg.error([table, named[0]] if named else [table], text) from None


def default_config() -> RunConfig:
    return parse_config(DEFAULT_CONFIG, source="<default>")
