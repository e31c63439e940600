"""Recurrent layers: PyTorch's ``RNN``, ``LSTM`` and ``GRU``, with backpropagation through time
written out.

A recurrent layer reads a sequence ``x_1 … x_T`` one step at a time and carries a state from one
step to the next: ``h_t = cell(x_t, h_(t−1))`` (and a cell state ``c_t`` for the LSTM). The
cells' equations, forward and backward, are in :mod:`learnflux.layers._recurrent_cells`; this
module drives them over the sequence, the layers (``num_layers``) and the two directions
(``bidirectional``):

Forward, for one layer and one direction::

    A_x = X·W_ihᵀ + b_ih          every time step at once: one GEMM over the T·N rows
    for t = 1 … T (T … 1 for the reverse direction):
        A_h = h_(t−1)·W_hhᵀ + b_hh      the recurrent product, the only GEMM in the loop
        h_t, c_t = cell(A_x[t], A_h, h_(t−1), c_(t−1))
    output = (h_1, …, h_T)

Backward (backpropagation through time), from ``δoutput`` and ``δh_n``, ``δc_n``::

    δh = δh_n,  δc = δc_n
    for t = T … 1 (1 … T for the reverse direction):
        δh_t = δoutput_t + δh          the δ arriving at h_t: from the output at t and from t + 1
        δA_x[t], δA_h[t], δc = cell backward at t         (δc: the δ passed on to c_(t−1))
        δh = δA_h[t]·W_hh (+ the cell's direct path, GRU's δh_t ⊙ z)     δ of h_(t−1)
    δh_0 = δh,  δc_0 = δc
    δW_ih = Σ_t δA_x[t]ᵀ·x_t    δb_ih = Σ_t,batch δA_x[t]     one GEMM after the loop
    δW_hh = Σ_t δA_h[t]ᵀ·h_(t−1)  δb_hh = Σ_t,batch δA_h[t]   one GEMM
    δx_t = δA_x[t]·W_ih                                      one GEMM

A layer ``l > 0`` reads the previous layer's output (both directions side by side, dropout between
layers in the training phase); its input δ is the δ of that output.

The learning flow through time is visible: :meth:`_Recurrent.flow_through_time` gives every
``h_t`` and every ``δh_t`` (and ``c_t``, ``δc_t``) of the last training step when the trace asked
for them (``learnflux explain``, :class:`learnflux.trace.Recorder`).
"""

from __future__ import annotations

import math
import numbers
import warnings
from dataclasses import dataclass, field
from typing import Any, ClassVar, Optional

import numpy as np

from ..core.layer import Layer, register_layer
from ..errors import ConfigError, ShapeError, UnsupportedTorchOption
from ..kernels.gemm import matmul
from ..seeding import RngLike, get_rng
from ._recurrent_cells import Cell, GRUCell, LSTMCell, RNNCell

#: element-wise operations per hidden unit and time step (activations, products, sums), for FLOPs
_ELEMENTWISE = {"RNN": 1, "LSTM": 9, "GRU": 9}


@dataclass
class _Run:
    """One direction of one layer over the sequence: what its backward pass needs."""

    layer: int
    reverse: bool
    x: np.ndarray  #: (T, N, in): the layer's input, time-major (shared by both directions)
    h0: np.ndarray  #: (N, H)
    c0: Optional[np.ndarray]  #: (N, H), LSTM only
    out: np.ndarray  #: (T, N, H): h_t at every time position
    keep: dict[str, np.ndarray]  #: the cell's per-step arrays (gate activations, c_t, ...)
    h_last: Optional[np.ndarray] = None  #: the final state h_n of this direction
    c_last: Optional[np.ndarray] = None  #: the final cell state c_n (LSTM)
    dh: Optional[np.ndarray] = None  #: (T, N, H): δh_t after backward, when recorded
    dc: Optional[np.ndarray] = None  #: (T, N, H): δc_t after backward (LSTM), when recorded

    def order(self) -> range:
        """The time positions in processing order."""
        t = self.out.shape[0]
        return range(t - 1, -1, -1) if self.reverse else range(t)

    def previous(self, t: int) -> tuple[np.ndarray, Optional[np.ndarray]]:
        """``h_(t−1)`` and ``c_(t−1)`` of the step at position ``t`` (in processing order)."""
        first = t == (self.out.shape[0] - 1 if self.reverse else 0)
        if first:
            return self.h0, self.c0
        j = t + 1 if self.reverse else t - 1
        return self.out[j], (self.keep["c"][j] if "c" in self.keep else None)

    def previous_states(self) -> np.ndarray:
        """Every ``h_(t−1)``, ``(T, N, H)``, by time position (for ``δW_hh`` in one product)."""
        if self.reverse:
            return np.concatenate([self.out[1:], self.h0[None]])
        return np.concatenate([self.h0[None], self.out[:-1]])


