"""One time step of the recurrent cells, forward and backward: the maths of ``RNN``, ``LSTM`` and
``GRU`` (PyTorch's equations, gate orders and weight layouts).

A cell reads the input projection of its time step, ``a_x = x_t·W_ihᵀ + b_ih`` (computed for every
time step at once, one GEMM, by the sequence driver in :mod:`learnflux.layers.recurrent`), and the
previous state ``h_(t−1)`` (and ``c_(t−1)`` for the LSTM); it returns the new state and keeps, in
the arrays it is given, what its backward step needs. The backward step receives ``δh_t``, the
total δ arriving at ``h_t`` (from the output at ``t`` and from step ``t + 1``), and returns the δ
of the two pre-activations: ``δa_x`` (of the input projection, whose weight gradient and input δ
the driver computes for all steps at once) and ``δa_h`` (of ``h_(t−1)·W_hhᵀ + b_hh``), plus the
part of ``δh_(t−1)`` that does not pass through ``W_hh``.

``G`` is the number of gate blocks stacked in the weights (RNN 1, LSTM 4 ``i, f, g, o``, GRU 3
``r, z, n``), ``H`` the hidden size; ``⊙`` is the element-wise product, ``σ`` the logistic
sigmoid.
"""

from __future__ import annotations

from typing import Any, Optional, Union

import numpy as np


def sigmoid(a: np.ndarray) -> np.ndarray:
    """``σ(a) = 1/(1 + e^(−a)) = ½·tanh(a/2) + ½`` (the tanh form never overflows)."""
    out = np.tanh(a * 0.5)
    out *= 0.5
    out += 0.5
    return out


class RNNCell:
    """``h_t = f(a_x + a_h)`` with ``a_h = h_(t−1)·W_hhᵀ + b_hh``; ``f`` = tanh or ReLU.

    Backward: ``δa = δh_t ⊙ f'(a)`` (tanh: ``1 − h_t²``; ReLU: 1 where ``a ≥ 0``, else 0, learnflux's
    rule at 0, docs/conventions.md), ``δa_x = δa_h = δa``; all of ``δh_(t−1)`` goes through
    ``W_hh``."""

    gates = 1
    keeps = ("gates",)

    def __init__(self, nonlinearity: str = "tanh") -> None:
        self.relu = nonlinearity == "relu"
        if self.relu:
            self.keeps = ("gates", "pre")

    def forward(self, ax: np.ndarray, ah: np.ndarray, h_prev: np.ndarray, c_prev: Any, keep: dict, t: int):
        a = ax + ah
        if self.relu:
            keep["pre"][t] = a
            h = np.maximum(a, 0)
        else:
            h = np.tanh(a)
        keep["gates"][t] = h
        return h, None

    def backward(self, dh: np.ndarray, dc: Any, keep: dict, t: int, h_prev: np.ndarray, c_prev: Any) -> Step:
        if self.relu:
            da = dh * (keep["pre"][t] >= 0)
        else:
            h = keep["gates"][t]
            da = dh * (1 - h * h)
        return Step(da, da)


