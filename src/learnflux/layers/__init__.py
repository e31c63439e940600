"""The layer catalogue, one family per file."""

from .activations import Activation, LeakyReLU, ReLU, Sigmoid, Tanh
from .input import Input
from .linear import Linear
from .merge import Add, Concat

__all__ = ["Activation", "Add", "Concat", "Input", "LeakyReLU", "Linear", "ReLU", "Sigmoid", "Tanh"]