@dataclass
class _Cache:
    n_inputs: int  #: 1, or the length of the list forward was given ([x, h0(, c0)])
    runs: list[list[_Run]]  #: [layer][direction]
    masks: list[Optional[np.ndarray]] = field(default_factory=list)  #: dropout after each layer
    shape: tuple = ()  #: the input's shape


class _Recurrent(Layer):
    """The sequence driver shared by :class:`RNN`, :class:`LSTM` and :class:`GRU`.

    Args (PyTorch's names and order):
        input_size: the number of features of each ``x_t``.
        hidden_size: ``H``, the size of the state ``h_t``.
        num_layers: recurrent layers stacked (layer ``l > 0`` reads layer ``l − 1``'s output).
        bias: learn ``bias_ih`` and ``bias_hh``.
        batch_first: the input and output are ``(batch, T, features)`` (default **True**,
            learnflux's batch-first convention, as its ``MultiheadAttention``; PyTorch's default is
            False) or ``(T, batch, features)``.
        dropout: dropout probability on the output of every layer but the last (training phase).
        bidirectional: a second set of layers reads the sequence backwards; the output joins
            both directions, ``(…, 2·H)``.
        rng: generator or seed for the initialisation and the dropout masks.
    """

    mode: ClassVar[str] = ""
    supports_exact = False
    max_inputs = 2

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = True,
        dropout: float = 0.0,
        bidirectional: bool = False,
        rng: RngLike = None,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        for key, value in (
            ("input_size", input_size),
            ("hidden_size", hidden_size),
            ("num_layers", num_layers),
        ):
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"{name}: {key} must be a positive int, got {value!r}")
        if not isinstance(dropout, numbers.Real) or isinstance(dropout, bool) or not 0.0 <= dropout <= 1.0:
            raise ConfigError(f"{name}: dropout must be a probability in [0, 1], got {dropout!r}")
        self.input_size = int(input_size)
        self.hidden_size = int(hidden_size)
        self.num_layers = int(num_layers)
        self.use_bias = bool(bias)
        self.batch_first = bool(batch_first)
        self.dropout = float(dropout)
        self.bidirectional = bool(bidirectional)
        if self.dropout > 0 and self.num_layers == 1:
            warnings.warn(
                f"{name}: dropout={self.dropout} acts between stacked layers only, and num_layers=1 "
                "(as PyTorch, it has no effect)",
                UserWarning,
                stacklevel=3,
            )
        self.rng: np.random.Generator = get_rng(rng)
        self.cell: Cell = self._make_cell()
        # PyTorch's initialisation: every weight and bias U(−1/√H, 1/√H), in its state_dict order
        bound = 1.0 / math.sqrt(self.hidden_size)
        for key, shape in self._shapes(
            self.mode, self.input_size, self.hidden_size, self.num_layers, self.use_bias, self.bidirectional
        ).items():
            self.add_param(key, self.rng.uniform(-bound, bound, shape))
        #: the final states after a forward pass, ``(num_layers·D, N, H)`` in PyTorch's order,
        #: batch axis as the input's (``(N, num_layers·D, H)`` when batch_first)
        self.h_n: Optional[np.ndarray] = None
        self.c_n: Optional[np.ndarray] = None
        #: set by the trace around a training step: keep every ``δh_t`` for flow_through_time
        self.record_time_steps = False
        self._cache: Optional[_Cache] = None

    # ------------------------------------------------------------------ declarations
    def _make_cell(self) -> Cell:
        raise NotImplementedError

    @property
    def directions(self) -> int:
        return 2 if self.bidirectional else 1

    @staticmethod
    def _shapes(
        mode: str, input_size: int, hidden_size: int, num_layers: int, bias: bool, bidirectional: bool
    ) -> dict[str, tuple]:
        """PyTorch's parameters in its ``state_dict`` order: for each layer ``l`` and direction
        (``""``, ``"_reverse"``): ``weight_ih_l{l}`` ``(G·H, in_l)``, ``weight_hh_l{l}`` ``(G·H, H)``,
        ``bias_ih_l{l}``, ``bias_hh_l{l}`` ``(G·H,)``; ``in_0`` = input_size, ``in_l`` = D·H."""
        g = {"RNN": 1, "LSTM": 4, "GRU": 3}[mode] * hidden_size
        d = 2 if bidirectional else 1
        shapes: dict[str, tuple] = {}
        for layer in range(num_layers):
            width = input_size if layer == 0 else d * hidden_size
            for suffix in ("", "_reverse")[:d]:
                shapes[f"weight_ih_l{layer}{suffix}"] = (g, width)
                shapes[f"weight_hh_l{layer}{suffix}"] = (g, hidden_size)
                if bias:
                    shapes[f"bias_ih_l{layer}{suffix}"] = (g,)
                    shapes[f"bias_hh_l{layer}{suffix}"] = (g,)
        return shapes

    @classmethod
    def state_shapes(cls, args: Any) -> dict[str, tuple]:
        return cls._shapes(
            cls.mode,
            args.size("input_size"),
            args.size("hidden_size"),
            args.size("num_layers", 1),
            args.flag("bias", True),
            args.flag("bidirectional", False),
        )

    def _weights(self, layer: int, reverse: bool) -> tuple[Any, Any, Any, Any]:
        s = f"l{layer}{'_reverse' if reverse else ''}"
        if self.use_bias:
            return (
                self._params[f"weight_ih_{s}"],
                self._params[f"weight_hh_{s}"],
                self._params[f"bias_ih_{s}"],
                self._params[f"bias_hh_{s}"],
            )
        return self._params[f"weight_ih_{s}"], self._params[f"weight_hh_{s}"], None, None

    def output_shape(self, input_shape: Any) -> tuple:
        shape = tuple(input_shape[0] if isinstance(input_shape, list) else input_shape)
        if len(shape) != 2 or shape[1] != self.input_size:
            raise self.shape_error(f"expected samples of shape (T, {self.input_size}), got {shape}")
        return (shape[0], self.directions * self.hidden_size)

    def flops(self, input_shape: Any) -> int:
        """Per sample of ``T`` steps, for each layer and direction: ``2·G·H·(in + H)`` for the two
        products, ``2·G·H`` for the biases, and a few element-wise operations per hidden unit
        (RNN 1, LSTM 9, GRU 9: activations, products, sums)."""
        shape = tuple(input_shape[0] if isinstance(input_shape, list) else input_shape)
        steps = shape[0]
        gh = self.cell.gates * self.hidden_size
        total = 0
        for layer in range(self.num_layers):
            width = self.input_size if layer == 0 else self.directions * self.hidden_size
            per_step = 2 * gh * (width + self.hidden_size) + (2 * gh if self.use_bias else 0)
            per_step += _ELEMENTWISE[self.mode] * self.hidden_size
            total += self.directions * steps * per_step
        return int(total)

    # ------------------------------------------------------------------ calling
    def __call__(self, x: Any) -> Any:
        """``layer(x)``, or ``layer([x, h0])`` (``[x, h0, c0]`` for the LSTM): on arrays, or on
        nodes in a graph. Returns the output sequence; the final states are in ``h_n`` / ``c_n``."""
        from ..core.model import Node, symbolic_inputs

        nodes = symbolic_inputs(x)
        if nodes is not None:
            return Node.create(self, nodes)
        if isinstance(x, (list, tuple)):
            return self.forward([self.check_input(a) for a in x])
        return self.forward(self.check_input(x))

    def _time_major(self, a: np.ndarray) -> np.ndarray:
        """``(N, T, ·)`` → ``(T, N, ·)`` when batch_first (a C-ordered copy); else ``a``."""
        return np.ascontiguousarray(a.transpose(1, 0, 2)) if self.batch_first else a

    def _from_time_major(self, a: np.ndarray) -> np.ndarray:
        return a.transpose(1, 0, 2) if self.batch_first else a

    def _states_in(self, s: Optional[np.ndarray], what: str, batch: int, dtype: Any) -> np.ndarray:
        """An initial state in the internal layout ``(L·D, N, H)`` (zeros when not given)."""
        ld, hs = self.num_layers * self.directions, self.hidden_size
        if s is None:
            return np.zeros((ld, batch, hs), dtype=dtype)
        want = (batch, ld, hs) if self.batch_first else (ld, batch, hs)
        if s.shape != want:
            layout = "(batch, num_layers·D, H)" if self.batch_first else "(num_layers·D, batch, H)"
            raise self.shape_error(f"{what} must have shape {layout} = {want}, got {tuple(s.shape)}")
        return np.ascontiguousarray(s.transpose(1, 0, 2)) if self.batch_first else s

    def _unpack(self, x: Any) -> tuple[np.ndarray, Optional[np.ndarray], Optional[np.ndarray], int]:
        items = list(x) if isinstance(x, (list, tuple)) else [x]
        name = type(self).__name__
        if self.mode == "LSTM" and len(items) not in (1, 3):
            raise self.shape_error(f"takes x, or [x, h0, c0] (both initial states), got {len(items)} inputs")
        if not 1 <= len(items) <= self.max_inputs:
            raise self.shape_error(f"takes x, or [x, h0], got {len(items)} inputs")
        seq = items[0]
        layout = "(batch, T, features)" if self.batch_first else "(T, batch, features)"
        if seq.ndim != 3 or seq.shape[2] != self.input_size:
            hint = " (add the batch axis: x[None])" if seq.ndim == 2 and self.batch_first else ""
            raise ShapeError(
                f"{self.describe()}: expected an input {layout} with {self.input_size} features, "
                f"got shape {tuple(seq.shape)}{hint}"
            )
        if seq.shape[0] == 0 or seq.shape[1] == 0:
            raise self.shape_error(
                f"{name} needs at least one sample and one time step, got {tuple(seq.shape)}"
            )
        h0 = items[1] if len(items) > 1 else None
        c0 = items[2] if len(items) > 2 else None
        return seq, h0, c0, len(items)

    # ------------------------------------------------------------------ forward
    def forward(self, x: Any) -> np.ndarray:
        """The output sequence ``(N, T, D·H)`` (``(T, N, D·H)`` unless batch_first); sets
        ``h_n`` (and ``c_n``)."""
        seq, h0, c0, n_inputs = self._unpack(x)
        xs = self._time_major(seq)
        batch = xs.shape[1]
        h0s = self._states_in(h0, "h0", batch, xs.dtype)
        c0s = self._states_in(c0, "c0", batch, xs.dtype) if self.mode == "LSTM" else None
        d = self.directions
        h_n = np.empty_like(h0s)
        c_n = np.empty_like(h0s) if c0s is not None else None
        runs: list[list[_Run]] = []
        masks: list[Optional[np.ndarray]] = []
        layer_in = xs
        for layer in range(self.num_layers):
            row = []
            for k in range(d):
                s = layer * d + k
                run = self._run(layer, k == 1, layer_in, h0s[s], None if c0s is None else c0s[s])
                row.append(run)
                h_n[s] = run.h_last
                if c_n is not None:
                    c_n[s] = run.c_last
            out = row[0].out if d == 1 else np.concatenate([r.out for r in row], axis=2)
            mask = None
            if self.training and self.dropout > 0 and layer < self.num_layers - 1:
                mask = self._dropout_mask(out.shape, out.dtype)
                out = out * mask
            masks.append(mask)
            runs.append(row)
            layer_in = out
        self.h_n = self._from_time_major(h_n)
        self.c_n = None if c_n is None else self._from_time_major(c_n)
        if self.training:
            self._cache = _Cache(n_inputs, runs, masks, tuple(seq.shape))
        return self._from_time_major(layer_in)

    def _dropout_mask(self, shape: tuple, dtype: Any) -> np.ndarray:
        """Inverted dropout's ``m/(1 − p)`` (float32 draws, as :class:`Dropout`)."""
        keep = self.rng.random(shape, dtype=np.float32) >= np.float32(self.dropout)
        scale = 0.0 if self.dropout >= 1.0 else 1.0 / (1.0 - self.dropout)
        return np.multiply(keep, scale, dtype=dtype)

    def _run(
        self, layer: int, reverse: bool, xs: np.ndarray, h0: np.ndarray, c0: Optional[np.ndarray]
    ) -> _Run:
        """One direction of one layer over the whole sequence (the forward loop)."""
        w_ih, w_hh, b_ih, b_hh = self._weights(layer, reverse)
        steps, batch, width = xs.shape
        hs = self.hidden_size
        gh = w_ih.shape[0]
        # the input projection of every time step at once: one GEMM over T·N rows
        ax = matmul(xs.reshape(steps * batch, width), w_ih.value.T).reshape(steps, batch, gh)
        separate = isinstance(self.cell, GRUCell)  # GRU: b_hh stays inside r ⊙ (W_hn·h + b_hn)
        if b_ih is not None:
            ax += b_ih.value if separate else b_ih.value + b_hh.value
        lstm = isinstance(self.cell, LSTMCell)
        if lstm:  # the gates' pre-activations come scaled, for one tanh over them (LSTMCell.scale)
            s = self.cell.scale(gh, ax.dtype)
            ax *= s
            w_hh_t = np.multiply(w_hh.value.T, s, order="C")
        else:
            w_hh_t = np.ascontiguousarray(w_hh.value.T)
        keep = {
            name: np.empty((steps, batch, gh if name == "gates" else hs), xs.dtype)
            for name in self.cell.keeps
        }
        run = _Run(layer, reverse, xs, h0, c0, np.empty((steps, batch, hs), xs.dtype), keep)
        h, c = h0, c0
        for t in run.order():
            # the recurrent product h_(t−1)·W_hhᵀ (LSTM: straight into the step's gate row)
            ah = matmul(h, w_hh_t, out=keep["gates"][t] if lstm else None)
            if separate and b_hh is not None:
                ah += b_hh.value
            h, c = self.cell.forward(ax[t], ah, h, c, keep, t)
            run.out[t] = h
        run.h_last, run.c_last = h, c
        if not self.training:  # nothing kept: the run only carries the output
            run.keep = {}
        return run

    # ------------------------------------------------------------------ backward
    def _deltas_in(self, delta_out: Any, cache: _Cache) -> tuple[np.ndarray, Any, Any]:
        """``δoutput`` and, when given, ``δh_n`` and ``δc_n`` in the internal layout.

        ``delta_out``: the output's δ, or PyTorch's structure of the outputs, ``(δoutput, δh_n)``
        (RNN, GRU) or ``(δoutput, (δh_n, δc_n))`` (LSTM), any part None."""
        d_hn = d_cn = None
        if isinstance(delta_out, tuple):
            if len(delta_out) != 2:
                raise self.shape_error(
                    "backward takes δoutput, or (δoutput, δh_n) / (δoutput, (δh_n, δc_n)) for the LSTM"
                )
            delta_out, states = delta_out
            if self.mode == "LSTM":
                d_hn, d_cn = states if states is not None else (None, None)
            else:
                d_hn = states
        out_shape = (*cache.shape[:2], self.directions * self.hidden_size)
        if delta_out is None:
            delta_out = np.zeros(out_shape, self.dtype)
        if tuple(delta_out.shape) != out_shape:
            raise self.shape_error(f"δ has shape {tuple(delta_out.shape)}, expected the output's {out_shape}")
        batch = cache.shape[0] if self.batch_first else cache.shape[1]
        d_hn = None if d_hn is None else self._states_in(np.asarray(d_hn), "δh_n", batch, self.dtype)
        d_cn = None if d_cn is None else self._states_in(np.asarray(d_cn), "δc_n", batch, self.dtype)
        return self._time_major(np.asarray(delta_out)), d_hn, d_cn

    def backward(self, delta_out: Any, need_input_delta: bool = True) -> Any:
        """Backpropagation through time: every layer from the top, each direction's BPTT loop
        (:meth:`_bptt`). Returns ``δx`` (``[δx, δh0]`` / ``[δx, δh0, δc0]`` when forward was given
        the initial states)."""
        cache = self._cache
        self.check_trainable(cache)
        d_y, d_hn, d_cn = self._deltas_in(delta_out, cache)
        d = self.directions
        ld = self.num_layers * d
        batch = d_y.shape[1]
        dh0 = np.empty((ld, batch, self.hidden_size), self.dtype)
        dc0 = np.empty_like(dh0) if self.mode == "LSTM" else None
        for layer in range(self.num_layers - 1, -1, -1):
            if cache.masks[layer] is not None:
                d_y = d_y * cache.masks[layer]
            need_dx = layer > 0 or need_input_delta
            d_x = None
            for k, run in enumerate(cache.runs[layer]):
                s = layer * d + k
                part = d_y[:, :, k * self.hidden_size : (k + 1) * self.hidden_size]
                dx, dh0[s], dc = self._bptt(
                    run, part, None if d_hn is None else d_hn[s], None if d_cn is None else d_cn[s], need_dx
                )
                if dc0 is not None:
                    dc0[s] = dc
                if dx is not None:
                    d_x = dx if d_x is None else d_x + dx
            d_y = d_x
        if not need_input_delta:
            return None
        d_x = self._from_time_major(d_y)
        if cache.n_inputs == 1:
            return d_x
        deltas = [d_x, self._from_time_major(dh0)]
        if cache.n_inputs == 3:
            deltas.append(self._from_time_major(dc0))
        return deltas

    def _bptt(
        self,
        run: _Run,
        d_out: np.ndarray,
        dh_n: Optional[np.ndarray],
        dc_n: Optional[np.ndarray],
        need_dx: bool,
    ) -> tuple[Optional[np.ndarray], np.ndarray, Optional[np.ndarray]]:
        """Backpropagation through time for one direction of one layer: the loop over the time
        steps going back, then the weight gradients and the input δ in three GEMMs.

        Returns ``(δx (T, N, in) or None, δh_0, δc_0 or None)``."""
        w_ih, w_hh, b_ih, b_hh = self._weights(run.layer, run.reverse)
        steps, batch, hs = run.out.shape
        gh = w_ih.shape[0]
        cell = self.cell
        dh = np.zeros((batch, hs), self.dtype) if dh_n is None else dh_n.copy()
        dc = None
        lstm = isinstance(cell, LSTMCell)
        if lstm:
            dc = np.zeros((batch, hs), self.dtype) if dc_n is None else dc_n.copy()
        d_ax = np.empty((steps, batch, gh), self.dtype)  # δ of the input projection, every step
        d_ah = np.empty_like(d_ax) if isinstance(cell, GRUCell) else d_ax  # δ of h_(t−1)·W_hhᵀ + b_hh
        record = self.record_time_steps
        run.dh = np.empty((steps, batch, hs), self.dtype) if record else None
        run.dc = np.empty((steps, batch, hs), self.dtype) if record and dc is not None else None
        w = w_hh.value
        for t in reversed(run.order()):
            dh = dh + d_out[t]  # δh_t: from the output at t, and from step t + 1 (through W_hh)
            if run.dh is not None:
                run.dh[t] = dh
            h_prev, c_prev = run.previous(t)
            if lstm:  # δa written straight into δA_x[t]
                step = cell.backward(dh, dc, run.keep, t, h_prev, c_prev, out=d_ax[t])
            else:
                step = cell.backward(dh, dc, run.keep, t, h_prev, c_prev)
                d_ax[t] = step.dax
            if d_ah is not d_ax:
                d_ah[t] = step.dah
            if dc is not None:
                if run.dc is not None:
                    run.dc[t] = step.dc_t
                dc = step.dc_prev  # δc_(t−1) = δc_t ⊙ f
            dh = matmul(step.dah, w)  # δh_(t−1) through the recurrent weights
            if step.dh_skip is not None:
                dh += step.dh_skip
        # the weight gradients of every time step at once
        rows_x = d_ax.reshape(steps * batch, gh)
        rows_h = d_ah.reshape(steps * batch, gh)
        x2 = run.x.reshape(steps * batch, -1)
        w_ih.set_grad(matmul(rows_x.T, x2, out=w_ih.grad_buffer()))
        w_hh.set_grad(
            matmul(rows_h.T, run.previous_states().reshape(steps * batch, hs), out=w_hh.grad_buffer())
        )
        if b_ih is not None:
            b_ih.set_grad(np.sum(rows_x, axis=0, out=b_ih.grad_buffer()))
            b_hh.set_grad(np.sum(rows_h, axis=0, out=b_hh.grad_buffer()))
        dx = matmul(rows_x, w_ih.value).reshape(steps, batch, -1) if need_dx else None
        return dx, dh, dc

    # ------------------------------------------------------------------ the trace
    def flow_through_time(self) -> Optional[dict[str, np.ndarray]]:
        """Every time step of the last training step, for the trace: ``h_l0`` (``h_t``),
        ``dh_l0`` (``δh_t = ∂Loss/∂h_t``, what arrives at ``h_t`` from the output and from step
        ``t + 1``) and, for the LSTM, ``c_l0``, ``dc_l0``; ``_reverse`` for the backward
        direction, ``l1``… for stacked layers. Each array is ``(N, T, H)``, index ``t − 1`` for
        time step ``t``. None unless the backward pass ran with ``record_time_steps`` set."""
        cache = self._cache
        if cache is None or any(r.dh is None for row in cache.runs for r in row):
            return None
        out: dict[str, np.ndarray] = {}
        for row in cache.runs:
            for run in row:
                s = f"l{run.layer}{'_reverse' if run.reverse else ''}"
                out[f"h_{s}"] = run.out.transpose(1, 0, 2)
                if "c" in run.keep:
                    out[f"c_{s}"] = run.keep["c"].transpose(1, 0, 2)
                out[f"dh_{s}"] = run.dh.transpose(1, 0, 2)
                if run.dc is not None:
                    out[f"dc_{s}"] = run.dc.transpose(1, 0, 2)
        return out

    def _cache_attrs(self) -> tuple[str, ...]:
        return ("_cache",)

    # ------------------------------------------------------------------ config and PyTorch
    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = {"input_size": self.input_size, "hidden_size": self.hidden_size}
        if self.num_layers != 1:
            config["num_layers"] = self.num_layers
        config.update(self._extra_config())
        if not self.use_bias:
            config["bias"] = False
        if not self.batch_first:
            config["batch_first"] = False
        if self.dropout:
            config["dropout"] = self.dropout
        if self.bidirectional:
            config["bidirectional"] = True
        return config

    def _extra_config(self) -> dict[str, Any]:
        return {}

    def _torch_arguments(self) -> dict[str, Any]:
        return {
            "num_layers": self.num_layers,
            **self._extra_config(),
            "bias": self.use_bias,
            "batch_first": self.batch_first,
            "dropout": self.dropout,
            "bidirectional": self.bidirectional,
        }

    @classmethod
    def from_torch_module(cls, module: Any) -> Layer:
        if getattr(module, "proj_size", 0):
            raise UnsupportedTorchOption(f"proj_size={module.proj_size}")
        kwargs = {
            "num_layers": module.num_layers,
            "bias": module.bias,
            "batch_first": module.batch_first,
            "dropout": float(module.dropout),
            "bidirectional": module.bidirectional,
        }
        if cls.mode == "RNN":
            kwargs["nonlinearity"] = module.nonlinearity
        return cls(module.input_size, module.hidden_size, **kwargs)

    def to_torch_module(self, nn: Any) -> Any:
        return getattr(nn, type(self).__name__)(self.input_size, self.hidden_size, **self._torch_arguments())


