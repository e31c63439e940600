"""The layer catalogue, one family per file."""

from .activations import (
    GELU,
    Activation,
    LeakyReLU,
    LogSoftmax,
    ReLU,
    Sigmoid,
    SiLU,
    Softmax,
    Tanh,
)
from .conv import Conv2d
from .dropout import Dropout
from .embedding import Embedding
from .input import Input
from .linear import Linear
from .merge import Add, Concat
from .norm import BatchNorm1d, BatchNorm2d, LayerNorm
from .pool import AdaptiveAvgPool2d, AvgPool2d, GlobalAvgPool2d, MaxPool2d
from .shape import Flatten, Reshape

__all__ = ["Activation", "Add", "Concat", "Input", "LeakyReLU", "Linear", "ReLU", "Sigmoid", "Tanh"]
__all__ += [
    "BatchNorm1d",
    "BatchNorm2d",
    "Dropout",
    "Embedding",
    "Flatten",
    "GELU",
    "LayerNorm",
    "LogSoftmax",
    "Reshape",
    "SiLU",
    "Softmax",
]
__all__ += ["AdaptiveAvgPool2d", "AvgPool2d", "Conv2d", "GlobalAvgPool2d", "MaxPool2d"]
