"""One seedable source of randomness for the whole library.

``lf.seed(n)`` resets it; every layer that draws random numbers (weight initialisation, dropout)
takes an optional ``rng=`` (a ``numpy.random.Generator`` or an int seed) and otherwise draws from
this generator, so two runs started with the same seed are identical.
"""

from __future__ import annotations

from typing import Optional, Union

import numpy as np

RngLike = Optional[Union[int, np.random.Generator]]

_global = np.random.default_rng(0)


def seed(n: int) -> None:
    """Reset the global generator: everything random afterwards is reproducible.

    The generator is reset in place, so layers that hold it (``Dropout()`` built before the
    call) also draw the reseeded sequence."""
    _global.bit_generator.state = np.random.default_rng(n).bit_generator.state


def get_rng(rng: RngLike = None) -> np.random.Generator:
    """The generator to draw from: ``rng`` itself, a new one seeded by ``rng``, or the global one."""
    if rng is None:
        return _global
    if isinstance(rng, np.random.Generator):
        return rng
    return np.random.default_rng(int(rng))
