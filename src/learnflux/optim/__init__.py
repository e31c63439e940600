"""Optimizers: they update the weights from their gradients.

``SGD``, ``Adam``, ``AdamW``, ``RMSprop``, ``Adagrad`` (the arguments and update rules of
``torch.optim``), parameter groups (:func:`param_groups`), learning-rate schedules
(:mod:`learnflux.optim.schedules`, also ``learnflux.optim.lr_scheduler``) and gradient clipping
(:func:`clip_grad_norm_`, :func:`clip_grad_value_`).
"""

import sys as _sys

from . import schedules
from .adagrad import Adagrad
from .adam import Adam, AdamW
from .clip import clip_grad_norm_, clip_grad_value_
from .optimizer import Optimizer, param_groups
from .rmsprop import RMSprop
from .schedules import (
    CosineAnnealingLR,
    CosineAnnealingWarmRestarts,
    ExponentialLR,
    LinearLR,
    LRScheduler,
    MultiStepLR,
    OneCycleLR,
    ReduceLROnPlateau,
    StepLR,
)
from .sgd import SGD

#: ``lf.optim.lr_scheduler`` is the schedules module (PyTorch's name for it)
lr_scheduler = schedules
_sys.modules[__name__ + ".lr_scheduler"] = schedules

__all__ = [
    "Optimizer",
    "SGD",
    "Adam",
    "AdamW",
    "RMSprop",
    "Adagrad",
    "param_groups",
    "clip_grad_norm_",
    "clip_grad_value_",
    "schedules",
    "lr_scheduler",
    "LRScheduler",
    "StepLR",
    "MultiStepLR",
    "ExponentialLR",
    "CosineAnnealingLR",
    "CosineAnnealingWarmRestarts",
    "LinearLR",
    "OneCycleLR",
    "ReduceLROnPlateau",
]
