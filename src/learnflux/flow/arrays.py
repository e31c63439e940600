"""A trace as a NumPy ``.npz`` archive: every value, for your own analysis.

Layout (read it with ``np.load(path)``; no pickle):

* ``__trace__``: UTF-8 JSON bytes with what is not a tensor: ``dtype``, ``lr``, ``batch_size``,
  ``layers``, ``graph``, ``loss_function`` and, per step, ``step``, ``epoch``, ``samples`` and
  ``loss`` (``json.loads(archive["__trace__"].tobytes())``);
* ``x``, ``y``: the data the trace trained on;
* ``initial/oK``, ``final/oK``: ``o^K`` of every sample in the inference phase, before and after
  training; ``initial/losses``, ``final/losses``: each sample's loss; ``initial/w2``,
  ``final/w2``...: the weights (article names);
* ``stepS/oK``: ``o^K`` of step ``S``; ``stepS/dK``: ``δ^K``; ``stepS/grad/w2``: ``δw2``;
  ``stepS/after/w2``: ``ŵ2``; ``stepS/time/L2/dh_l0``: a recurrent layer's ``δh_t`` at every
  time step, ``(batch, T, H)`` (``Step.through_time``: also ``h_l0``, and ``c_l0``, ``dc_l0``
  for an LSTM).

Exact values (Fractions) are stored as strings ``"p/q"``, as ``lf.save`` does.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from ..files.io import atomic_write
from ..training.trace import Trace, to_jsonable

__all__ = ["save_npz", "trace_arrays"]


def _plain(a: Any) -> np.ndarray:
    arr = np.asarray(a)
    if arr.dtype == object:
        return np.array([str(v) for v in arr.reshape(-1)], dtype=str).reshape(arr.shape)
    return np.ascontiguousarray(arr).reshape(arr.shape)


def trace_arrays(trace: Trace) -> dict[str, np.ndarray]:
    """Every tensor of ``trace`` by the name it has in the ``.npz`` archive."""
    out: dict[str, np.ndarray] = {"x": _plain(trace.initial.x), "y": _plain(trace.initial.y)}
    for tag, snap in (("initial", trace.initial), ("final", trace.final)):
        for k, o in enumerate(snap.outputs, start=1):
            out[f"{tag}/o{k}"] = _plain(o)
        out[f"{tag}/losses"] = _plain(
            np.array(list(snap.losses), dtype=object if trace.dtype == "exact" else None)
        )
        for name, w in snap.weights.items():
            out[f"{tag}/{name}"] = _plain(w)
    for step in trace.steps:
        tag = f"step{step.index}"
        for k, o in enumerate(step.outputs, start=1):
            out[f"{tag}/o{k}"] = _plain(o)
        for k, d in enumerate(step.deltas, start=1):
            if isinstance(d, list):
                for j, dj in enumerate(d, start=1):
                    if dj is not None:
                        out[f"{tag}/d{k}_x{j}"] = _plain(dj)
            elif d is not None:
                out[f"{tag}/d{k}"] = _plain(d)
        for k, values in step.through_time.items():
            for name, a in values.items():
                out[f"{tag}/time/L{k}/{name}"] = _plain(a)
        for name, g in step.grads.items():
            out[f"{tag}/grad/{name}"] = _plain(g)
        for name, w in step.weights_after.items():
            out[f"{tag}/after/{name}"] = _plain(w)
    return out


def _meta(trace: Trace) -> dict[str, Any]:
    doc = {
        "format": "learnflux-trace",
        "version": 1,
        "dtype": trace.dtype,
        "lr": to_jsonable(trace.lr),
        "batch_size": trace.batch_size,
        "epochs": trace.epochs,
        "layers": [layer.summary_name() for layer in trace.model.layers],
        "graph": trace._graph(),
        "loss_function": trace.loss.describe(),
        "steps": [
            {"step": s.index, "epoch": s.epoch, "samples": list(s.samples), "loss": to_jsonable(s.loss)}
            for s in trace.steps
        ],
    }
    doc.update({k: v for k, v in trace.extra.items() if k != "page"})
    return doc


def save_npz(trace: Trace, path: Any) -> None:
    """Write :func:`trace_arrays` and the ``__trace__`` header to ``path`` (atomically)."""
    arrays = trace_arrays(trace)
    arrays["__trace__"] = np.frombuffer(
        json.dumps(_meta(trace), ensure_ascii=False).encode("utf-8"), np.uint8
    )
    atomic_write(path, lambda fh: np.savez_compressed(fh, **arrays))
