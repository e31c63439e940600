"""Building a run from a checked config: its data, model, loss, optimizer, schedule and trainer.

Each builder turns an error of a constructor (a value out of range, shapes that do not fit
between layers) into a :class:`~learnflux.errors.ConfigError` that names the file, line and key,
so that every mistake of a config is reported before training starts.
"""

from __future__ import annotations

import re
from typing import Any, Optional, Sequence

from ..core.model import Sequential
from ..data.prepare import Dataset, load_dataset, missing_idx_files, split_dataset
from ..errors import ConfigError, LearnfluxError
from ..layers import Input
from ..optim import param_groups
from ..seeding import seed as set_seed
from ..training.callbacks import Callback, EarlyStopping
from ..training.train import FitOptions, Trainer
from . import schema
from .components import COMPONENTS, layer_classes
from .parse import RunConfig

Shape = tuple[int, ...]


def load_data(cfg: RunConfig) -> Dataset:
    """Load the dataset of the run and split it (the split depends only on the seed)."""
    d = cfg.data
    kind = d["dataset"]
    if kind == "text":
        return _load_text(cfg)
    if kind in ("mnist", "fashion") and not d["download"]:
        _check_idx_files(cfg)
    try:
        x, y, test, description = load_dataset(
            kind,
            root=d.get("root"),
            path=d.get("path"),
            target=d["target"],
            download=d["download"],
            base_url=d.get("base_url"),
        )
    except LearnfluxError as exc:
        raise ConfigError(f"{cfg.source}: data.dataset = {kind!r}: {exc}") from None
    if y is None:
        raise cfg.error(["data", "target"], "the data has no target column")
    options = ("val_fraction", "test_fraction", "stratify", "standardize", "limit")
    return split_dataset(x, y, test, seed=cfg.seed, description=description, **{k: d[k] for k in options})


def _load_text(cfg: RunConfig) -> Dataset:
    """A text dataset: the embedded text (``text``, default Pride and Prejudice) or the file
    ``path``, split contiguously and cut into windows of ``context`` characters
    (:func:`learnflux.data.text.text_dataset`)."""
    from ..data.text import text_dataset

    d = cfg.data
    try:
        return text_dataset(
            name=d.get("text"),
            path=d.get("path"),
            context=d["context"],
            stride=d.get("stride"),
            val_fraction=d["val_fraction"],
            test_fraction=d["test_fraction"],
            limit=d["limit"],
        )
    except LearnfluxError as exc:
        raise ConfigError(f"{cfg.source}: data.dataset = 'text': {exc}") from None


def _check_idx_files(cfg: RunConfig) -> None:
    """Without download, the four IDX files must be in ``root``: else an error that says how to
    fetch them in the caller's terms (``cfg.download_hint``)."""
    root, kind = cfg.data["root"], cfg.data["dataset"]
    missing = missing_idx_files(root, kind)
    if missing:
        what = "MNIST" if kind == "mnist" else "Fashion-MNIST"
        message = (
            f"{root} lacks the {what} file{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
            f"(gzipped or not); {cfg.download_hint}, or put the IDX files there"
        )
        if cfg.source == "<default>":
            raise ConfigError(message)
        raise cfg.error(["data", "root"], message)


def build_model(cfg: RunConfig, sample_shape: Optional[Sequence[int]] = None) -> Sequential:
    """``Sequential(Input(shape), *layers)``, after checking every layer's arguments and the
    shapes between layers. Weights are drawn from ``lf.seed(training.seed)``."""
    shape = _input_shape(cfg, sample_shape)
    set_seed(cfg.seed)
    layers: list[Any] = [Input(shape)]
    for i, spec in enumerate(cfg.layers):
        path = ["model", "layers", i]
        layer = _build_layer(cfg, path, spec, shape)
        shape = _output_shape(cfg, path, spec["type"], layer, shape)
        layers.append(layer)
    return Sequential(*layers)


