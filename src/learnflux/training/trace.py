"""Record the learning process step by step, in the article's notation, and render it.

For a model of layers ``L1 … Ln`` (``model.layers[0] … model.layers[n-1]``) and a loss:

* ``o^k``: the output of layer ``k`` (``o1`` is what the Input layer passes on, the data);
* ``δ^k = ∂Loss/∂(input of layer k)``: the learning flow. ``δ^(n+1)`` is the loss's δ (for the
  seed model: ``δ4 = o3 − y``), ``δ^1`` the δ for the model input. In a chain the input of layer
  ``k`` is ``o^(k-1)``, so ``δ^k = ∂Loss/∂o^(k-1)``; in a graph model ``δ^(k+1)`` is defined as
  ``∂Loss/∂o^k``, the sum over every layer ``o^k`` feeds;
* ``δw``: the weight gradients written by the backward pass (``w2`` is the ``weight`` of layer 2,
  ``b2`` its ``bias``);
* ``ŵ``: the weights after the optimizer's update;
* for a layer that loops over time steps (``RNN``, ``LSTM``, ``GRU``), the learning flow through
  time: ``δh_t = ∂Loss/∂h_t`` at every time step ``t`` (``Step.through_time``), going back from
  ``t = T`` to 1 (``Layer.flow_through_time``).

Use it in three ways::

    trace = lf.trace.record(model, loss, optimizer, x, y, batch_size=1, epochs=1)
    print(trace.to_text())            # or to_markdown(), to_json()

    rec = lf.Recorder(model, loss, optimizer)     # in your own loop
    step = rec.step(xb, yb)                         # forward, loss, backward, update, recorded
    step.outputs[1], step.deltas[2], step.grads["w2"], step.weights_after["w2"]

Recording copies every tensor it keeps (the trace is for reading, not for speed). The forward
tables before and after training (:class:`Snapshot`) run in the inference phase, so layers that
behave differently there (dropout, batch normalization) show what inference would give.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Optional, Sequence

import numpy as np

from ..core.layer import prepare_input
from ..core.model import Model
from ..errors import ConfigError, ShapeError
from ..losses.base import Loss
from ..numbers import dtype_name, is_exact, scalar_like

__all__ = [
    "Recorder",
    "Snapshot",
    "Step",
    "Trace",
    "article_name",
    "format_tensor",
    "format_value",
    "layer_outputs",
    "record",
    "time_step_name",
    "to_jsonable",
    "updated_name",
]


# ---------------------------------------------------------------------------------- numbers
def format_value(v: Any, decimals: bool = False) -> str:
    """One number as text: ``-17/290000`` for a Fraction (``decimals`` adds `` ≈ -5.86207e-05``),
    the shortest text that reads back to the same float for a float32 / float64."""
    if isinstance(v, Fraction):
        text = str(v)
        if decimals and v.denominator != 1:
            text += f" ≈ {_decimal(v)}"
        return text
    if isinstance(v, (np.floating, float)):
        return str(v) if isinstance(v, np.floating) else repr(v)
    return str(v)


def _decimal(v: Any) -> str:
    return f"{float(v):.9g}"


def _is_fraction_array(a: np.ndarray) -> bool:
    return a.dtype == object


def format_tensor(a: Any, decimals: bool = False) -> str:
    """A tensor as text: a scalar plainly, a vector as ``(a, b, c)``, more dimensions as nested
    brackets. With ``decimals``, exact tensors that hold non-integers get `` ≈ (…)`` after them."""
    arr = np.asarray(a) if not isinstance(a, np.ndarray) else a
    text = _nested(arr, lambda v: format_value(v))
    if (
        decimals
        and _is_fraction_array(arr)
        and any(isinstance(v, Fraction) and v.denominator != 1 for v in arr.reshape(-1))
    ):
        text += " ≈ " + _nested(arr, _decimal)
    return text


def _nested(arr: np.ndarray, fmt: Any) -> str:
    if arr.ndim == 0:
        return fmt(arr.item() if arr.dtype != object else arr[()])
    if arr.ndim == 1:
        return "(" + ", ".join(fmt(v) for v in arr) + ")"
    return "[" + ", ".join(_nested(sub, fmt) for sub in arr) + "]"


def to_jsonable(a: Any) -> Any:
    """Nested lists of numbers; exact values become strings ``"p/q"`` or ``"n"``, floats the
    shortest decimal that reads back to the same float32 / float64."""
    if isinstance(a, np.ndarray):
        if a.ndim == 0:
            return to_jsonable(a[()])
        if a.dtype == np.float64:
            return a.tolist()  # Python floats: their repr is the shortest that reads back
        if a.dtype == np.float32:  # the shortest decimals of the float32 values, at C speed
            return np.asarray([float(t) for t in a.reshape(-1).astype(str)]).reshape(a.shape).tolist()
        return [to_jsonable(v) for v in a]
    if isinstance(a, (list, tuple)):
        return [to_jsonable(v) for v in a]
    if isinstance(a, Fraction):
        return str(a)
    if isinstance(a, np.floating):
        return float(str(a))
    if isinstance(a, (np.integer, int)):
        return int(a)
    return a


def _copy(a: Any) -> Any:
    if a is None:
        return None
    if isinstance(a, list):
        return [_copy(v) for v in a]
    return np.array(a, copy=True)


def _loss_scalar(value: Any, dtype: np.dtype) -> Any:
    """The loss value: a Fraction in exact arithmetic, else a Python float."""
    if is_exact(dtype):
        return value if isinstance(value, Fraction) else Fraction(value)
    return float(value)


# ---------------------------------------------------------------------------------- naming
def article_name(param_name: str) -> str:
    """``"1.weight"`` → ``"w2"``, ``"1.bias"`` → ``"b2"`` (the article numbers layers from 1);
    other names keep their own: ``"2.running_mean"`` → ``"running_mean3"``."""
    head, _, rest = param_name.partition(".")
    if not head.isdigit() or not rest:
        return param_name
    k = int(head) + 1
    if rest == "weight":
        return f"w{k}"
    if rest == "bias":
        return f"b{k}"
    return f"{rest.replace('.', '_')}{k}"


def updated_name(name: str) -> str:
    """The article's name of a weight after the update: ``"w2"`` → ``"ŵ2"``, ``"b2"`` → ``"b̂2"``."""
    if name[:1] in ("w", "b") and name[1:].isdigit():
        return name[0] + "\u0302" + name[1:] if name[0] == "b" else "ŵ" + name[1:]
    return name + "^"