@register_layer
class RNN(_Recurrent):
    """PyTorch's ``nn.RNN``, the Elman network: ``h_t = f(x_t·W_ihᵀ + b_ih + h_(t−1)·W_hhᵀ + b_hh)``
    with ``f`` = tanh (default) or ReLU.

    Backward through time: ``δa_t = δh_t ⊙ f'(a_t)``, ``δh_(t−1) = δa_t·W_hh`` (plus the output's δ
    at ``t − 1``); ``δW_ih = Σ_t δa_tᵀ·x_t``, ``δW_hh = Σ_t δa_tᵀ·h_(t−1)``, ``δb = Σ δa_t``,
    ``δx_t = δa_t·W_ih`` (the sequence driver: :mod:`learnflux.layers.recurrent`).

    Args: as :class:`LSTM`, plus ``nonlinearity``: ``"tanh"`` or ``"relu"`` (whose derivative at
    exactly 0 is 1, learnflux's rule; PyTorch uses 0).

    Weights: ``weight_ih_l{k}`` ``(H, in)``, ``weight_hh_l{k}`` ``(H, H)``, ``bias_ih_l{k}``,
    ``bias_hh_l{k}`` ``(H,)``, ``..._reverse`` for the backward direction.
    """

    mode = "RNN"
    torch_twins = ("RNN",)

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        nonlinearity: str = "tanh",
        bias: bool = True,
        batch_first: bool = True,
        dropout: float = 0.0,
        bidirectional: bool = False,
        rng: RngLike = None,
    ) -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise ConfigError(f"RNN: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, rng)

    def _make_cell(self) -> Cell:
        return RNNCell(self.nonlinearity)

    def _extra_config(self) -> dict[str, Any]:
        return {"nonlinearity": self.nonlinearity} if self.nonlinearity != "tanh" else {}


@register_layer
class LSTM(_Recurrent):
    """PyTorch's ``nn.LSTM``: gates ``i, f, g, o`` stacked in that order in the weights::

        i = σ(x_t·W_iiᵀ + b_ii + h_(t−1)·W_hiᵀ + b_hi)      (the same for f and o)
        g = tanh(x_t·W_igᵀ + b_ig + h_(t−1)·W_hgᵀ + b_hg)
        c_t = f ⊙ c_(t−1) + i ⊙ g        h_t = o ⊙ tanh(c_t)

    Backward through time (:class:`~learnflux.layers._recurrent_cells.LSTMCell`): from ``δh_t``,
    ``δc_t = δc + δh_t ⊙ o ⊙ (1 − tanh² c_t)``; the gates' δ ``δi = δc_t ⊙ g``, ``δf = δc_t ⊙
    c_(t−1)``, ``δg = δc_t ⊙ i``, ``δo = δh_t ⊙ tanh c_t`` times their activations' derivatives
    give ``δa_t``; ``δc_(t−1) = δc_t ⊙ f`` and ``δh_(t−1) = δa_t·W_hh`` go back one step.

    Args (PyTorch's): ``input_size``, ``hidden_size``, ``num_layers=1``, ``bias=True``,
    ``batch_first`` (default **True** here, False in PyTorch), ``dropout=0.0`` (between stacked
    layers), ``bidirectional=False``, ``proj_size=0`` (only 0: a projected LSTM is refused), and
    ``rng``.

    Calling it: ``lstm(x)`` returns the output sequence ``(N, T, D·H)`` (``D`` = 2 when
    bidirectional), the first item of PyTorch's ``output, (h_n, c_n)``; the final states are
    then in ``lstm.h_n`` and ``lstm.c_n``. Initial states: ``lstm([x, h0, c0])`` (arrays or graph
    nodes); backward then returns ``[δx, δh0, δc0]``. The states ``h0``, ``c0``, ``h_n``, ``c_n``
    are ``(num_layers·D, N, H)`` as PyTorch's when ``batch_first=False``, and ``(N, num_layers·D, H)``
    when ``batch_first=True`` (the batch on the input's axis, so that a state is a value of a
    learnflux graph and is batched by ``fit`` and ``predict``; PyTorch keeps states
    ``(num_layers·D, N, H)`` whatever batch_first). ``backward`` also takes PyTorch's structure
    ``(δoutput, (δh_n, δc_n))`` when the final states feed a loss.

    Weights (PyTorch's names and layouts): ``weight_ih_l{k}`` ``(4H, in)`` = ``[W_ii; W_if; W_ig;
    W_io]``, ``weight_hh_l{k}`` ``(4H, H)``, ``bias_ih_l{k}``, ``bias_hh_l{k}`` ``(4H,)``,
    ``..._reverse`` for the backward direction; all U(−1/√H, 1/√H), as PyTorch.
    """

    mode = "LSTM"
    torch_twins = ("LSTM",)
    max_inputs = 3

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = True,
        dropout: float = 0.0,
        bidirectional: bool = False,
        proj_size: int = 0,
        rng: RngLike = None,
    ) -> None:
        if proj_size != 0:
            raise ConfigError(
                f"LSTM: proj_size={proj_size!r} (a projected LSTM, h_t = W_hr·h_t) is not supported; "
                "use proj_size=0, or a Linear on the output"
            )
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, rng)

    def _make_cell(self) -> Cell:
        return LSTMCell()