def _input_shape(cfg: RunConfig, sample_shape: Optional[Sequence[int]]) -> Shape:
    """The model's per-sample input shape: ``[model] input_shape``, else the data's."""
    shape = cfg.input_shape or (tuple(sample_shape) if sample_shape is not None else None)
    if shape is None:
        raise cfg.error(["model", "input_shape"], "missing: the per-sample input shape, e.g. [1, 28, 28]")
    if sample_shape is not None and cfg.input_shape is not None and tuple(sample_shape) != cfg.input_shape:
        raise cfg.error(
            ["model", "input_shape"],
            f"is {list(cfg.input_shape)} but the data's samples have shape {list(sample_shape)}",
        )
    return tuple(shape)


def _build_layer(cfg: RunConfig, path: list, spec: dict[str, Any], current: Shape) -> Any:
    """The layer of ``spec``, its sizes inferred from the ``current`` shape arriving at it."""
    name, given = spec["type"], spec["args"]
    cls = layer_classes()[name]
    params = schema.arguments(cls, schema.SUPPLIED["model.layers"])
    args = dict(given)
    for arg, axis in schema.INFERRED.items():
        if arg in params and arg not in args and params[arg].required:
            if not current:
                raise cfg.error(path, f"cannot infer {arg} from the input shape {current}")
            args[arg] = int(current[axis])
    missing = [n for n, p in params.items() if p.required and n not in args]
    if missing:
        raise cfg.error(path, f"{name} needs {', '.join(missing)}")
    layer = _construct(cfg, path, name, cls, args)
    for arg, axis in schema.INFERRED.items():
        if arg in given and arg in params and current and given[arg] != current[axis]:
            raise cfg.error(
                [*path, arg],
                f"is {given[arg]} but the input arriving here has shape {list(current)} "
                f"(so {arg} = {current[axis]})",
            )
    return layer


def _output_shape(cfg: RunConfig, path: list, name: str, layer: Any, current: Shape) -> Shape:
    """The shape ``layer`` outputs from ``current``: it must take it and not output nothing."""
    try:
        shape = tuple(int(s) for s in layer.output_shape(current))
    except (LearnfluxError, TypeError, ValueError, IndexError) as exc:
        raise cfg.error(
            path,
            f"{name} cannot take the input of shape {list(current)} arriving from the previous layer: {exc}",
        ) from None
    if any(s <= 0 for s in shape):
        raise cfg.error(
            path,
            f"{name} would output the empty shape {list(shape)} from the input shape {list(current)}; "
            "use a smaller kernel or stride",
        )
    return shape


def check_output(cfg: RunConfig, model: Any, dataset: Dataset) -> None:
    """The model's output must fit the targets (e.g. one logit per class; for a label per
    position, as a language model's ``(T,)`` targets, ``(classes, T)``: the classes on axis 1,
    as ``CrossEntropyLoss`` takes them)."""
    out = model.output_shape(dataset.sample_shape)
    last = ["model", "layers", len(cfg.layers) - 1]
    loss_type = (cfg.loss or {}).get("type", "CrossEntropyLoss")  # no [loss]: cross-entropy for labels
    if dataset.n_classes is not None and loss_type == "CrossEntropyLoss":
        train = getattr(dataset, "train", None)
        positions = tuple(train[1].shape[1:]) if train else ()  # () for one label per sample
        if len(out) != 1 + len(positions) or out[0] < dataset.n_classes or tuple(out[1:]) != positions:
            if positions:  # a label per position: (classes, *positions)
                where = f" at each of the {', '.join(map(str, positions))} positions"
                layout = (
                    f" (shape {[dataset.n_classes, *positions]}: the classes first, as "
                    "CrossEntropyLoss takes them; Permute([0, 2, 1]) turns (T, classes) into that)"
                )
            else:  # Linear acts on the last axis of a (C, H, W) or (T, d) input, as PyTorch's
                where = ""
                layout = (
                    "; a Flatten before the last Linear makes one vector per sample" if len(out) > 1 else ""
                )
            raise cfg.error(
                last,
                f"the model outputs shape {list(out)} but the data has "
                f"{dataset.n_classes} classes{where}: the last layer must output "
                f"{dataset.n_classes} values{layout}",
            )


