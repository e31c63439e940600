"""Losses: they start the backward pass."""

from types import MappingProxyType as _MappingProxyType

from .base import Loss
from .classification import BCEWithLogitsLoss, CrossEntropyLoss, NLLLoss
from .divergence import KLDivLoss
from .margin import MultiMarginLoss
from .regression import L1Loss, MSELoss, SquaredError
from .robust import HuberLoss, SmoothL1Loss

#: name -> class of the losses a run config's ``[loss] type`` may name (read-only)
registry = _MappingProxyType(
    {
        c.__name__: c
        for c in (
            BCEWithLogitsLoss,
            CrossEntropyLoss,
            HuberLoss,
            KLDivLoss,
            L1Loss,
            MSELoss,
            MultiMarginLoss,
            NLLLoss,
            SmoothL1Loss,
            SquaredError,
        )
    }
)

__all__ = [
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
]
