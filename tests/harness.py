"""The shared layer harness: every layer registered in ``tests/layer_cases/`` goes through the same
checks (shapes and dtypes, float64 gradient check, inference phase, save/load, the config round
trip ``get_config → from_config → get_config``, exact arithmetic, PyTorch parity, the declared
FLOPs and torch twin).

To add a layer, add a module to ``tests/layer_cases`` whose ``CASES`` lists its :class:`LayerCase`
entries (or append to a family's module).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import numpy as np


@dataclass
class LayerCase:
    """One configuration of one layer.

    Attributes:
        id: test id, e.g. ``"conv2d-stride2"``.
        make: builds a fresh layer (float32) each time it is called.
        input_shape: per-sample input shape (no batch axis), or a list of them for merge layers.
        batch_sizes: the batch sizes the shape test runs.
        input_kind: ``"float"`` or ``"index"`` (integer inputs: ``index_high`` bounds them).
        gradcheck: run ``lf.gradcheck`` in float64 (with ``gradcheck_kwargs``).
        exact: the layer runs in exact arithmetic (the harness checks it agrees with float64).
        deterministic: same output in training and inference phase (False for dropout, batch
            norm).
        torch: builds the equivalent ``torch.nn`` module (float64), or None. Parameters and
            buffers are matched by ``state_dict`` name.
        torch_input: transforms the NumPy input into what the torch module takes (default
            ``torch.from_numpy``).
        input_fn: draws an input of the given full shape from a generator (default: standard
            normal, which never hits ReLU's kink at exactly 0).
    """

    id: str
    make: Callable[[], Any]
    input_shape: Any
    batch_sizes: tuple = (1, 3)
    input_kind: str = "float"
    index_high: int = 10
    gradcheck: bool = True
    gradcheck_kwargs: dict = field(default_factory=dict)
    exact: bool = False
    deterministic: bool = True
    torch: Optional[Callable[[], Any]] = None
    input_fn: Optional[Callable[[np.random.Generator, tuple], np.ndarray]] = None

    def sample(self, batch: int, rng: np.random.Generator, dtype: Any = np.float64) -> Any:
        shapes = self.input_shape if isinstance(self.input_shape, list) else [self.input_shape]
        xs = []
        for shape in shapes:
            full = (batch, *shape)
            if self.input_kind == "index":
                xs.append(rng.integers(0, self.index_high, size=full))
            elif self.input_fn is not None:
                xs.append(np.asarray(self.input_fn(rng, full), dtype=dtype))
            else:
                xs.append(rng.standard_normal(full).astype(dtype))
        return xs if isinstance(self.input_shape, list) else xs[0]

    def __repr__(self) -> str:
        return self.id


def torch_twin(factory: Callable[[Any], Any]) -> Callable[[], Any]:
    """``LayerCase.torch`` from ``factory(torch.nn)``, in float64 (torch imported when called)."""

    def build() -> Any:
        import torch

        return factory(torch.nn).double()

    return build
