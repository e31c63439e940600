"""The learning-flow page: a trace as one self-contained HTML file.

The page opens from disk in any browser (no network, no server: its script, style and data are
inline). It shows the model as its graph and, for the step and the sample chosen with a slider
and a picker, each layer ``L^k``'s forward output ``o^k`` and the learning flow that arrives at
it, ``δ^(k+1) = ∂Loss/∂o^k`` (feature maps as grids of images: a sequential colour map for
``o^k`` ≥ 0, a diverging one, centred on 0, for signed values and every δ, each with its scale),
for a recurrent layer its states ``h_t`` and the learning flow ``δh_t`` at every time step (one
row per step), then each weight ``w``, its gradient ``δw`` and the update ``ŵ − w`` as heat maps
and histograms,
and the loss step by step. Exact traces show their fractions exactly.

The data travels as JSON inside the page: float tensors as base64 little-endian float32 /
float64 arrays (4 or 8 bytes a value), exact ones as strings ``"p/q"``. The hand-written script
(``page.js`` beside this module) decodes and draws them on canvases.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any, Optional

import numpy as np

from ..training.trace import Trace, format_value, to_jsonable
from .graph import graph_nodes
from .text import update_of

__all__ = ["page_data", "render_page", "write_page"]

_HERE = Path(__file__).resolve().parent


class _Tensors:
    """The page's tensor table: each distinct array once, referred to by its position."""

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []
        self._seen: dict[int, int] = {}

    def add(self, a: Any) -> Optional[int]:
        if a is None:
            return None
        if id(a) in self._seen:
            return self._seen[id(a)]
        arr = np.asarray(a)
        item: dict[str, Any] = {"shape": [int(s) for s in arr.shape]}
        if arr.dtype == object:
            item["exact"] = [str(v) for v in arr.reshape(-1)]
        else:
            kind = "f64" if arr.dtype == np.float64 else "f32"
            data = np.ascontiguousarray(arr, dtype="<f8" if kind == "f64" else "<f4")
            item[kind] = base64.b64encode(data.tobytes()).decode("ascii")
        self.items.append(item)
        self._seen[id(a)] = len(self.items) - 1
        return len(self.items) - 1


def _number(v: Any) -> Any:
    """A loss or a learning rate for the page: a JSON number, or ``"p/q"`` when exact."""
    return to_jsonable(v)


def page_data(trace: Trace, title: Optional[str] = None) -> dict[str, Any]:
    """Everything the page shows, as a JSON-ready dict (tensors by index into ``tensors``)."""
    tensors = _Tensors()
    keep: list[Any] = []  # arrays made here must stay alive while _Tensors keys them by id

    def add(a: Any) -> Optional[int]:
        keep.append(a)
        return tensors.add(a)

    steps = []
    for step in trace.steps:
        updates = {}
        for name in step.grads:
            if name in step.weights_after:
                updates[name] = add(update_of(step.weights_after[name], step.weights_before[name]))
        steps.append(
            {
                "step": step.index,
                "epoch": step.epoch,
                "samples": list(step.samples),
                "loss": _number(step.loss),
                "o": [add(o) for o in step.outputs],
                "d": [None if isinstance(d, list) else add(d) for d in step.deltas],
                "g": {name: add(g) for name, g in step.grads.items()},
                "w": {name: add(w) for name, w in step.weights_before.items()},
                "u": updates,
                "wa": {name: add(w) for name, w in step.weights_after.items()},
                # a recurrent layer's time steps: {k: {"h_l0": (batch, T, H), "dh_l0": ...}}
                "time": {
                    str(k): {name: add(a) for name, a in values.items()}
                    for k, values in step.through_time.items()
                },
            }
        )
    # weights before step s+1 are those after step s: one array, not two
    for prev, nxt in zip(trace.steps, trace.steps[1:], strict=False):
        for name in list(steps[nxt.index - 1]["w"]):
            same = prev.weights_after.get(name)
            if same is not None and np.array_equal(np.asarray(same), np.asarray(nxt.weights_before[name])):
                steps[nxt.index - 1]["w"][name] = steps[prev.index - 1]["wa"][name]
    tensors.items = _drop_unused(tensors.items, steps)
    extra = trace.extra
    samples = extra.get("samples") or [{"index": i} for i in range(trace.initial.x.shape[0])]
    labels = []
    for pos, s in enumerate(samples):
        y = trace.initial.y[pos]
        labels.append(
            {
                "pos": pos,
                "index": s.get("index", pos),
                "target": to_jsonable(np.asarray(y)),
            }
        )
    exact = trace.dtype == "exact"
    optimizer = type(trace.optimizer).__name__ if trace.optimizer is not None else "none"
    return {
        "title": title or "learnflux · the learning flow",
        "dtype": trace.dtype,
        "source": extra.get("source", ""),
        "data": extra.get("data", ""),
        "lr": None if trace.lr is None else _number(trace.lr),
        "lr_text": None if trace.lr is None else format_value(trace.lr, decimals=exact),
        "optimizer": optimizer,
        "loss_function": trace.loss.describe(),
        "batch_size": trace.batch_size,
        "graph": graph_nodes(trace.model),
        "out_shapes": [[int(s) for s in o.shape[1:]] for o in trace.initial.outputs],
        "samples": labels,
        "steps": steps,
        "initial": {"losses": [_number(v) for v in trace.initial.losses]},
        "final": {"losses": [_number(v) for v in trace.final.losses]},
        "tensors": tensors.items,
    }


def _drop_unused(items: list[dict[str, Any]], steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Remove the tensors no step refers to any more (after the de-duplication) and renumber."""
    used = set()
    for s in steps:
        used.update(t for t in s["o"] + s["d"] if t is not None)
        for key in ("g", "w", "u", "wa"):
            used.update(s[key].values())
        for values in s["time"].values():
            used.update(values.values())
    order = sorted(used)
    new = {old: i for i, old in enumerate(order)}
    for s in steps:
        s["o"] = [None if t is None else new[t] for t in s["o"]]
        s["d"] = [None if t is None else new[t] for t in s["d"]]
        for key in ("g", "w", "u", "wa"):
            s[key] = {k: new[t] for k, t in s[key].items()}
        s["time"] = {k: {name: new[t] for name, t in v.items()} for k, v in s["time"].items()}
    return [items[i] for i in order]


def render_page(trace: Trace, title: Optional[str] = None) -> str:
    """The page as one string of HTML (script, style and data inline)."""
    data = page_data(trace, title)
    payload = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    payload = payload.replace("</", "<\\/")  # never closes the <script> element early
    css = (_HERE / "page.css").read_text(encoding="utf-8")
    js = (_HERE / "page.js").read_text(encoding="utf-8")
    name = html.escape(data["title"])
    return (
        "<!doctype html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{name}</title>\n<style>\n{css}</style>\n</head>\n<body>\n"
        '<div id="app"><noscript>This page draws the learning flow with JavaScript; '
        "enable it to see the model.</noscript></div>\n"
        f'<script id="trace-data" type="application/json">{payload}</script>\n'
        f"<script>\n{js}</script>\n</body>\n</html>\n"
    )


def write_page(trace: Trace, path: Any, title: Optional[str] = None) -> int:
    """Write the page to ``path`` (atomically); returns its size in bytes."""
    from ..files.io import atomic_write

    text = render_page(trace, title).encode("utf-8")
    atomic_write(path, lambda fh: fh.write(text))
    return len(text)
