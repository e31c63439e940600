"""Embedding: a learnable lookup table from integer ids to vectors."""

from __future__ import annotations

from fractions import Fraction
from typing import Any, Optional

import numpy as np

from ..core.layer import Layer, register_layer
from ..errors import ConfigError, DtypeError, IndexRangeError, UnsupportedTorchOption
from ..init import normal
from ..seeding import RngLike, get_rng


@register_layer
class Embedding(Layer):
    """A table ``W`` of ``num_embeddings`` vectors; each integer id selects one row.

    Forward: ``o[b, …, :] = W[x[b, …], :]`` (integer inputs, ``input_kind = "index"``).

    Backward: the ids are not differentiable (no δ is returned for the input); the weight
    gradient adds each δ row to the row of ``W`` it came from (a scatter-add, so an id that
    appears several times receives the sum of its δ)::

        δW[k, :] = Σ_{positions p with x_p = k} δ_out[p, :]

    Args:
        num_embeddings: size of the table (valid ids are ``0 … num_embeddings − 1``).
        embedding_dim: length of each vector.
        rng: generator or seed for the initialisation (default: the global one, ``lf.seed``).

    Weights: ``weight`` of shape ``(num_embeddings, embedding_dim)``, initialised N(0, 1) as in
    PyTorch.

    Input shape: ``(batch, …)`` of integers. Output shape: ``(batch, …, embedding_dim)``.
    """

    supports_exact = True
    input_kind = "index"
    flops_per_element = 0  # a lookup, no arithmetic
    torch_twins = ("Embedding",)

    def __init__(self, num_embeddings: int, embedding_dim: int, rng: RngLike = None) -> None:
        super().__init__()
        self.num_embeddings = int(num_embeddings)
        self.embedding_dim = int(embedding_dim)
        if self.num_embeddings <= 0 or self.embedding_dim <= 0:
            raise ConfigError(
                f"Embedding: num_embeddings and embedding_dim must be positive, "
                f"got {num_embeddings}, {embedding_dim}"
            )
        shape = (self.num_embeddings, self.embedding_dim)
        w = normal(std=1.0)(shape, self.embedding_dim, self.num_embeddings, get_rng(rng))
        self.add_param("weight", w)
        self._ids: Optional[np.ndarray] = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        if x.dtype.kind not in "iu":
            raise DtypeError(f"{self.describe()}: expects integer ids, got dtype {x.dtype}")
        if x.ndim < 1:
            raise self.shape_error(f"expected ids of shape (batch, ...), got {tuple(x.shape)}")
        if x.size:
            lo, hi = int(x.min()), int(x.max())
            if lo < 0 or hi >= self.num_embeddings:
                bad = lo if lo < 0 else hi
                raise IndexRangeError(
                    f"{self.describe()}: id {bad} is out of range; valid ids are "
                    f"0 … {self.num_embeddings - 1}"
                )
        if self.training:
            self._ids = x
        return self.weight.value[x]

    def backward(self, delta_out: np.ndarray, need_input_delta: bool = True) -> None:
        ids = self._ids
        self.check_trainable(ids)
        expected = (*ids.shape, self.embedding_dim)
        if delta_out.shape != expected:
            raise self.shape_error(f"δ has shape {tuple(delta_out.shape)}, expected {expected}")
        if self.dtype == object:
            grad = np.full(self.weight.shape, Fraction(0), dtype=object)
        else:
            grad = np.zeros(self.weight.shape, dtype=self.dtype)
        np.add.at(grad, ids.reshape(-1), delta_out.reshape(-1, self.embedding_dim))
        self.weight.set_grad(grad)
        return None

    def _cache_attrs(self) -> tuple[str, ...]:
        return ("_ids",)

    def output_shape(self, input_shape: tuple) -> tuple:
        return (*tuple(input_shape), self.embedding_dim)

    @classmethod
    def state_shapes(cls, args: Any) -> dict[str, tuple]:
        return {"weight": (args.size("num_embeddings"), args.size("embedding_dim"))}

    @classmethod
    def from_torch_module(cls, module: Any) -> Layer:
        extras = {"padding_idx": module.padding_idx, "max_norm": module.max_norm}
        bad = [f"{k}={v}" for k, v in extras.items() if v is not None]
        bad += ["scale_grad_by_freq=True"] if module.scale_grad_by_freq else []
        bad += ["sparse=True"] if module.sparse else []
        if bad:
            raise UnsupportedTorchOption(", ".join(bad))
        return cls(module.num_embeddings, module.embedding_dim)

    def get_config(self) -> dict[str, Any]:
        return {"num_embeddings": self.num_embeddings, "embedding_dim": self.embedding_dim}


__all__ = ["Embedding"]
