"""Losses: they start the backward pass."""

from .base import Loss
from .classification import BCEWithLogitsLoss, CrossEntropyLoss
from .regression import L1Loss, MSELoss, SquaredError

__all__ = ["BCEWithLogitsLoss", "CrossEntropyLoss", "L1Loss", "Loss", "MSELoss", "SquaredError"]
