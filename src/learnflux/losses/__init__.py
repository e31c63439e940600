"""Losses: they start the backward pass."""

from .base import Loss
from .regression import SquaredError

__all__ = ["Loss", "SquaredError"]
