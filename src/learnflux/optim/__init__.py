"""Optimizers: they update the weights from their gradients.

``SGD``, ``Adam``, ``AdamW``, ``RMSprop``, ``Adagrad`` (the arguments and update rules of
``torch.optim``), parameter groups (:func:`param_groups`), learning-rate schedules
(:mod:`learnflux.optim.schedules`, also ``learnflux.optim.lr_scheduler``) and gradient clipping
(:func:`clip_grad_norm_`, :func:`clip_grad_value_`). The optimizers are made of the small in-place
steps of :mod:`learnflux.optim.transforms`, which also make your own (``transforms.Chain``).
"""

import sys as _sys
from types import MappingProxyType as _MappingProxyType

from . import schedules, transforms
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

#: name -> class of the optimizers a run config's ``[optimizer] type`` may name (read-only)
registry = _MappingProxyType({c.__name__: c for c in (SGD, Adam, AdamW, RMSprop, Adagrad)})
#: name -> class of the schedules a run config's ``[schedule] type`` may name (read-only)
schedule_registry = _MappingProxyType(
    {
        c.__name__: c
        for c in (
            StepLR,
            MultiStepLR,
            ExponentialLR,
            CosineAnnealingLR,
            CosineAnnealingWarmRestarts,
            LinearLR,
            OneCycleLR,
            ReduceLROnPlateau,
        )
    }
)

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
    "transforms",
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