def _flat_if_row(a: np.ndarray) -> np.ndarray:
    """A weight matrix with a single row (one output neuron, the article's vector ``w``) is
    reported as a flat vector."""
    return a.reshape(-1) if a.ndim == 2 and a.shape[0] == 1 else a


def _is_chain(model: Model) -> bool:
    plan = getattr(model, "_plan", None)
    return plan is not None and list(plan) == [(i - 1,) for i in range(len(model.layers))]


def layer_outputs(model: Model, x: Any) -> list[np.ndarray]:
    """Every layer's output ``[o1, …, on]`` for ``x``, computed in the inference phase (the
    model's phase is restored afterwards; nothing is cached, no running statistic changes)."""
    with model.inference():
        xs = [x] if model._single_input else list(x)
        if len(xs) != model.n_model_inputs:
            raise ShapeError(f"{model.describe()}: expects {model.n_model_inputs} inputs, got {len(xs)}")
        xs = [prepare_input(xi, entry) for xi, entry in zip(xs, model._entry_layers, strict=True)]
        values: list[Any] = []
        for layer, ins in zip(model.layers, model._plan, strict=True):
            args = [values[j] if j >= 0 else xs[-1 - j] for j in ins]
            values.append(layer.forward(args[0] if len(ins) == 1 else args))
    return [_copy(v) for v in values]