@register_layer
class GRU(_Recurrent):
    """PyTorch's ``nn.GRU``: gates ``r, z, n`` stacked in that order, with PyTorch's exact
    candidate ``n`` (the reset gate multiplies the recurrent product *with its bias*)::

        r = σ(x_t·W_irᵀ + b_ir + h_(t−1)·W_hrᵀ + b_hr)
        z = σ(x_t·W_izᵀ + b_iz + h_(t−1)·W_hzᵀ + b_hz)
        n = tanh(x_t·W_inᵀ + b_in + r ⊙ (h_(t−1)·W_hnᵀ + b_hn))
        h_t = (1 − z) ⊙ n + z ⊙ h_(t−1)

    Backward through time (:class:`~learnflux.layers._recurrent_cells.GRUCell`): ``δn = δh_t ⊙
    (1 − z)``, ``δz = δh_t ⊙ (h_(t−1) − n)``, ``δr = δn ⊙ (1 − n²) ⊙ (h_(t−1)·W_hnᵀ + b_hn)``;
    ``δh_(t−1) = δh_t ⊙ z + δa_h·W_hh``, where ``δa_h`` is the input side's ``δa_x`` with its
    ``n`` block multiplied by ``r``.

    Args, calling and states: as :class:`LSTM` (no cell state: ``gru([x, h0])``, ``gru.h_n``).

    Weights: ``weight_ih_l{k}`` ``(3H, in)`` = ``[W_ir; W_iz; W_in]``, ``weight_hh_l{k}`` ``(3H, H)``,
    ``bias_ih_l{k}``, ``bias_hh_l{k}`` ``(3H,)``, ``..._reverse`` for the backward direction.
    """

    mode = "GRU"
    torch_twins = ("GRU",)

    def _make_cell(self) -> Cell:
        return GRUCell()


__all__ = ["GRU", "LSTM", "RNN"]
