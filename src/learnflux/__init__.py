"""learnflux: a deep-learning framework whose machinery is visible.

A model is a graph of layers; each layer writes its own forward pass and its own backward pass
(the learning flow δ = ∂Loss/∂X), fills the gradients of its weights, and an optimizer updates
them. ``import learnflux as lf`` gives the whole public API, flat.
"""

from . import init, losses, optim, version
from .core.layer import Layer, register_layer
from .core.model import Model, Node, Sequential
from .core.param import Param
from .errors import (
    ConfigError,
    DtypeError,
    ExactnessError,
    LearnfluxError,
    NonFiniteError,
    PhaseError,
    ShapeError,
)
from .files import archive, fileformat, io  # lf.io...: implementation, bound as before the move
from .files.io import load, save
from .gradcheck import GradcheckReport, gradcheck
from .layers import *  # noqa: F403  every layer of the catalogue (layers/__init__.py exports them)
from .losses import Loss, SquaredError
from .numbers import EXACT
from .optim import SGD, Optimizer
from .seeding import get_rng, seed

__version__ = version.__version__  # learnflux/version.py: any floor may read it

# --- exports added by later issues go below this line (one import line per module) ---
from . import (  # lf.callbacks.EarlyStopping, lf.metrics.register_metric, ...
    callbacks,
    config,
    data,  # lf.data: loaders, splits, datasets
    flow,  # lf.flow: any model's learning flow, its page (lf.flow.explain_model, write_page)
    look,  # lf.look: what a model looks at (saliency, maximize)
    metrics,
    numbers,  # lf.numbers: float32, float64 and exact arithmetic (exact_array, cast)
    png,  # lf.png: arrays as PNG images (no matplotlib needed)
    trace,  # lf.trace: record a training run (record, layer_outputs)
    train,  # lf.train: FitOptions, Evaluator, fit, evaluate, predict
)
from . import summary as _former_path  # noqa: F401  first, so a later import can't rebind lf.summary
from .errors import DataError, DownloadError, FileFormatError, IndexRangeError
from .exchange import export_onnx, load_safetensors, save_safetensors, to_onnx  # import onnx... on call
from .interop import from_torch, to_torch  # torch is imported only when they are called
from .kernels import info  # lf.info(): which kernel set runs (numpy or compiled) and why
from .losses import (
    BCEWithLogitsLoss,
    CrossEntropyLoss,
    HuberLoss,
    KLDivLoss,
    L1Loss,
    MSELoss,
    MultiMarginLoss,
    NLLLoss,
    SmoothL1Loss,
)
from .optim import Adagrad, Adam, AdamW, RMSprop, clip_grad_norm_, clip_grad_value_
from .training import checkpoint, progress  # lf.checkpoint...: implementation, as before the move
from .training.callbacks import (
    Callback,
    CSVLogger,
    EarlyStopping,
    JSONLogger,
    LearningRateScheduler,
    ModelCheckpoint,
    TerminateOnNaN,
)
from .training.checkpoint import BackupAndRestore  # resume an interrupted fit, bit for bit
from .training.summary import summary  # lf.summary is the function (the module: lf.training.summary)
from .training.trace import Recorder, Snapshot, Step, Trace  # lf.trace stays the module (above)
from .training.train import History, Trainer

del _former_path

# The public API (docs/vocabulary.md): the names below, every layer of the catalogue, and the
# namespaces meant to be used as ``lf.<namespace>.<name>``. The other submodules (lf.io, lf.model,
# lf.kernels...) are the implementation: what they hold for users is exported here, flat.
__all__ = [
    # namespaces
    "callbacks",
    "config",
    "data",
    "flow",
    "init",
    "layers",  # noqa: F405 (bound by the star import of the catalogue)
    "look",
    "losses",
    "metrics",
    "numbers",
    "optim",
    "png",
    "trace",
    "train",
    # the core: layers, models, parameters, numbers, seeding
    "EXACT",
    "Layer",
    "Model",
    "Node",
    "Param",
    "Sequential",
    "get_rng",
    "register_layer",
    "seed",
    # losses
    "BCEWithLogitsLoss",
    "CrossEntropyLoss",
    "HuberLoss",
    "KLDivLoss",
    "L1Loss",
    "Loss",
    "MSELoss",
    "MultiMarginLoss",
    "NLLLoss",
    "SmoothL1Loss",
    "SquaredError",
    # optimizers
    "SGD",
    "Adagrad",
    "Adam",
    "AdamW",
    "Optimizer",
    "RMSprop",
    "clip_grad_norm_",
    "clip_grad_value_",
    # training
    "BackupAndRestore",
    "CSVLogger",
    "Callback",
    "EarlyStopping",
    "History",
    "JSONLogger",
    "LearningRateScheduler",
    "ModelCheckpoint",
    "TerminateOnNaN",
    "Trainer",
    # looking inside: traces, gradient checks, summaries, kernels
    "GradcheckReport",
    "Recorder",
    "Snapshot",
    "Step",
    "Trace",
    "gradcheck",
    "info",
    "summary",
    # files and other frameworks
    "export_onnx",
    "from_torch",
    "load",
    "load_safetensors",
    "save",
    "save_safetensors",
    "to_onnx",
    "to_torch",
    # errors
    "ConfigError",
    "DataError",
    "DownloadError",
    "DtypeError",
    "ExactnessError",
    "FileFormatError",
    "IndexRangeError",
    "LearnfluxError",
    "NonFiniteError",
    "PhaseError",
    "ShapeError",
    # the layers: the catalogue's own list (a new layer file adds its name there)
    *layers.__all__,  # noqa: F405
]
