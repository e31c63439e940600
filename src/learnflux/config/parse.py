"""Reading a run config: TOML text -> a checked :class:`RunConfig` (no data loaded, nothing built).

Every key is checked against :mod:`learnflux.config.schema`; an error names the file, the line
when it can be found (:func:`locate`), the key path (``model.layers[3].kernel_size``) and what
was expected.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence, Union

try:  # Python >= 3.11
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the backport (a core dependency there, see pyproject.toml)
    import tomli as tomllib

from ..errors import ConfigError
from ..training.metrics import get_metric
from . import schema
from .components import COMPONENTS, layer_classes

KeyPath = Sequence[Union[str, int]]


def _key(path: KeyPath) -> str:
    """``["model", "layers", 3, "kernel_size"]`` -> ``"model.layers[3].kernel_size"``."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


@dataclass
class RunConfig:
    """A validated run description (see :mod:`learnflux.config` for the format)."""

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

    def error(self, path: KeyPath, message: str) -> ConfigError:
        """``file:line: key.path: message`` (the line when it can be found)."""
        line = locate(self.text, list(path))
        where = f"{self.source}:{line}" if line else self.source
        key = _key(path)
        return ConfigError(f"{where}: {key}: {message}" if key else f"{where}: {message}")

    @property
    def seed(self) -> int:
        return int(self.training["seed"])


_HEADER = re.compile(r"^\s*(\[\[?)\s*([A-Za-z0-9_.\-\" ]+?)\s*\]\]?\s*(#.*)?$")
_KEYLINE = re.compile(r"^\s*([A-Za-z0-9_\-\".]+)\s*=")


def locate(text: str, path: list[Union[str, int]]) -> Optional[int]:
    """The line (1-based) of the TOML text that defines ``path`` (or the closest table above it)."""
    counters: dict[tuple, int] = {}
    current: list[Union[str, int]] = []
    best: tuple[int, int] = (0, 0)  # (matched length, line)
    for lineno, line in enumerate(text.splitlines(), 1):
        m = _HEADER.match(line)
        if m:
            current = _table_path(m, counters)
            candidate = current
        else:
            k = _KEYLINE.match(line)
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