# ---------------------------------------------------------------------------------- records
@dataclass
class Snapshot:
    """A forward table: the data, every layer's output, the per-sample losses and the weights.

    ``outputs[k-1]`` is ``o^k`` for all the samples; ``losses[i]`` the loss of sample ``i``
    alone; ``weights`` by article name (``"w2"``)."""

    x: np.ndarray
    y: np.ndarray
    outputs: list[np.ndarray]
    losses: list[Any]
    weights: dict[str, np.ndarray]

    def to_dict(self) -> dict[str, Any]:
        return {
            "weights": {k: to_jsonable(_flat_if_row(v)) for k, v in self.weights.items()},
            "outputs": {f"o{k + 1}": to_jsonable(o) for k, o in enumerate(self.outputs)},
            "losses": to_jsonable(list(self.losses)),
        }


@dataclass
class Step:
    """One training step (one batch): forward, loss, backward, update.

    * ``index``: 1, 2, … over the whole run; ``epoch``: 1, 2, …; ``samples``: dataset indices
      (0-based) of the batch's samples, in batch order.
    * ``x``, ``y``: the batch. ``outputs[k-1] = o^k``.
    * ``loss``: the batch mean (the value ``loss.forward`` returned).
    * ``deltas[k-1] = δ^k`` for ``k = 1 … n+1`` (``deltas[n]`` is the loss's δ, which carries
      the batch's ``1/n``).
    * ``grads``, ``weights_before``, ``weights_after``: by article name (``"w2"``).
    * ``through_time``: for each recurrent layer ``L^k`` of the model (by ``k``), what each time
      step held (``Layer.flow_through_time``): ``{"h_l0": h_t, "dh_l0": δh_t, ...}``, each
      ``(batch, T, H)``; empty for a model without time steps.
    """

    index: int
    epoch: int
    samples: list[int]
    x: np.ndarray
    y: np.ndarray
    outputs: list[np.ndarray]
    loss: Any
    deltas: list[Any]
    grads: dict[str, np.ndarray]
    weights_before: dict[str, np.ndarray]
    weights_after: dict[str, np.ndarray]
    through_time: dict[int, dict[str, np.ndarray]] = field(default_factory=dict)

    def delta(self, k: int) -> Any:
        """``δ^k`` (1-based, as in the article)."""
        return self.deltas[k - 1]

    def output(self, k: int) -> np.ndarray:
        """``o^k`` (1-based)."""
        return self.outputs[k - 1]

    def to_dict(self) -> dict[str, Any]:
        doc = {
            "step": self.index,
            "epoch": self.epoch,
            "samples": list(self.samples),
            "outputs": {f"o{k + 1}": to_jsonable(o) for k, o in enumerate(self.outputs)},
            "loss": to_jsonable(self.loss),
            "deltas": {f"d{k + 1}": to_jsonable(d) for k, d in enumerate(self.deltas) if d is not None},
            "grads": {k: to_jsonable(_flat_if_row(v)) for k, v in self.grads.items()},
            "weights_after": {k: to_jsonable(_flat_if_row(v)) for k, v in self.weights_after.items()},
        }
        if self.through_time:
            doc["through_time"] = {
                f"L{k}": {name: to_jsonable(a) for name, a in values.items()}
                for k, values in self.through_time.items()
            }
        return doc

    def time_steps(self) -> list[tuple[int, str, int, np.ndarray]]:
        """The learning flow through time in the order the backward pass computed it:
        ``(k, name, t, δ)`` for each recurrent layer ``L^k`` (the last first), each of its stacked
        layers and directions (the top one first), each time step ``t`` (1-based) from ``t = T``
        down to 1 (up from 1 for a ``_reverse`` direction) and each δ of that step (``dh_l0``:
        ``δh_t``, then ``dc_l0``: ``δc_t`` for an LSTM); ``δ`` is ``(batch, H)``."""
        out = []
        for k in sorted(self.through_time, reverse=True):
            values = self.through_time[k]
            groups: dict[str, list[str]] = {}
            for name in sorted((n for n in values if n.startswith("d")), key=lambda n: n[1] != "h"):
                groups.setdefault(name.partition("_")[2], []).append(name)
            for where in sorted(groups, key=_time_order):
                names = groups[where]
                length = values[names[0]].shape[1]
                steps = range(1, length + 1) if where.endswith("_reverse") else range(length, 0, -1)
                out.extend((k, name, t, values[name][:, t - 1]) for t in steps for name in names)
        return out