def build_loss(cfg: RunConfig, dataset: Optional[Dataset] = None) -> Any:
    """The loss of [loss]; without one, cross-entropy for class labels, else the mean squared
    error."""
    spec = cfg.loss or {
        "type": "CrossEntropyLoss" if dataset is None or dataset.n_classes else "MSELoss",
        "args": {},
    }
    return _construct(cfg, ["loss"], spec["type"], COMPONENTS["loss"][spec["type"]], spec["args"])


def build_optimizer(cfg: RunConfig, model: Any) -> Any:
    """The optimizer of [optimizer] over the model's parameters (in two groups with
    ``no_decay``: no weight decay on the parameters it names)."""
    spec = cfg.optimizer
    params: Any = model.parameters()
    args = dict(spec["args"])
    if spec.get("no_decay") is not None:
        params = param_groups(model, weight_decay=args.pop("weight_decay"), no_decay=spec["no_decay"])
    cls = COMPONENTS["optimizer"][spec["type"]]
    return _construct(cfg, ["optimizer"], spec["type"], cls, args, params)


def build_schedule(cfg: RunConfig, optimizer: Any, steps_per_epoch: int) -> tuple[Any, str]:
    """``(schedule, interval)`` or ``(None, "epoch")``; fills ``T_max`` (cosine) and
    ``total_steps`` (one-cycle) from the run's length when left out."""
    if cfg.schedule is None:
        return None, "epoch"
    spec = cfg.schedule
    interval = spec.get("interval", "epoch")
    cls = COMPONENTS["schedule"][spec["type"]]
    args = dict(spec["args"])
    params = schema.arguments(cls)
    epochs = cfg.training["epochs"]
    length = epochs if interval == "epoch" else epochs * steps_per_epoch
    if "T_max" in params and "T_max" not in args:
        args["T_max"] = length
    if "total_steps" in params and "total_steps" not in args and "epochs" not in args:
        args["total_steps"] = length
    return _construct(cfg, ["schedule"], spec["type"], cls, args, optimizer), interval


def build_callbacks(cfg: RunConfig, dataset: Dataset) -> list[Callback]:
    """The callbacks [training] asks for: with ``early_stopping`` > 0, an ``EarlyStopping`` on
    ``val_loss`` (``loss`` without a validation part) that keeps the best weights."""
    patience = cfg.training["early_stopping"]
    if not patience:
        return []
    return [EarlyStopping("val_loss" if dataset.val else "loss", patience=patience, restore_best=True)]


def build_trainer(
    cfg: RunConfig,
    model: Any,
    dataset: Dataset,
    loss: Any,
    optimizer: Any,
    schedule: Any = None,
    interval: str = "epoch",
    callbacks: Sequence[Callback] = (),
    verbose: Any = 0,
) -> Trainer:
    """The run's :class:`~learnflux.train.Trainer`, its options from [training] (epochs,
    batch_size, metrics: accuracy for class labels, bits per character for a text and none for
    numbers when left out, clip_norm:
    0 is off, accumulate, seed); ``trainer.fit(*dataset.train, validation_data=dataset.val)``
    trains. ``callbacks`` run in their order (see :func:`build_callbacks`)."""
    t = cfg.training
    default = (
        ["bits_per_char"] if dataset.vocabulary is not None else ["accuracy"] if dataset.n_classes else []
    )
    metrics = t["metrics"] if t["metrics"] is not None else default
    options = FitOptions(
        epochs=t["epochs"],
        batch_size=t["batch_size"],
        loss=loss,
        optimizer=optimizer,
        metrics=metrics,
        callbacks=tuple(callbacks),
        scheduler=schedule,
        scheduler_interval=interval,
        clip_norm=t["clip_norm"] or None,
        accumulate=t["accumulate"],
        seed=cfg.seed,
        verbose=verbose,
    )
    return Trainer(model, options=options)


def _construct(cfg: RunConfig, path: list, name: str, cls: type, args: dict, *positional: Any) -> Any:
    """``cls(*positional, **args)``; its error names the argument it mentions, if any."""
    try:
        return cls(*positional, **args)
    except (LearnfluxError, TypeError, ValueError) as exc:
        named = [k for k in args if re.search(rf"\b{re.escape(k)}\b", str(exc))]
        text = str(exc) if str(exc).startswith(name) else f"{name}: {exc}"
        raise cfg.error([*path, named[0]] if named else path, text) from None