def _table_path(header: re.Match, counters: dict[tuple, int]) -> list[Union[str, int]]:
    """The key path of a ``[table]`` or ``[[array.of.tables]]`` header (the latter with the index
    of its element, counted in ``counters``)."""
    names = [p.strip().strip('"') for p in header.group(2).split(".")]
    if header.group(1) != "[[":
        return list(names)
    key = tuple(names)
    counters[key] = counters.get(key, -1) + 1
    for other in list(counters):  # a new element resets the counters of tables nested in it
        if len(other) > len(key) and other[: len(key)] == key:
            del counters[other]
    return [*names, counters[key]]


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
    """Validate TOML text (see :mod:`learnflux.config` for the format)."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    cfg = RunConfig(source=source, text=text, raw=raw)
    for key in raw:
        if key not in schema.TABLES:
            raise cfg.error([key], f"unknown table or key; expected one of {sorted(schema.TABLES)}")
        if not isinstance(raw[key], dict):
            raise cfg.error([key], f"expected a table [{key}]")
    _parse_data(cfg, raw.get("data", {}))
    _parse_model(cfg, raw.get("model"))
    _parse_training(cfg, raw.get("training", {}))
    cfg.loss = _parse_component(cfg, "loss", raw.get("loss"))
    cfg.optimizer = _parse_optimizer(cfg, raw.get("optimizer"))
    cfg.schedule = _parse_schedule(cfg, raw.get("schedule"))
    cfg.output_dir = _parse_output(cfg, raw.get("output", {}))
    return cfg


def _check_table(cfg: RunConfig, table: str, values: dict, keys: dict[str, Any]) -> None:
    """Each key of ``values`` must be one of ``keys`` (name -> annotation) and fit its type."""
    for key, value in values.items():
        if key not in keys:
            raise cfg.error([table, key], f"unknown key; expected one of {sorted(keys)}")
        problem = schema.mismatch(value, keys[key])
        if problem:
            raise cfg.error([table, key], problem)


def _check_arguments(
    cfg: RunConfig, path: list, cls: type, args: dict, supplied: tuple[str, ...] = ()
) -> None:
    """Each key of ``args`` must be an argument of ``cls``'s constructor (but those the run
    ``supplied``) and fit its annotation; errors name ``path`` + the key."""
    params = schema.arguments(cls, supplied)
    for key, value in args.items():
        if key not in params:
            raise cfg.error(
                [*path, key], f"{cls.__name__} has no argument {key!r}; expected one of {list(params)}"
            )
        problem = schema.mismatch(value, params[key].hint)
        if problem:
            raise cfg.error([*path, key], problem)


def _parse_data(cfg: RunConfig, data: dict) -> None:
    _check_table(cfg, "data", data, schema.DATA_KEYS)
    d = {**schema.DATA_DEFAULTS, **data}
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
    _parse_text_data(cfg, d)
    base = Path(cfg.source).parent if cfg.source not in ("<config>", "<default>") else Path(".")
    for key in ("root", "path"):  # relative: from the current folder, else the config's folder
        if key in d and not Path(d[key]).is_absolute() and not Path(d[key]).exists():
            if (base / d[key]).exists():
                d[key] = str(base / d[key])
    cfg.data = d


def _parse_text_data(cfg: RunConfig, d: dict) -> None:
    """The keys of a text dataset (``text``, ``context``, ``stride``) are its own; ``text`` and
    ``path`` exclude each other."""
    from ..data.text import TEXTS

    if d["dataset"] != "text":
        for key in ("text", "stride"):
            if key in d:
                raise cfg.error(
                    ["data", key], f'only a dataset "text" takes {key} (this one is {d["dataset"]!r})'
                )
        return
    if "text" in d and "path" in d:
        raise cfg.error(["data", "text"], "give text (an embedded text) or path (a UTF-8 file), not both")
    if "text" in d and d["text"] not in TEXTS:
        raise cfg.error(["data", "text"], f"unknown embedded text {d['text']!r}; embedded: {sorted(TEXTS)}")
    for key in ("context", "stride"):
        if key in d and d[key] < 1:
            raise cfg.error(["data", key], f"expected a positive number of characters, got {d[key]}")


def _parse_model(cfg: RunConfig, model: Any) -> None:
    if model is None:
        raise cfg.error(["model"], "missing: a [model] table with [[model.layers]] entries")
    for key in model:
        if key not in ("layers", "input_shape"):
            raise cfg.error(["model", key], "unknown key; expected layers or input_shape")
    if "input_shape" in model:
        shape = model["input_shape"]
        if schema.fits(shape, int):
            shape = [shape]
        if not schema.fits(shape, list[int]) or not shape or not all(s > 0 for s in shape):
            raise cfg.error(["model", "input_shape"], f"expected a list of positive integers, got {shape!r}")
        cfg.input_shape = tuple(shape)
    layers = model.get("layers")
    if not isinstance(layers, list) or not layers:
        raise cfg.error(["model", "layers"], "expected a non-empty list of layer tables ([[model.layers]])")
    known = layer_classes()
    for i, spec in enumerate(layers):
        cfg.layers.append(_parse_layer(cfg, ["model", "layers", i], spec, known))


def _parse_layer(cfg: RunConfig, path: list, spec: Any, known: dict[str, type]) -> dict[str, Any]:
    if not isinstance(spec, dict):
        raise cfg.error(path, f"expected a table with a type key, got {spec!r}")
    name = spec.get("type")
    if name is None:
        raise cfg.error(path, f"missing key type (the layer class, one of {list(known)})")
    if not isinstance(name, str) or name not in known:
        close = [k for k in known if k.lower() == str(name).lower()]
        hint = f"; did you mean {close[0]!r}?" if close else f"; known layers: {list(known)}"
        raise cfg.error([*path, "type"], f"unknown layer {name!r}{hint}")
    args = {k: v for k, v in spec.items() if k != "type"}
    _check_arguments(cfg, path, known[name], args, schema.SUPPLIED["model.layers"])
    return {"type": name, "args": args}


def _parse_training(cfg: RunConfig, training: dict) -> None:
    _check_table(cfg, "training", training, schema.TRAINING_KEYS)
    t = {**schema.TRAINING_DEFAULTS, **training}
    for key, low in (("epochs", 1), ("batch_size", 1), ("accumulate", 1), ("seed", 0), ("early_stopping", 0)):
        if t[key] < low:
            raise cfg.error(["training", key], f"expected an integer >= {low}, got {t[key]}")
    if t["clip_norm"] < 0:
        raise cfg.error(
            ["training", "clip_norm"], f"expected 0 (off) or a positive number, got {t['clip_norm']}"
        )
    for i, m in enumerate(t["metrics"] or ()):
        try:
            get_metric(m)
        except ConfigError as exc:
            raise cfg.error(["training", "metrics", i], str(exc)) from None
    cfg.training = t


def _parse_component(
    cfg: RunConfig, table: str, spec: Optional[dict], extra: Sequence[str] = ()
) -> Optional[dict[str, Any]]:
    """``{"type": name, "args": {...}}`` (plus the ``extra`` keys, which are not arguments) of
    the [loss], [optimizer] or [schedule] table; None without that table."""
    if spec is None:
        return None
    name = spec.get("type")
    if not isinstance(name, str):
        raise cfg.error([table, "type"], f"expected the class name (a string), got {name!r}")
    known = COMPONENTS[table]
    if name not in known:
        raise cfg.error([table, "type"], f"unknown {table} {name!r}; known: {sorted(known)}")
    args = {k: v for k, v in spec.items() if k != "type" and k not in extra}
    _check_arguments(cfg, [table], known[name], args, schema.SUPPLIED[table])
    out = {"type": name, "args": args}
    out.update({k: spec[k] for k in extra if k in spec})
    return out


def _parse_optimizer(cfg: RunConfig, spec: Optional[dict]) -> dict[str, Any]:
    default = schema.OPTIMIZER_DEFAULT
    out = _parse_component(cfg, "optimizer", spec, extra=("no_decay",))
    if out is None:
        return {"type": default["type"], "args": dict(default["args"])}
    no_decay = out.get("no_decay")
    if no_decay is not None:
        if not schema.fits(no_decay, list[str]):
            raise cfg.error(["optimizer", "no_decay"], f"expected a list of name patterns, got {no_decay!r}")
        if "weight_decay" not in out["args"]:
            raise cfg.error(["optimizer", "no_decay"], "needs weight_decay in the same table")
    return out


def _parse_schedule(cfg: RunConfig, spec: Optional[dict]) -> Optional[dict[str, Any]]:
    out = _parse_component(cfg, "schedule", spec, extra=("interval",))
    if out is not None:
        interval = out.get("interval", "epoch")
        if interval not in ("epoch", "step"):
            raise cfg.error(["schedule", "interval"], f'expected "epoch" or "step", got {interval!r}')
    return out


def _parse_output(cfg: RunConfig, out: dict) -> Optional[str]:
    for key, value in out.items():
        if key != "dir":
            raise cfg.error(["output", key], "unknown key; expected: dir")
        if not isinstance(value, str) or not value:
            raise cfg.error(["output", key], f"expected a folder name (string), got {value!r}")
    return out.get("dir")