def _time_order(where: str) -> tuple:
    """``l1`` before ``l1_reverse`` before ``l0``: the top stacked layer first, as the backward
    pass."""
    layer, _, direction = where[1:].partition("_")
    return (-int(layer) if layer.isdigit() else 0, direction)


def time_step_name(name: str, t: int) -> str:
    """``"dh_l0", 3`` → ``"δh_l0[t=3]"``: the article's δ for one time step."""
    return f"δ{name[1:]}[t={t}]" if name.startswith("d") else f"{name}[t={t}]"


def _recurrent_layers(model: Model) -> list[tuple[int, Any]]:
    """``(k, layer)`` for each layer of ``model`` that has time steps (1-based ``k``)."""
    from ..core.layer import Layer

    return [
        (k, layer)
        for k, layer in enumerate(model.layers, start=1)
        if type(layer).flow_through_time is not Layer.flow_through_time
    ]


class Recorder:
    """Runs and records training steps: ``step = Recorder(model, loss, optimizer).step(xb, yb)``.

    Each call does what a training step does (forward, ``loss.forward``, ``loss.backward``,
    ``model.backward``, ``optimizer.step``) with the model's ``record_intermediates`` hook on,
    and returns a :class:`Step` holding copies of every ``o^k``, ``δ^k``, ``δw`` and ``ŵ``.
    ``optimizer`` may be ``None`` (gradients only, no update: ``weights_after`` = before).
    """

    def __init__(self, model: Model, loss: Loss, optimizer: Any = None) -> None:
        if not isinstance(model, Model):
            raise ConfigError(
                f"Recorder: expected a model (lf.Sequential or lf.Model), got {type(model).__name__}"
            )
        self.model = model
        self.loss = loss
        self.optimizer = optimizer
        self.steps: list[Step] = []

    def weights(self) -> dict[str, np.ndarray]:
        return {article_name(n): _copy(p.value) for n, p in self.model.named_parameters()}

    def step(self, x: Any, y: Any, epoch: int = 1, samples: Optional[Sequence[int]] = None) -> Step:
        model = self.model
        before = self.weights()
        previous = model.record_intermediates
        model.record_intermediates = True
        recurrent = _recurrent_layers(model)
        kept = [getattr(layer, "record_time_steps", False) for _, layer in recurrent]
        for _, layer in recurrent:
            layer.record_time_steps = True
        try:
            out = model.forward(x)
            value = self.loss.forward(out, y)
            delta = self.loss.backward()
            model.backward(delta)
            outputs = [_copy(o) for o in model.last_outputs]
            deltas = [_copy(model.last_input_deltas[0] if model._single_input else model.last_input_deltas)]
            deltas += [_copy(d) for d in model.last_deltas]
            through_time = {}
            for k, layer in recurrent:
                values = layer.flow_through_time()
                if values:
                    through_time[k] = {name: _copy(a) for name, a in values.items()}
        finally:
            model.record_intermediates = previous
            for (_, layer), was in zip(recurrent, kept, strict=True):
                layer.record_time_steps = was
        grads = {article_name(n): _copy(p.grad) for n, p in model.named_parameters() if p.grad is not None}
        if self.optimizer is not None:
            self.optimizer.step()
        n = outputs[-1].shape[0]
        step = Step(
            index=len(self.steps) + 1,
            epoch=int(epoch),
            samples=list(range(n)) if samples is None else [int(i) for i in samples],
            x=_copy(np.asarray(x)),
            y=_copy(np.asarray(y)),
            outputs=outputs,
            loss=_loss_scalar(value, model.dtype),
            deltas=deltas,
            grads=grads,
            weights_before=before,
            weights_after=self.weights(),
            through_time=through_time,
        )
        self.steps.append(step)
        return step

    def snapshot(self, x: Any, y: Any) -> Snapshot:
        """The forward table for every sample of ``x`` (inference phase, no update)."""
        outputs = layer_outputs(self.model, x)
        fresh = type(self.loss)(**self.loss.get_config())
        out = outputs[-1]
        y_arr = np.asarray(y)
        losses = [
            _loss_scalar(fresh.forward(out[i : i + 1], y_arr[i : i + 1]), self.model.dtype)
            for i in range(out.shape[0])
        ]
        return Snapshot(np.asarray(x), y_arr, outputs, losses, self.weights())


