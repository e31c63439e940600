"""Synchronized batch normalization: the statistics of the global batch, across the ranks.

A plain :class:`~learnflux.BatchNorm2d` on N ranks normalizes each rank's share with that
share's own mean and variance (as PyTorch's DDP does): cheap, and fine when the shares are large,
but not what one process does on the global batch. :class:`SyncBatchNorm2d` (and ``1d``) take the
statistics over the **global** batch. With ``M = Σ_r m_r`` values per channel over all ranks::

    μ  = (Σ_r Σ_i x_ri) / M                    (one reduction: C sums and the count)
    σ² = (Σ_r Σ_i (x_ri − μ)²) / M             (a second one: two passes, as one process computes)
    x̂ = (x − μ)/√(σ² + ε),   o = γ·x̂ + β

and the backward pass needs the global sums of ``δ`` and ``δ·x̂`` (one reduction of 2C values)::

    δx = (γ/σ)·(δ − (Σ_all δ)/M − x̂·(Σ_all δ·x̂)/M)
    δγ = Σ_this rank δ·x̂       δβ = Σ_this rank δ

The weight gradients are this rank's part: the gradient reduction sums them over the ranks, like
every other gradient. The δ arriving here must be that of the global loss (the trainer scales each
rank's δ by its share of the global batch, :func:`~learnflux.distributed.delta_scale`), so that the
sums over ranks add like terms. The running statistics use ``M`` (unbiased: ``σ²·M/(M − 1)``) and
are the same on every rank. The reductions are :meth:`World.sum_ordered`: the same bits on every
rank. On one process these layers are exactly BatchNorm1d / BatchNorm2d.

Every rank must run the forward and backward pass of each synchronized layer at each step (they
are collectives); a rank whose share of a batch is empty runs them on zero samples.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from ..core.layer import register_layer
from ..layers.norm import BatchNorm1d, BatchNorm2d, _BatchNorm
from ..numbers import scalar_like
from .world import World, get_world


class _SyncBatchNorm(_BatchNorm):
    """The synchronized forward and backward passes; see the module docstring."""

    torch_twins = ()  # nn.SyncBatchNorm needs a torch process group: not converted
    world: Optional[World] = None  # None: the job's world (get_world()) at each call

    def _world(self) -> World:
        return self.world if self.world is not None else get_world()

    def forward(self, x: np.ndarray) -> np.ndarray:
        world = self._world()
        if world.size == 1 or not (self.training or not self.track_running_stats):
            return super().forward(x)
        axes, bshape = self._check(x)
        c = self.num_features
        dt = self.dtype
        x3 = x.reshape(x.shape[0], c, -1)
        local_m = x3.shape[0] * x3.shape[2]
        # the sums and the count in one vector (float64 for float32 data: counts stay exact)
        first = np.empty(c + 1, dtype=object if dt.kind == "O" else np.float64)
        first[:c] = np.einsum("ncl->c", x3)
        first[c] = local_m
        first = world.sum_ordered(first)
        m = int(first[c])
        if self.training and m <= 1:
            raise self.shape_error(
                f"expected more than 1 value per channel over the global batch in the training "
                f"phase, got {m} (this rank's input has shape {tuple(x.shape)})"
            )
        inv_m = scalar_like(1.0 / m, dt)
        mean = (first[:c] * inv_m).astype(dt)
        xc = x3 - mean[:, None]
        var = world.sum_ordered(np.einsum("ncl,ncl->c", xc, xc)) * inv_m
        inv_std = 1 / np.sqrt(var + scalar_like(self.eps, dt))
        xhat = xc * inv_std[:, None]
        out = xhat * self.weight.value[:, None] if self.affine else xhat.copy()
        if self.affine:
            out += self.bias.value[:, None]
        if self.training:
            if self.track_running_stats:
                self._update_running_stats(mean, var, m)
            self._xhat = xhat.reshape(x.shape)
            self._inv_std = inv_std
            self._global_m = m
        return out.reshape(x.shape)

    def backward(self, delta_out: np.ndarray, need_input_delta: bool = True) -> Optional[np.ndarray]:
        world = self._world()
        if world.size == 1:
            return super().backward(delta_out, need_input_delta)
        xhat = self._xhat
        self.check_trainable(xhat)
        if delta_out.shape != xhat.shape:
            raise self.shape_error(f"δ has shape {tuple(delta_out.shape)}, expected {xhat.shape}")
        n, c = xhat.shape[0], self.num_features
        d3 = delta_out.reshape(n, c, -1)
        x3 = xhat.reshape(n, c, -1)
        sums = np.concatenate([np.einsum("ncl->c", d3), np.einsum("ncl,ncl->c", d3, x3)])
        local_d, local_dx = sums[:c].copy(), sums[c:].copy()
        if self.affine:
            self.weight.set_grad(local_dx)
            self.bias.set_grad(local_d)
        if not need_input_delta:
            # still a collective: every rank reduces, whichever needs δx
            world.sum_ordered(sums)
            return None
        sums = world.sum_ordered(sums)
        inv_m = scalar_like(1.0 / self._global_m, self.dtype)
        gain = self._inv_std if not self.affine else self._inv_std * self.weight.value
        d_in = x3 * (-(sums[c:] * inv_m))[:, None]
        d_in += d3
        d_in -= (sums[:c] * inv_m)[:, None]
        d_in *= gain[:, None]
        return d_in.reshape(xhat.shape)

    def _cache_attrs(self) -> tuple[str, ...]:
        return ("_xhat", "_inv_std")


@register_layer
class SyncBatchNorm1d(_SyncBatchNorm, BatchNorm1d):
    """:class:`~learnflux.BatchNorm1d` with the statistics of the global batch across the ranks
    (module docstring). Input ``(batch, C)`` or ``(batch, C, L)``; same arguments and buffers."""


@register_layer
class SyncBatchNorm2d(_SyncBatchNorm, BatchNorm2d):
    """:class:`~learnflux.BatchNorm2d` with the statistics of the global batch across the ranks
    (module docstring). Input ``(batch, C, H, W)``; same arguments and buffers."""


_SYNC = {BatchNorm1d: SyncBatchNorm1d, BatchNorm2d: SyncBatchNorm2d}
_PLAIN = {v: k for k, v in _SYNC.items()}


def _swap(model: Any, table: dict[type, type]) -> int:
    count = 0
    layers = getattr(model, "layers", None)
    if layers is None:
        if type(model) in table:
            model.__class__ = table[type(model)]
            return 1
        return 0
    for layer in layers:
        count += _swap(layer, table)
    return count


def convert_sync_batchnorm(model: Any) -> int:
    """Turn every BatchNorm1d / BatchNorm2d of ``model`` (nested models too) into its synchronized
    twin, in place, keeping its weights, buffers and options (as PyTorch's
    ``SyncBatchNorm.convert_sync_batchnorm``); returns how many were converted. A saved model keeps
    the synchronized classes: ``import learnflux.distributed`` before ``lf.load`` (it imports no
    MPI), or :func:`revert_sync_batchnorm` before saving."""
    return _swap(model, _SYNC)


def revert_sync_batchnorm(model: Any) -> int:
    """The reverse of :func:`convert_sync_batchnorm` (the inference phase computes the same)."""
    return _swap(model, _PLAIN)
