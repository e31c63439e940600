"""What the model looks at, with the framework's own backward pass.

**Saliency.** The learning flow that reaches the data: for a sample ``x`` and a class ``c``,
start the backward pass with ``δ^(n+1) = e_c`` (1 for the class's output ``o^n_c``, 0 elsewhere)
instead of a loss's δ; what arrives at the input is ``δ^1 = ∂o^n_c/∂x``, how much each pixel
would move that class's score. The saliency map is ``max over channels |δ^1|``.

**Maximal activation.** Gradient ascent on the input: start from a plain image, and repeat
``x ← clip(x + η·(ĝ − λ·x))`` where ``ĝ`` is ``∂a/∂x`` for the chosen activation ``a`` (a class's
output ``o^n_c``, or the mean of channel ``c`` of ``o^k``) taken on a randomly shifted copy of
the image (jitter) and smoothed with a Gaussian blur, then scaled to unit root-mean-square; ``λ``
is a weight decay on the image and the clip keeps ``x`` in the data's range. A step is taken
only if it raises ``a`` (else ``η`` is halved and the step tried again; a direction that raises
nothing is dropped and the next iteration draws another shift), so the activation rises at
every step taken.

Both run in the inference behaviour of the model (what ``predict`` computes): batch
normalisation uses its running statistics (it becomes the per-channel map ``o = s·x + t``, here a
1×1 convolution or a diagonal linear layer with those weights) and dropout lets everything
through. They work on a copy of the model (:func:`inference_twin`): the model's weights and
gradients are left alone.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence, Union

import numpy as np

from .core.model import Model
from .errors import ConfigError, ShapeError
from .layers import BatchNorm1d, BatchNorm2d, Conv2d, Dropout, Linear

__all__ = ["Maximized", "inference_twin", "maximize", "saliency", "saliency_map"]


# ---------------------------------------------------------------------------------- the twin
def _frozen_norm(layer: Any) -> Any:
    """A batch normalisation in its inference phase, ``o = s·x + t`` per channel with
    ``s = γ/√(running_var + ε)`` and ``t = β − running_mean·s``, as a layer whose backward pass
    is the framework's: a depthwise 1×1 Conv2d (BatchNorm2d) or a diagonal Linear (BatchNorm1d)."""
    c = layer.num_features
    scale = 1.0 / np.sqrt(np.asarray(layer.running_var, dtype=np.float64) + layer.eps)
    gamma = np.asarray(layer.weight.value, dtype=np.float64) if layer.affine else np.ones(c)
    beta = np.asarray(layer.bias.value, dtype=np.float64) if layer.affine else np.zeros(c)
    s = gamma * scale
    t = beta - np.asarray(layer.running_mean, dtype=np.float64) * s
    if isinstance(layer, BatchNorm2d):
        new = Conv2d(c, c, 1, groups=c, bias=True).astype(layer.dtype)
        new.weight.value = s.reshape(c, 1, 1, 1)
    elif isinstance(layer, BatchNorm1d):
        new = Linear(c, c, bias=True).astype(layer.dtype)
        new.weight.value = np.diag(s)
    else:  # pragma: no cover - only the two batch norms are frozen
        raise ConfigError(f"{layer.describe()}: no frozen form")
    new.bias.value = t
    return new


def inference_twin(model: Any, upto: Optional[int] = None) -> Model:
    """A copy of ``model`` that computes in the training phase (so its backward pass runs) what
    the model computes in the inference phase: every batch normalisation with running statistics
    frozen into a per-channel affine layer, every dropout's ``p`` set to 0.

    ``upto = k`` keeps layers ``L1 … Lk`` only (``o^k`` becomes the output), for the activations
    of an inner layer."""
    if not isinstance(model, Model):
        raise ConfigError(f"expected a model (lf.Sequential or lf.Model), got {type(model).__name__}")
    twin = copy.deepcopy(model)
    _freeze(twin)
    if upto is not None:
        k = int(upto)
        if not 1 <= k <= len(twin.layers):
            raise ConfigError(f"layer {upto}: the model has layers 1 to {len(twin.layers)}")
        twin._build(twin.layers[:k], list(twin._plan[:k]), twin._single_input)
    twin.astype(model.dtype)
    twin.set_phase(True)
    return twin