@dataclass
class Trace:
    """A recorded training run: the forward table before, every step, the forward table after.

    Renderers: :meth:`to_text` (aligned tables for a terminal), :meth:`to_markdown`,
    :meth:`to_dict` / :meth:`to_json` (the ``learnflux explain --format json`` contract)."""

    model: Model
    loss: Loss
    optimizer: Any
    lr: Any
    batch_size: int
    epochs: int
    initial: Snapshot
    steps: list[Step]
    final: Snapshot
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def dtype(self) -> str:
        return dtype_name(self.model.dtype)

    # ------------------------------------------------------------------ JSON
    def to_dict(self) -> dict[str, Any]:
        return {
            "dtype": self.dtype,
            "lr": to_jsonable(self.lr),
            "batch_size": self.batch_size,
            "epochs": self.epochs,
            "layers": [layer.summary_name() for layer in self.model.layers],
            "graph": self._graph(),
            "loss_function": self.loss.describe(),
            "x": to_jsonable(self.initial.x),
            "y": to_jsonable(self.initial.y),
            "initial": self.initial.to_dict(),
            "steps": [s.to_dict() for s in self.steps],
            "final": self.final.to_dict(),
            **self.extra,
        }

    def to_json(self, indent: Optional[int] = 2) -> str:
        """The trace as JSON; with ``indent``, innermost lists of numbers stay on one line."""
        doc = self.to_dict()
        if indent is None:
            return json.dumps(doc, ensure_ascii=False)
        inner: list[str] = []
        text = json.dumps(_mark_inner_lists(doc, inner), indent=indent, ensure_ascii=False)
        return _MARK.sub(lambda m: inner[int(m.group(1))], text)

    def to_npz(self, path: Any) -> None:
        """Write every tensor of the trace to a NumPy ``.npz`` archive (see
        :func:`learnflux.flow.arrays.save_npz` for its layout)."""
        from ..flow.arrays import save_npz

        save_npz(self, path)

    def to_html(self, title: Optional[str] = None) -> str:
        """The learning-flow page: one self-contained HTML file (see :mod:`learnflux.flow.page`)."""
        from ..flow.page import render_page

        return render_page(self, title=title)

    def _graph(self) -> list[dict[str, Any]]:
        from ..flow.graph import graph_nodes

        return graph_nodes(self.model)

    # ------------------------------------------------------------------ text and markdown
    def _formulas(self) -> dict[str, str]:
        return _formulas(self.model, self.loss, self.optimizer, self.lr, self.batch_size)

    def forward_table(self, snap: Snapshot, markdown: bool = False) -> str:
        exact = is_exact(self.model.dtype)
        n = len(self.model.layers)
        headers = ["sample", "x"] + [f"o{k}" for k in range(1, n + 1)] + ["y", "loss"]
        rows = []
        for i in range(snap.x.shape[0]):
            row = [str(i + 1), format_tensor(snap.x[i])]
            row += [format_tensor(o[i], decimals=exact) for o in snap.outputs]
            row += [format_tensor(snap.y[i]), format_value(snap.losses[i], decimals=exact)]
            rows.append(row)
        mean = _mean(snap.losses)
        table = _table(headers, rows, markdown)
        sep = "\n\n" if markdown else "\n  "
        return table + f"{sep}mean loss: {format_value(mean, decimals=exact)}"

    def step_lines(self, step: Step, markdown: bool = False) -> list[str]:
        """The backward pass and the update of one step, one line (or table row) per quantity."""
        exact = is_exact(self.model.dtype)
        formulas = self._formulas()
        n = len(self.model.layers)
        many = len(step.samples) > 1
        items: list[tuple[str, str, list[str]]] = []

        def per_sample(a: Any) -> list[str]:
            if many:
                return [f"sample {s + 1}: {format_tensor(a[j], exact)}" for j, s in enumerate(step.samples)]
            return [format_tensor(a[0], exact)]

        for k in range(n + 1, 0, -1):
            d = step.delta(k)
            if d is None or isinstance(d, list):  # not computed, or one δ per model input
                continue
            items.append((f"δ{k}", formulas.get(f"d{k}", ""), per_sample(d)))
        for k, name, t, d in step.time_steps():
            what = f"∂Loss/∂{name[1]}_t" + (" (from o_t and from step t + 1)" if name[1] == "h" else "")
            items.append((f"L{k} {time_step_name(name, t)}", what, per_sample(d)))
        for name, g in step.grads.items():
            items.append((f"δ{name}", formulas.get(f"g{name}", ""), [format_tensor(_flat_if_row(g), exact)]))
        for name, w in step.weights_after.items():
            if name in step.grads:
                items.append(
                    (
                        updated_name(name),
                        formulas.get(f"u{name}", ""),
                        [format_tensor(_flat_if_row(w), exact)],
                    )
                )
        if markdown:
            rows = [[f"`{q}`", f"`{f}`" if f else "", "<br>".join(v)] for q, f, v in items]
            return [_table(["quantity", "formula", "value"], rows, True)]
        width_q = max(len(q) for q, _, _ in items)
        width_f = max(len(f) for _, f, _ in items)
        lines = []
        for q, f, values in items:
            head = f"  {q.ljust(width_q)}  {f.ljust(width_f)}  = "
            lines.append(head + values[0])
            lines.extend(" " * len(head) + v for v in values[1:])
        return lines

    def step_header(self, step: Step) -> str:
        samples = ", ".join(str(s + 1) for s in step.samples)
        word = "sample" if len(step.samples) == 1 else "samples"
        exact = is_exact(self.model.dtype)
        return (
            f"Step {step.index} · epoch {step.epoch} · {word} {samples} · "
            f"batch loss {format_value(step.loss, decimals=exact)}"
        )

    def to_text(self) -> str:
        """Aligned tables (a small model) or one block per step and layer, large tensors
        summarised (see :mod:`learnflux.flow.text`)."""
        from ..flow.text import long_text, needs_long_layout

        if needs_long_layout(self):
            return long_text(self)
        out = [
            self.describe(),
            "",
            "Forward pass before training (inference phase):",
            "",
            self.forward_table(self.initial),
            "",
        ]
        for step in self.steps:
            out.append(self.step_header(step))
            out.extend(self.step_lines(step))
            out.append("")
        out += ["Forward pass after training (inference phase):", "", self.forward_table(self.final)]
        return "\n".join(out) + "\n"

    def to_markdown(self) -> str:
        from ..flow.text import long_markdown, needs_long_layout

        if needs_long_layout(self):
            return long_markdown(self)
        out = [
            "```",
            self.describe(),
            "```",
            "",
            "#### Forward pass before training",
            "",
            self.forward_table(self.initial, markdown=True),
            "",
        ]
        for step in self.steps:
            out += [f"#### {self.step_header(step)}", ""]
            out += self.step_lines(step, markdown=True)
            out.append("")
        out += ["#### Forward pass after training", "", self.forward_table(self.final, markdown=True)]
        return "\n".join(out) + "\n"

    def describe(self) -> str:
        exact = is_exact(self.model.dtype)
        lines = [f"Model ({self.dtype}):"]
        chain = _is_chain(self.model)
        for k, (layer, ins) in enumerate(zip(self.model.layers, self.model._plan, strict=True), start=1):
            reads = "" if chain else " ← " + ", ".join(f"o{j + 1}" if j >= 0 else "x" for j in ins)
            lines.append(f"  L{k} = {layer.summary_name()}{reads}")
        lines.append(f"  Loss = {self.loss.describe()}")
        for name, w in self.initial.weights.items():
            lines.append(f"Start weights {name} = {format_tensor(_flat_if_row(w), exact)}")
        lines.append(
            f"Learning rate α = {format_value(self.lr, decimals=exact)}, batch size "
            f"{self.batch_size}, {self.epochs} epoch{'s' if self.epochs != 1 else ''}"
        )
        return "\n".join(lines)


