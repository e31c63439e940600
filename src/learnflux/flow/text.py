"""The trace of any model as text or Markdown, layer by layer.

The seed's model fits in a table (one column per ``o^k``). A CNN does not: here each step lists
the forward pass (every ``o^k`` for the batch), the learning flow going back (``δ^(n+1)`` from the
loss down to ``δ^1``; inside a recurrent layer, ``δh_t`` at every time step), then every weight's
gradient ``δw``, the update ``ŵ − w`` and ``ŵ``. A
tensor of a few values is written whole (exact fractions stay exact); a larger one is summarised
on one line (:func:`~learnflux.flow.summary.describe_tensor`). The JSON and ``.npz`` outputs keep
every value.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..numbers import is_exact
from ..training.trace import (
    Trace,
    _flat_if_row,
    _mean,
    format_tensor,
    format_value,
    time_step_name,
    updated_name,
)
from .graph import graph_nodes, input_names, is_chain
from .summary import describe_tensor, is_small

__all__ = ["long_markdown", "long_text", "needs_long_layout", "update_of"]


def needs_long_layout(trace: Trace) -> bool:
    """True when a tensor of one sample or a weight is too large for the tables of the seed's
    layout (more than :data:`~learnflux.flow.summary.SMALL` values)."""
    snap = trace.initial
    per_sample = [o[0] for o in snap.outputs if isinstance(o, np.ndarray) and o.ndim]
    return any(not is_small(a) for a in per_sample) or any(
        not is_small(w, 2 * 12) for w in snap.weights.values()
    )


def update_of(after: np.ndarray, before: np.ndarray) -> np.ndarray:
    """``ŵ − w``, exactly: in float64 for float weights (the difference of two float32 values is
    exact there), in Fractions for exact ones."""
    if after.dtype == object:
        return after - before
    return after.astype(np.float64) - before.astype(np.float64)


def _value(a: Any, exact: bool) -> str:
    arr = np.asarray(a)
    if is_small(arr):
        return format_tensor(_flat_if_row(arr) if arr.ndim == 2 else arr, exact)
    return describe_tensor(arr)


def _model_lines(trace: Trace) -> list[str]:
    model = trace.model
    nodes = graph_nodes(model)
    chain = is_chain(model)
    n_weights = sum(int(np.asarray(w).size) for w in trace.initial.weights.values())
    out_shapes = [tuple(o.shape[1:]) for o in trace.initial.outputs]
    lines = [f"Model ({trace.dtype}), {len(nodes)} layers, {n_weights:,} weights:"]
    width = max(len(f"L{n['k']} = {n['layer']}") for n in nodes)
    for node, shape in zip(nodes, out_shapes, strict=True):
        head = f"L{node['k']} = {node['layer']}"
        reads = "" if chain else "  ← " + ", ".join(input_names(node))
        weights = "".join(
            f"  {w} {tuple(trace.initial.weights[w].shape)}"
            for w in node["weights"]
            if w in trace.initial.weights
        )
        lines.append(f"  {head.ljust(width)}{reads}  o{node['k']} {shape}{weights}")
    lines.append(f"  Loss = {trace.loss.describe()}")
    optimizer = type(trace.optimizer).__name__ if trace.optimizer is not None else "none (gradients only)"
    exact = is_exact(trace.model.dtype)
    lr = format_value(trace.lr, decimals=exact) if trace.lr is not None else "–"
    steps = len(trace.steps)
    lines.append(
        f"Optimizer {optimizer}, learning rate α = {lr}, batch size {trace.batch_size}, "
        f"{steps} step{'s' if steps != 1 else ''}"
    )
    for line in trace.extra.get("sample_notes", []):
        lines.append(line)
    return lines


def _forward_lines(trace: Trace, snap: Any) -> list[str]:
    exact = is_exact(trace.model.dtype)
    n = len(trace.model.layers)
    lines = []
    for i in range(snap.x.shape[0]):
        lines.append(
            f"sample {i + 1}: y = {_value(snap.y[i], exact)} · o{n} = {_value(snap.outputs[-1][i], exact)}"
            f" · loss {format_value(snap.losses[i], decimals=exact)}"
        )
    lines.append(f"mean loss: {format_value(_mean(snap.losses), decimals=exact)}")
    return lines


def _step_items(trace: Trace, step: Any) -> list[tuple[str, list[tuple[str, str]]]]:
    """``[(section title, [(quantity, value), ...]), ...]`` for one step."""
    exact = is_exact(trace.model.dtype)
    n = len(trace.model.layers)
    forward = [(f"o{k}", _value(step.output(k), exact)) for k in range(1, n + 1)]
    flow = []
    for k in range(n + 1, 0, -1):
        d = step.delta(k)
        if d is None:
            continue
        if isinstance(d, list):  # one δ per data input
            for j, dj in enumerate(d, start=1):
                if dj is not None:
                    flow.append((f"δ{k}[x{j}]", _value(dj, exact)))
            continue
        flow.append((f"δ{k}", _value(d, exact)))
    weights = []
    for name, g in step.grads.items():
        weights.append((f"δ{name}", _value(g, exact)))
        if name in step.weights_after:
            before, after = step.weights_before[name], step.weights_after[name]
            weights.append((f"{updated_name(name)} − {name}", _value(update_of(after, before), exact)))
            weights.append((updated_name(name), _value(after, exact)))
    sections = [
        ("forward: the information flow o^k, for the batch", forward),
        ("backward: the learning flow δ^k = ∂Loss/∂(input of L^k), from the loss back to the data", flow),
    ]
    if step.through_time:
        through = [
            (f"L{k} {time_step_name(name, t)}", _value(d, exact)) for k, name, t, d in step.time_steps()
        ]
        sections.append(
            (
                "through time: δh_t = ∂Loss/∂h_t in each recurrent layer (from the output at t and "
                "from step t + 1; δc_t for the LSTM's cell), from t = T back to 1",
                through,
            )
        )
    sections.append(("weights: the gradient δw, the update ŵ − w and the new weights ŵ", weights))
    return sections


def _header(trace: Trace, step: Any) -> str:
    return trace.step_header(step)


def long_text(trace: Trace) -> str:
    """The whole trace for a terminal: the model, the forward pass before training, every step,
    the forward pass after training."""
    out = _model_lines(trace) + ["", "Forward pass before training (inference phase):"]
    out += ["  " + line for line in _forward_lines(trace, trace.initial)] + [""]
    for step in trace.steps:
        out.append(_header(trace, step))
        for title, items in _step_items(trace, step):
            out.append(f"  {title}")
            width = max((len(q) for q, _ in items), default=0)
            out += [f"    {q.ljust(width)}  {v}" for q, v in items]
        out.append("")
    out += ["Forward pass after training (inference phase):"]
    out += ["  " + line for line in _forward_lines(trace, trace.final)]
    return "\n".join(out) + "\n"


def long_markdown(trace: Trace) -> str:
    """The same as :func:`long_text`, with Markdown headings and tables."""
    out = ["```", *_model_lines(trace), "```", "", "#### Forward pass before training", ""]
    out += [f"- {line}" for line in _forward_lines(trace, trace.initial)] + [""]
    for step in trace.steps:
        out += [f"#### {_header(trace, step)}", ""]
        for title, items in _step_items(trace, step):
            out += [f"{title[0].upper()}{title[1:]}:", "", "| quantity | value |", "| --- | --- |"]
            out += [f"| `{q}` | {v.replace('|', chr(92) + '|')} |" for q, v in items]
            out.append("")
    out += ["#### Forward pass after training", ""]
    out += [f"- {line}" for line in _forward_lines(trace, trace.final)]
    return "\n".join(out) + "\n"
