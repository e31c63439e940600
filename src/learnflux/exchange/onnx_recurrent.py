"""ONNX converters of the recurrent layers (:mod:`learnflux.layers.recurrent`: ``RNN``, ``LSTM``,
``GRU``), written with opset 17's ``RNN``, ``LSTM`` and ``GRU`` operators, one per stacked layer.

ONNX's operators compute the same recurrences as PyTorch's modules (and learnflux's), with other
conventions, which the converter bridges at export time:

* **gate order**: PyTorch stacks the LSTM's gates ``i, f, g, o`` and the GRU's ``r, z, n``; ONNX
  wants ``i, o, f, c`` and ``z, r, h``. The row blocks of every weight and bias are permuted.
* **GRU's candidate**: PyTorch computes ``n = tanh(W_in·x + b_in + r ⊙ (W_hn·h + b_hn))``, ONNX's
  ``linear_before_reset=1``.
* **packing**: ``W = [W_ih]`` ``(D, G·H, in)``, ``R = [W_hh]`` ``(D, G·H, H)``,
  ``B = [b_ih, b_hh]`` ``(D, 2·G·H)`` with the directions forward, reverse (``direction =
  "bidirectional"`` when D = 2); no bias: ``B`` left out (zeros).
* **layout**: ONNX is time-major, ``X (T, N, in)`` → ``Y (T, D, N, H)``. Each layer's ``Y`` is
  turned into ``(T, N, D·H)`` (``Transpose`` + ``Reshape``: both directions side by side, as
  learnflux's output) for the next layer; with ``batch_first`` (learnflux's default) the input is
  transposed from ``(N, T, in)`` once at the start and the output back at the end.
* **initial states**: learnflux's extra inputs ``h0`` (``c0``), laid out ``(N, L·D, H)`` with
  ``batch_first``, ``(L·D, N, H)`` without, become ONNX's ``(L·D, N, H)``; layer ``l`` takes the
  ``Slice`` ``[l·D, (l+1)·D)``. Without them ONNX starts from zeros, as learnflux.

Dropout between the stacked layers is the identity in inference. With ``batch_first=False`` the
graph's dynamic axis (axis 0) is the time axis, as for learnflux's ``predict``: the export holds.
"""

from __future__ import annotations

import numpy as np

from ..layers.recurrent import GRU, LSTM, RNN, _Recurrent
from .onnx_graph import OnnxGraph, converter

Shapes = list[tuple]

#: PyTorch's gate blocks in ONNX's order: LSTM ``i, f, g, o`` → ``i, o, f, c``; GRU ``r, z, n`` →
#: ``z, r, h``; RNN one block
_GATE_ORDER = {"RNN": [0], "LSTM": [0, 3, 1, 2], "GRU": [1, 0, 2]}


def _reorder(w: np.ndarray, mode: str, hidden: int) -> np.ndarray:
    """The row blocks of ``w`` (``(G·H, …)`` or ``(G·H,)``) in ONNX's gate order."""
    return np.concatenate([w[k * hidden : (k + 1) * hidden] for k in _GATE_ORDER[mode]], axis=0)


def _packed(layer: _Recurrent, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """ONNX's ``W``, ``R``, ``B`` of stacked layer ``index``: the directions on axis 0."""
    ws, rs, bs = [], [], []
    for reverse in (False, True)[: layer.directions]:
        w_ih, w_hh, b_ih, b_hh = layer._weights(index, reverse)
        h, mode = layer.hidden_size, layer.mode
        ws.append(_reorder(np.asarray(w_ih.value), mode, h))
        rs.append(_reorder(np.asarray(w_hh.value), mode, h))
        if b_ih is not None:
            b = [np.asarray(b_ih.value), np.asarray(b_hh.value)]
            bs.append(np.concatenate([_reorder(v, mode, h) for v in b]))
    return np.stack(ws), np.stack(rs), np.stack(bs) if bs else None


def _state(g: OnnxGraph, layer: _Recurrent, name: str, index: int) -> str:
    """Layer ``index``'s slice ``(D, N, H)`` of the initial state ``name`` (in ONNX's layout)."""
    d = layer.directions
    return g.op(
        "Slice",
        [
            name,
            g.const([index * d], "start", np.int64),
            g.const([(index + 1) * d], "end", np.int64),
            g.const([0], "axis", np.int64),
        ],
    )


@converter(RNN, LSTM, GRU)
def recurrent(g: OnnxGraph, layer: _Recurrent, inputs: list[str], shapes: Shapes) -> str:
    """One ONNX ``RNN``/``LSTM``/``GRU`` node per stacked layer (the weights repacked in ONNX's
    gate order), chained through ``Transpose`` + ``Reshape`` to ``(T, N, D·H)``; ``Transpose``
    from and to batch-first around them; the initial states, when given, transposed to
    ``(L·D, N, H)`` and sliced per layer."""
    mode, d, h = layer.mode, layer.directions, layer.hidden_size
    extra = {}
    if mode == "RNN":
        extra["activations"] = [{"tanh": "Tanh", "relu": "Relu"}[layer.nonlinearity]] * d
    if mode == "GRU":
        extra["linear_before_reset"] = 1
    if d == 2:
        extra["direction"] = "bidirectional"
    first = [1, 0, 2]  # (N, T, ·) ↔ (T, N, ·), and (N, L·D, H) ↔ (L·D, N, H)
    x = g.op("Transpose", [inputs[0]], perm=first) if layer.batch_first else inputs[0]
    states = [g.op("Transpose", [s], perm=first) if layer.batch_first else s for s in inputs[1:]]
    for index in range(layer.num_layers):
        w, r, b = _packed(layer, index)
        node_inputs = [x, g.const(w, f"W_l{index}"), g.const(r, f"R_l{index}")]
        node_inputs.append("" if b is None else g.const(b, f"B_l{index}"))
        if states:
            node_inputs += ["", *(_state(g, layer, s, index) for s in states)]
        y = g.op(mode, node_inputs, hidden_size=h, **extra)
        # Y (T, D, N, H) → (T, N, D, H) → (T, N, D·H)
        y = g.op("Transpose", [y], perm=[0, 2, 1, 3])
        x = g.op("Reshape", [y, g.const([0, 0, d * h], "shape", np.int64)])
    return g.op("Transpose", [x], perm=first) if layer.batch_first else x
