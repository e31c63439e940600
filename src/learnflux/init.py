"""Weight initialisers: functions ``init(shape, fan_in, fan_out, rng) -> array``.

Each layer documents its default. Names accepted wherever a layer takes ``init=``:

=====================  =========================================================================
``"zeros"``, ``"ones"``  constant 0 / 1
``"normal"``           N(0, 0.01²)  (``normal(std=...)`` for another deviation)
``"uniform"``          U(−0.05, 0.05)
``"xavier_uniform"``   U(−a, a), a = √(6 / (fan_in + fan_out))           (Glorot & Bengio 2010)
``"xavier_normal"``    N(0, 2 / (fan_in + fan_out))
``"kaiming_uniform"``  U(−a, a), a = √(6 / fan_in)   (He et al. 2015, for ReLU)
``"kaiming_normal"``   N(0, 2 / fan_in)
``"torch_default"``    U(−1/√fan_in, 1/√fan_in): PyTorch's default for Linear and Conv2d
                       (kaiming_uniform with a = √5)
=====================  =========================================================================

``fan_in`` = inputs feeding one output (in_features, or in_channels/groups × kernel area) and
``fan_out`` = outputs fed by one input. All randomness comes from ``learnflux.seeding``.
"""

from __future__ import annotations

import math
from typing import Callable, Union

import numpy as np

from .errors import ConfigError
from .seeding import RngLike, get_rng

Initializer = Callable[[tuple, int, int, np.random.Generator], np.ndarray]


def zeros(shape: tuple, fan_in: int, fan_out: int, rng: np.random.Generator) -> np.ndarray:
    return np.zeros(shape)


def ones(shape: tuple, fan_in: int, fan_out: int, rng: np.random.Generator) -> np.ndarray:
    return np.ones(shape)


def normal(std: float = 0.01, mean: float = 0.0) -> Initializer:
    def init(shape: tuple, fan_in: int, fan_out: int, rng: np.random.Generator) -> np.ndarray:
        return rng.normal(mean, std, size=shape)

    return init


def uniform(low: float = -0.05, high: float = 0.05) -> Initializer:
    def init(shape: tuple, fan_in: int, fan_out: int, rng: np.random.Generator) -> np.ndarray:
        return rng.uniform(low, high, size=shape)

    return init


def xavier_uniform(shape: tuple, fan_in: int, fan_out: int, rng: np.random.Generator) -> np.ndarray:
    a = math.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-a, a, size=shape)


def xavier_normal(shape: tuple, fan_in: int, fan_out: int, rng: np.random.Generator) -> np.ndarray:
    return rng.normal(0.0, math.sqrt(2.0 / (fan_in + fan_out)), size=shape)


def kaiming_uniform(shape: tuple, fan_in: int, fan_out: int, rng: np.random.Generator) -> np.ndarray:
    a = math.sqrt(6.0 / fan_in)
    return rng.uniform(-a, a, size=shape)


def kaiming_normal(shape: tuple, fan_in: int, fan_out: int, rng: np.random.Generator) -> np.ndarray:
    return rng.normal(0.0, math.sqrt(2.0 / fan_in), size=shape)


def torch_default(shape: tuple, fan_in: int, fan_out: int, rng: np.random.Generator) -> np.ndarray:
    bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
    return rng.uniform(-bound, bound, size=shape)


INITIALIZERS: dict[str, Initializer] = {
    "zeros": zeros,
    "ones": ones,
    "normal": normal(),
    "uniform": uniform(),
    "xavier_uniform": xavier_uniform,
    "glorot_uniform": xavier_uniform,
    "xavier_normal": xavier_normal,
    "glorot_normal": xavier_normal,
    "kaiming_uniform": kaiming_uniform,
    "he_uniform": kaiming_uniform,
    "kaiming_normal": kaiming_normal,
    "he_normal": kaiming_normal,
    "torch_default": torch_default,
}


def initialize(
    init: Union[str, Initializer], shape: tuple, fan_in: int, fan_out: int, rng: RngLike = None
) -> np.ndarray:
    """Draw an array of ``shape`` (float64; the layer casts it) with initialiser ``init``."""
    if isinstance(init, str):
        try:
            fn = INITIALIZERS[init]
        except KeyError:
            raise ConfigError(f"unknown initialiser {init!r}; choose one of {sorted(INITIALIZERS)}") from None
    else:
        fn = init
    return np.asarray(fn(tuple(shape), fan_in, fan_out, get_rng(rng)), dtype=np.float64)
