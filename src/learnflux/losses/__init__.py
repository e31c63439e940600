"""Losses: they start the backward pass."""

from types import MappingProxyType as _MappingProxyType

from .base import Loss
from .classification import BCEWithLogitsLoss, CrossEntropyLoss
from .regression import L1Loss, MSELoss, SquaredError

#: name -> class of the losses a run config's ``[loss] type`` may name (read-only)
registry = _MappingProxyType(
    {c.__name__: c for c in (BCEWithLogitsLoss, CrossEntropyLoss, L1Loss, MSELoss, SquaredError)}
)

__all__ = ["BCEWithLogitsLoss", "CrossEntropyLoss", "L1Loss", "Loss", "MSELoss", "SquaredError"]