class LSTMCell:
    """PyTorch's LSTM, gates in the order ``i, f, g, o``::

        a = a_x + h_(t−1)·W_hhᵀ + b_hh = [a_i, a_f, a_g, a_o]
        i = σ(a_i)   f = σ(a_f)   g = tanh(a_g)   o = σ(a_o)
        c_t = f ⊙ c_(t−1) + i ⊙ g
        h_t = o ⊙ tanh(c_t)

    Backward, from ``δh_t`` and ``δc`` (the δ reaching ``c_t`` from step ``t + 1``)::

        δo = δh_t ⊙ tanh(c_t)
        δc_t = δc + δh_t ⊙ o ⊙ (1 − tanh²(c_t))        the whole δ at c_t
        δi = δc_t ⊙ g    δg = δc_t ⊙ i    δf = δc_t ⊙ c_(t−1)
        δa = [δi ⊙ i(1 − i), δf ⊙ f(1 − f), δg ⊙ (1 − g²), δo ⊙ o(1 − o)]
        δc_(t−1) = δc_t ⊙ f                             (the cell's highway back in time)

    ``δa_x = δa_h = δa``; all of ``δh_(t−1)`` goes through ``W_hh``."""

    gates = 4
    keeps = ("gates", "c", "tc")  # tc: tanh(c_t), kept so the backward step does not recompute it

    #: the gates' pre-activation scale: ``σ(a) = ½·tanh(a/2) + ½`` and ``tanh(a)``, so with
    #: ``s = [½, ½, 1, ½]`` (per gate block) every gate is ``s ⊙ tanh(s ⊙ a) + (s ≠ 1)·½``: one tanh
    #: over all four blocks. The driver multiplies ``a_x`` and ``W_hhᵀ`` by ``s`` once per
    #: sequence (exact: a power of two), so a step's ``a_x + a_h`` arrives already scaled.
    @staticmethod
    def scale(gh: int, dtype: Any) -> np.ndarray:
        """``s`` over the ``4H`` gate columns."""
        hs = gh // 4
        s = np.full(gh, 0.5, dtype)
        s[2 * hs : 3 * hs] = 1
        return s

    def _constants(self, gh: int, dtype: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``s``, the offset ``(s ≠ 1)·½`` and ``s²`` over the gate columns, cached per width and
        dtype."""
        key = (gh, np.dtype(dtype))
        cached = getattr(self, "_consts", None)
        if cached is None or cached[0] != key:
            s = self.scale(gh, dtype)
            cached = (key, s, np.where(s == 1, 0, 0.5).astype(dtype), s * s)
            self._consts = cached
        return cached[1], cached[2], cached[3]

    def forward(self, ax: np.ndarray, ah: np.ndarray, h_prev: np.ndarray, c_prev: Any, keep: dict, t: int):
        """``ax`` and ``ah`` come scaled by :meth:`scale` (see there)."""
        s, off, _ = self._constants(ax.shape[1], ax.dtype)
        gates = keep["gates"][t]  # (N, 4H), kept for the backward step
        np.add(ax, ah, out=gates)
        np.tanh(gates, out=gates)
        gates *= s
        gates += off
        i, f, g, o = _split(gates, 4)
        c = keep["c"][t]
        np.multiply(f, c_prev, out=c)
        c += i * g
        tc = keep["tc"][t]
        np.tanh(c, out=tc)
        return o * tc, c

    def backward(
        self,
        dh: np.ndarray,
        dc: Any,
        keep: dict,
        t: int,
        h_prev: np.ndarray,
        c_prev: Any,
        out: Optional[np.ndarray] = None,
    ) -> Step:
        """``out``: where to write ``δa`` (N, 4H), e.g. the driver's row of ``δA_x``."""
        gates = keep["gates"][t]
        _, off, s2 = self._constants(gates.shape[1], gates.dtype)
        i, f, g, o = _split(gates, 4)
        tc = keep["tc"][t]
        dc_t = tc * tc
        np.subtract(1, dc_t, out=dc_t)
        dc_t *= o
        dc_t *= dh
        dc_t += dc  # δc_t = δc + δh_t ⊙ o ⊙ (1 − tanh²(c_t))
        da = np.empty_like(gates) if out is None else out
        di, df, dg, do = _split(da, 4)
        np.multiply(dc_t, g, out=di)
        np.multiply(dc_t, c_prev, out=df)
        np.multiply(dc_t, i, out=dg)
        np.multiply(dh, tc, out=do)
        # the gates' derivatives at once: y(1 − y) = ¼ − (y − ½)² for σ, 1 − y² for tanh, = s² − (y − off)²
        d = gates - off
        d *= d
        np.subtract(s2, d, out=d)
        da *= d
        return Step(da, da, dc_t=dc_t, dc_prev=dc_t * f)


class GRUCell:
    """PyTorch's GRU, gates in the order ``r, z, n``, with its exact ``n``::

        a_x = [x_r, x_z, x_n] = x_t·W_ihᵀ + b_ih
        a_h = [h_r, h_z, h_n] = h_(t−1)·W_hhᵀ + b_hh
        r = σ(x_r + h_r)    z = σ(x_z + h_z)
        n = tanh(x_n + r ⊙ h_n)        (= tanh(W_in·x + b_in + r ⊙ (W_hn·h + b_hn)))
        h_t = (1 − z) ⊙ n + z ⊙ h_(t−1)

    Backward, from ``δh_t``::

        δn = δh_t ⊙ (1 − z)      δz = δh_t ⊙ (h_(t−1) − n)
        δs = δn ⊙ (1 − n²)       (s = x_n + r ⊙ h_n, n's pre-activation)
        δr = δs ⊙ h_n
        δa_x = [δr ⊙ r(1 − r), δz ⊙ z(1 − z), δs]
        δa_h = [δr ⊙ r(1 − r), δz ⊙ z(1 − z), δs ⊙ r]
        δh_(t−1) = δh_t ⊙ z + δa_h·W_hh       (the first term passes the update gate directly)
    """

    gates = 3
    keeps = ("gates", "h_n")

    def forward(self, ax: np.ndarray, ah: np.ndarray, h_prev: np.ndarray, c_prev: Any, keep: dict, t: int):
        hs = ax.shape[1] // 3
        gates = keep["gates"][t]
        gates[:, : 2 * hs] = sigmoid(ax[:, : 2 * hs] + ah[:, : 2 * hs])
        r, z, n = _split(gates, 3)
        h_n = ah[:, 2 * hs :]
        keep["h_n"][t] = h_n
        n[...] = np.tanh(ax[:, 2 * hs :] + r * h_n)
        return n + z * (h_prev - n), None

    def backward(self, dh: np.ndarray, dc: Any, keep: dict, t: int, h_prev: np.ndarray, c_prev: Any) -> Step:
        gates = keep["gates"][t]
        r, z, n = _split(gates, 3)
        ds = dh * (1 - z) * (1 - n * n)
        dax = np.empty_like(gates)
        dr, dz, dn = _split(dax, 3)
        np.multiply(ds * keep["h_n"][t], r * (1 - r), out=dr)
        np.multiply(dh * (h_prev - n), z * (1 - z), out=dz)
        dn[...] = ds
        dah = dax.copy()
        dah[:, 2 * dax.shape[1] // 3 :] *= r
        return Step(dax, dah, dh_skip=dh * z)


class Step:
    """What a cell's backward step returns: ``dax`` = ``δa_x`` and ``dah`` = ``δa_h`` (the same
    array unless the cell treats them apart, GRU), ``dh_skip``: the part of ``δh_(t−1)`` that does
    not pass through ``W_hh`` (GRU's ``δh_t ⊙ z``), ``dc_t`` / ``dc_prev``: the whole δ at
    ``c_t`` and the δ passed on to ``c_(t−1)`` (LSTM)."""

    __slots__ = ("dax", "dah", "dh_skip", "dc_t", "dc_prev")

    def __init__(
        self,
        dax: np.ndarray,
        dah: np.ndarray,
        dh_skip: Optional[np.ndarray] = None,
        dc_t: Optional[np.ndarray] = None,
        dc_prev: Optional[np.ndarray] = None,
    ) -> None:
        self.dax, self.dah, self.dh_skip, self.dc_t, self.dc_prev = dax, dah, dh_skip, dc_t, dc_prev


def _split(a: np.ndarray, k: int) -> list[np.ndarray]:
    """The ``k`` gate blocks of ``(N, k·H)`` as views ``(N, H)``."""
    hs = a.shape[1] // k
    return [a[:, j * hs : (j + 1) * hs] for j in range(k)]


Cell = Union[RNNCell, LSTMCell, GRUCell]