def _freeze(model: Model) -> None:
    layers = list(model.layers)
    for i, layer in enumerate(layers):
        if isinstance(layer, Model):
            _freeze(layer)
        elif isinstance(layer, (BatchNorm1d, BatchNorm2d)) and layer.track_running_stats:
            layers[i] = _frozen_norm(layer)
        elif isinstance(layer, Dropout):
            layer.p = 0.0
    model._build(layers, list(model._plan), model._single_input)


# ---------------------------------------------------------------------------------- saliency
def _as_batch(model: Model, x: Any) -> np.ndarray:
    arr = np.asarray(x)
    first = model.layers[0]
    shape = getattr(first, "shape", None)
    if shape is not None and all(s is not None for s in shape) and tuple(arr.shape) == tuple(shape):
        arr = arr[None]  # one sample
    return arr


def _onehot(out: np.ndarray, index: Union[int, Sequence[int]]) -> np.ndarray:
    d = np.zeros_like(out)
    idx = np.broadcast_to(np.asarray(index, dtype=np.int64), (out.shape[0],))
    if out.ndim != 2:
        raise ShapeError(f"saliency: the model's output has shape {out.shape[1:]} per sample, not scores")
    if np.any(idx < 0) or np.any(idx >= out.shape[1]):
        raise ConfigError(
            f"class {index}: the model has {out.shape[1]} outputs, numbered 0 to {out.shape[1] - 1}"
        )
    d[np.arange(out.shape[0]), idx] = 1
    return d


def saliency(model: Any, x: Any, target: Union[None, int, Sequence[int]] = None) -> np.ndarray:
    """``δ^1 = ∂o^n_c/∂x`` for each sample of ``x`` (or one sample without the batch axis): the
    backward pass started from ``e_c`` on the class ``target`` (an int, one per sample, or None:
    the class the model predicts). Returns an array of ``x``'s shape (with the batch axis)."""
    twin = inference_twin(model)
    xb = _as_batch(model, x)
    out = twin.forward(xb)
    classes = np.argmax(np.asarray(out, dtype=np.float64), axis=1) if target is None else target
    return np.asarray(twin.backward(_onehot(out, classes)))


def saliency_map(delta1: Any) -> np.ndarray:
    """``max over channels |δ^1|``: ``(n, C, H, W)`` → ``(n, H, W)``."""
    d = np.abs(np.asarray(delta1, dtype=np.float64))
    if d.ndim != 4:
        raise ShapeError(f"saliency_map: expects δ1 of shape (n, channels, height, width), got {d.shape}")
    return d.max(axis=1)


# ---------------------------------------------------------------------------------- maximal activation
@dataclass
class Maximized:
    """The result of :func:`maximize`: the ``image`` (one sample, the model's input shape), the
    activation after each step taken (``history[0]``: the start image's; it rises at every
    step), what was maximised (``what``: ``"class 3"`` or ``"channel 5 of o4"``) and how many
    candidate steps were evaluated (``steps_tried``)."""

    image: np.ndarray
    history: list[float] = field(default_factory=list)
    what: str = ""
    steps_tried: int = 0