#: where _mark_inner_lists left an innermost list (a string that JSON writes as "\u0000<n>")
_MARK = re.compile(r'"\\u0000(\d+)"')


_NUMBER_TYPES = (int, float)


def _one_line(v: Any) -> bool:
    """A value an innermost list keeps on its line: a number, or a string without spaces."""
    if isinstance(v, str):
        return not any(c.isspace() for c in v) and "\x00" not in v
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _mark_inner_lists(obj: Any, inner: list[str]) -> Any:
    """A copy of ``obj`` where each non-empty list of numbers or of strings without spaces
    (``["1/200", "-3/11600"]``) is replaced by a marker and written, on one line, into ``inner``."""
    if isinstance(obj, dict):
        return {k: _mark_inner_lists(v, inner) for k, v in obj.items()}
    if isinstance(obj, list):
        if obj and all(type(v) in _NUMBER_TYPES for v in obj):  # the common case, made fast
            text = ", ".join(map(repr, obj))  # repr: JSON's own spelling of finite numbers
            inner.append("[" + text + "]" if "n" not in text else json.dumps(obj))  # nan, inf
            return f"\x00{len(inner) - 1}"
        if obj and all(_one_line(v) for v in obj):
            inner.append(json.dumps(obj, ensure_ascii=False, separators=(", ", ": ")))
            return f"\x00{len(inner) - 1}"
        return [_mark_inner_lists(v, inner) for v in obj]
    return obj


