"""Training runs described in a TOML file: dataset, model, loss, optimizer, schedule, training.

Everything is checked **before** training starts: unknown tables, keys and layers, values of the
wrong type or range, and the shapes between layers (propagated with ``layer.output_shape`` from the
data's sample shape). An error names the file, the line when it can be found, the key path
(``model.layers[3].kernel_size``) and what was expected.

The parts:

- :mod:`~learnflux.config.schema`: which values each key takes; the arguments of layers, losses,
  optimizers and schedules are checked from their constructors' type annotations;
- :mod:`~learnflux.config.components`: the classes a ``type`` key may name (the registries of
  ``learnflux.core.layer``, ``learnflux.losses`` and ``learnflux.optim``);
- :mod:`~learnflux.config.parse`: TOML text -> a checked :class:`RunConfig`;
- :mod:`~learnflux.config.build`: a :class:`RunConfig` -> the data, model, loss, optimizer,
  schedule and trainer of the run;
- ``default.toml``: the run of ``learnflux train`` without ``--config`` (:data:`DEFAULT_CONFIG`).

The format (every table but ``[model]`` is optional; the values shown are the defaults, which
live in ``DATA_DEFAULTS``, ``TRAINING_DEFAULTS`` and ``OPTIMIZER_DEFAULT``; ``learnflux train
--help`` prints this reference generated from them)::

    [data]
    dataset = "digits"        # "digits" (embedded, 8×8) | "mnist" | "fashion" | "csv" | "text"
    root = "data/mnist"       # mnist / fashion: the folder with the IDX files (.gz or raw)
    download = false          # mnist / fashion: fetch missing files (SHA-256 checked)
    base_url = "https://…/"   # optional: fetch them from this folder URL (official SHA-256 still)
    path = "data.csv"         # csv: the file; target = -1 (column index or name)
    val_fraction = 0.15       # held out from the training data for validation
    test_fraction = 0.15      # digits / csv: held out for the final test (mnist: its test files)
    stratify = true           # keep class proportions in the splits
    standardize = false       # z = (x − mean) / std, fitted on the training part
    limit = 0                 # > 0: use only that many training samples (quick runs)
    text = "pride-and-prejudice"  # text: the embedded novel (default), or path = a UTF-8 file
    context = 64              # text: characters per window; y = the window shifted by one
    stride = 64               # text: a training window every stride characters (default context);
                              # the split is contiguous (train, then val_fraction, test_fraction)

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

from importlib.resources import files

from ..data.prepare import Dataset
from .build import (
    build_callbacks,
    build_loss,
    build_model,
    build_optimizer,
    build_schedule,
    build_trainer,
    check_output,
    load_data,
)
from .parse import RunConfig, load_config, locate, parse_config
from .schema import DATA_DEFAULTS, OPTIMIZER_DEFAULT, TRAINING_DEFAULTS

#: the run ``learnflux train`` does without ``--config``: a small CNN on the embedded digits (the
#: text of the packaged file ``learnflux/config/default.toml``)
DEFAULT_CONFIG: str = files(__name__).joinpath("default.toml").read_text(encoding="utf-8")


def default_config() -> RunConfig:
    """The checked :data:`DEFAULT_CONFIG` (its source is ``"<default>"``)."""
    return parse_config(DEFAULT_CONFIG, source="<default>")


__all__ = [
    "DATA_DEFAULTS",
    "DEFAULT_CONFIG",
    "OPTIMIZER_DEFAULT",
    "TRAINING_DEFAULTS",
    "Dataset",
    "RunConfig",
    "build_callbacks",
    "build_loss",
    "build_model",
    "build_optimizer",
    "build_schedule",
    "build_trainer",
    "check_output",
    "default_config",
    "load_config",
    "load_data",
    "locate",
    "parse_config",
]