def _blur(g: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur over the last two axes (separable, edges reflected)."""
    if sigma <= 0 or g.ndim < 2:
        return g
    r = max(1, int(np.ceil(2 * sigma)))
    t = np.arange(-r, r + 1, dtype=np.float64)
    k = np.exp(-(t**2) / (2 * sigma**2))
    k /= k.sum()
    out = g.astype(np.float64)
    for axis in (-2, -1):
        n = out.shape[axis]
        pad = [(0, 0)] * out.ndim
        pad[axis] = (r, r)
        p = np.pad(out, pad, mode="reflect" if n > r else "edge")
        out = sum(k[i] * np.take(p, range(i, i + n), axis=axis) for i in range(2 * r + 1))
    return out


def maximize(
    model: Any,
    target: Union[int, tuple[int, int]],
    steps: int = 200,
    lr: float = 0.05,
    weight_decay: float = 0.02,
    jitter: int = 1,
    blur: float = 0.5,
    value_range: Optional[tuple[float, float]] = (0.0, 1.0),
    start: Any = None,
    seed: int = 0,
    score: str = "logit",
) -> Maximized:
    """Gradient ascent on the input that raises one activation (see the module's docstring).

    ``target``: a class ``c`` (the output ``o^n_c``) or ``(k, c)``, channel ``c`` of layer
    ``L^k``'s output (its mean over the positions). ``lr``: the step, as a fraction of the data
    range, in units of the gradient's root-mean-square; ``weight_decay``: ``λ``; ``jitter``:
    the largest random shift in pixels; ``blur``: the Gaussian's σ in pixels (0: none);
    ``value_range``: the data's (min, max), the clip (None: no clip); ``start``: the first
    image (default: the low end of the range plus 5% noise from ``seed``); ``score``: for a
    class, ``"logit"`` (its output ``o^n_c``) or ``"log_softmax"`` (``log p_c``, which also
    pushes the other classes down)."""
    if score not in ("logit", "log_softmax"):
        raise ConfigError(f"maximize: score must be 'logit' or 'log_softmax', got {score!r}")
    inner = isinstance(target, tuple)  # a channel of o^k: its value (or mean), never a softmax
    if inner:
        k, channel = int(target[0]), int(target[1])
        twin, what = inference_twin(model, upto=k), f"channel {channel} of o{k}"
    else:
        twin, channel, what = inference_twin(model), int(target), f"class {int(target)}"
    shape = getattr(model.layers[0], "shape", None)
    if start is None and (shape is None or any(s is None for s in shape)):
        raise ConfigError("maximize: the model has no Input layer with a known shape; pass start=")
    rng = np.random.default_rng(seed)
    lo, hi = value_range if value_range is not None else (None, None)
    span = (hi - lo) if value_range is not None else 1.0
    if start is None:
        base = 0.0 if lo is None else lo
        x = base + 0.05 * span * rng.random((1, *shape))
    else:
        x = np.array(_as_batch(model, start), dtype=np.float64)
    dtype = np.float64 if twin.dtype == np.float64 else np.float32

    def activation_and_grad(img: np.ndarray, with_grad: bool) -> tuple[float, Optional[np.ndarray]]:
        out = twin.forward(img.astype(dtype))
        if out.ndim == 2:
            if not 0 <= channel < out.shape[1]:
                raise ConfigError(f"{what}: the output has {out.shape[1]} values, numbered from 0")
            d = np.zeros_like(out)
            d[0, channel] = 1
            if score == "log_softmax" and not inner:  # log p_c = o_c − log Σ exp o_j; δ = e_c − softmax(o)
                z = np.asarray(out[0], dtype=np.float64)
                z = z - z.max()
                p = np.exp(z) / np.exp(z).sum()
                value = float(z[channel] - np.log(np.exp(z).sum()))
                d[0] -= p.astype(d.dtype)
            else:
                value = float(out[0, channel])
        else:
            if not 0 <= channel < out.shape[1]:
                raise ConfigError(f"{what}: o{k} has {out.shape[1]} channels, numbered from 0")
            m = int(np.prod(out.shape[2:]))
            value = float(np.asarray(out[0, channel], dtype=np.float64).mean())
            d = np.zeros_like(out)
            d[0, channel] = 1.0 / m
        if not with_grad:
            twin.clear_cache()
            return value, None
        return value, np.asarray(twin.backward(d), dtype=np.float64)

    current, _ = activation_and_grad(x, False)
    result = Maximized(x[0].astype(dtype), [current], what)
    eta = float(lr) * span
    for _ in range(int(steps)):
        dy, dx = rng.integers(-jitter, jitter + 1, size=2) if jitter else (0, 0)
        shifted = np.roll(x, (int(dy), int(dx)), axis=(-2, -1)) if x.ndim >= 3 else x
        _, g = activation_and_grad(shifted, True)
        if x.ndim >= 3:
            g = np.roll(g, (-int(dy), -int(dx)), axis=(-2, -1))
        g = _blur(g, blur)
        g /= np.sqrt(np.mean(g**2)) + 1e-12
        direction = g - weight_decay * x
        for _ in range(8):  # a step that does not raise the activation is halved, then retried
            result.steps_tried += 1
            candidate = x + eta * direction
            if value_range is not None:
                candidate = np.clip(candidate, lo, hi)
            value, _ = activation_and_grad(candidate, False)
            if value > current:
                x, current = candidate, value
                result.history.append(current)
                eta = min(eta * 1.5, float(lr) * span)
                break
            eta /= 2
        else:  # this direction (this jitter) raises nothing: no step; the next draws another
            eta = float(lr) * span
    result.image = x[0].astype(dtype)
    return result