def _mean(values: Sequence[Any]) -> Any:
    total = values[0]
    for v in values[1:]:
        total = total + v
    if isinstance(total, Fraction):
        return total / len(values)
    return type(total)(total / len(values)) if isinstance(total, np.floating) else total / len(values)


def _table(headers: list[str], rows: list[list[str]], markdown: bool) -> str:
    if markdown:
        esc = [[c.replace("|", "\\|") for c in r] for r in rows]
        lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(" --- " for _ in headers) + "|"]
        lines += ["| " + " | ".join(r) + " |" for r in esc]
        return "\n".join(lines)
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    line = "  " + " │ ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    rule = "  " + "─┼─".join("─" * w for w in widths)
    body = ["  " + " │ ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(r.rstrip() for r in [line, rule, *body])


def _formulas(model: Model, loss: Loss, optimizer: Any, lr: Any, batch_size: int) -> dict[str, str]:
    """The article's formula for each δ, δw and ŵ of a chain of Input / Linear / ReLU-like
    layers (empty for what it does not know)."""
    from ..layers.activations import LeakyReLU, ReLU
    from ..layers.input import Input
    from ..layers.linear import Linear
    from ..losses.regression import SquaredError
    from ..optim.sgd import SGD

    f: dict[str, str] = {}
    n = len(model.layers)
    if not _is_chain(model):
        return f
    if isinstance(loss, SquaredError):
        f[f"d{n + 1}"] = f"o{n} − y" if batch_size == 1 else f"(1/n)(o{n} − y)"
    for k, layer in enumerate(model.layers, start=1):
        src = f"δ{k + 1}"
        if isinstance(layer, Input):
            f[f"d{k}"] = src
        elif isinstance(layer, ReLU):
            f[f"d{k}"] = f"{src} if o{k - 1} ≥ 0 else 0" if k > 1 else f"{src} if x ≥ 0 else 0"
        elif isinstance(layer, LeakyReLU):
            f[f"d{k}"] = f"{src} if o{k - 1} ≥ 0 else {layer.negative_slope}·{src}"
        elif isinstance(layer, Linear):
            f[f"d{k}"] = f"{src} · w{k}"
            inp = f"o{k - 1}" if k > 1 else "x"
            f[f"gw{k}"] = f"{src} · {inp}" if batch_size == 1 else f"Σ_batch {src} · {inp}"
            if layer.use_bias:
                f[f"gb{k}"] = src if batch_size == 1 else f"Σ_batch {src}"
    if isinstance(optimizer, SGD):
        for name, _ in model.named_parameters():
            a = article_name(name)
            f[f"u{a}"] = f"{a} − α·δ{a}"
    return f


# ---------------------------------------------------------------------------------- one call
def record(
    model: Model,
    loss: Loss,
    optimizer: Any,
    x: Any,
    y: Any,
    batch_size: int = 1,
    epochs: int = 1,
    shuffle: bool = False,
    seed: Optional[int] = None,
    lr: Any = None,
    steps: Optional[int] = None,
) -> Trace:
    """Train ``model`` on ``(x, y)`` and record every step.

    Batches follow the dataset order (``shuffle=False``, the article's setting), the last one
    possibly smaller; with ``shuffle=True`` each epoch uses a new permutation drawn from
    ``np.random.default_rng(seed)``. ``lr`` is only reported (default: the optimizer's first
    group's ``lr``). ``steps``: stop after that many steps (the epochs go on until then, so
    ``record(..., batch_size=len(x), steps=3)`` takes three steps on the same batch).
    Returns a :class:`Trace` with the forward tables before and after training.
    """
    if int(batch_size) < 1:
        raise ConfigError(f"record: batch_size must be at least 1, got {batch_size}")
    if int(epochs) < 1:
        raise ConfigError(f"record: epochs must be at least 1, got {epochs}")
    if steps is not None and int(steps) < 1:
        raise ConfigError(f"record: steps must be at least 1, got {steps}")
    if not isinstance(model, Model) or not model._single_input:
        raise ConfigError(
            "record: expects a model with one input (lf.Sequential or a single-input lf.Model); "
            "for several inputs, call lf.Recorder(model, loss, optimizer).step(xs, y) in a loop"
        )
    x_arr = x if isinstance(x, np.ndarray) else np.asarray(x)
    y_arr = y if isinstance(y, np.ndarray) else np.asarray(y)
    if x_arr.shape[0] != y_arr.shape[0]:
        raise ShapeError(f"record: x has {x_arr.shape[0]} samples but y has {y_arr.shape[0]}")
    if lr is None and optimizer is not None:
        lr = optimizer.param_groups[0].get("lr")
    if lr is not None:  # reported in the model's arithmetic ("1e-7" is 1/10^7 in exact mode)
        lr = scalar_like(lr, model.dtype) if is_exact(model.dtype) else float(lr)
    model.train()
    rec = Recorder(model, loss, optimizer)
    initial = rec.snapshot(x_arr, y_arr)
    rng = np.random.default_rng(seed)
    n = x_arr.shape[0]
    if steps is not None:
        epochs = -(-int(steps) // -(-n // int(batch_size)))  # enough epochs for that many steps
    for epoch in range(1, int(epochs) + 1):
        order = rng.permutation(n) if shuffle else np.arange(n)
        for start in range(0, n, int(batch_size)):
            if steps is not None and len(rec.steps) == int(steps):
                break
            idx = order[start : start + int(batch_size)]
            rec.step(x_arr[idx], y_arr[idx], epoch=epoch, samples=idx.tolist())
    final = rec.snapshot(x_arr, y_arr)
    return Trace(model, loss, optimizer, lr, int(batch_size), int(epochs), initial, rec.steps, final)
