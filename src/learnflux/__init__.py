"""learnflux: a deep-learning framework whose machinery is visible.

A model is a graph of layers; each layer writes its own forward pass and its own backward pass
(the learning flow δ = ∂Loss/∂X), fills the gradients of its weights, and an optimizer updates
them. ``import learnflux as lf`` gives the whole public API, flat.
"""

from . import init, losses, optim
from .errors import (
    ConfigError,
    DtypeError,
    ExactnessError,
    LearnfluxError,
    NonFiniteError,
    PhaseError,
    ShapeError,
)
from .gradcheck import GradcheckReport, gradcheck
from .io import load, save
from .layer import Layer
from .layers import Activation, Add, Concat, Input, LeakyReLU, Linear, ReLU, Sigmoid, Tanh
from .losses import Loss, SquaredError
from .model import Model, Node, Sequential
from .numbers import EXACT
from .optim import SGD, Optimizer
from .param import Param
from .seeding import get_rng, seed

__version__ = "0.1.0"

# --- exports added by later issues go below this line (one import line per module) ---

__all__ = [name for name in dir() if not name.startswith("_")]
