"""Classification losses: cross-entropy on logits (fused with softmax) and binary cross-entropy
on logits (fused with the sigmoid). Both take **logits** (the raw scores of the last Linear
layer), never probabilities: fusing the normalisation into the loss is what keeps them stable
and makes their δ a simple difference."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import DtypeError, ExactnessError, IndexRangeError, ShapeError
from .base import Loss, as_output, check_batch, check_finite, check_probabilities, check_reduction


def _float_output(loss: Loss, output: Any) -> np.ndarray:
    out = as_output(loss, output)
    if out.dtype == object:
        raise ExactnessError(
            f"{loss.describe()} cannot run in exact arithmetic (it needs exp and log, whose "
            "results are not fractions); use float32 or float64"
        )
    return out


class CrossEntropyLoss(Loss):
    """Softmax cross-entropy on logits, PyTorch's ``CrossEntropyLoss``.

    For logits ``x`` of one sample (``C`` classes) and a target distribution ``q``::

        log p_c = x_c − m − ln Σ_k e^(x_k − m)        (log-softmax, m = max_k x_k: no overflow)
        loss    = −Σ_c q_c · log p_c

    The target is either **class indices** (integers in ``[0, C)``, ``q`` = one-hot) or **class
    probabilities** (floats, the shape of the logits, each in ``[0, 1]`` and summing to 1 over
    the classes within 1e-3: other values are a ``DataError``). With ``label_smoothing = ε`` the target
    becomes ``q ← (1 − ε)·q + ε/C``.

    Backward, fused with the softmax (no Jacobian needed)::

        δ = (p · Σ_c q_c − q) / n        (= (p − q)/n when q sums to 1, always the case for indices)

    with ``p = softmax(x)`` and ``n`` the number of samples for ``reduction="mean"`` (``n = 1`` for
    ``"sum"``). The 1/n of the mean enters once, here (docs/conventions.md, 'Loss and batches').

    Args:
        reduction: ``"mean"`` (default: the mean over the samples) or ``"sum"``.
        label_smoothing: ``ε`` in ``[0, 1]`` (default 0).

    Shapes:
        * logits ``(N, C)`` with target ``(N,)`` integers (``(N, 1)`` is also accepted) or
          ``(N, C)`` probabilities;
        * logits ``(N, C, d1, ...)`` (e.g. per-pixel classes) with target ``(N, d1, ...)``
          integers or ``(N, C, d1, ...)`` probabilities; a "sample" is then one position, so the
          mean divides by ``N·d1·…``, as PyTorch.

    Not exact (exp and log).
    """

    def __init__(self, reduction: str = "mean", label_smoothing: float = 0.0) -> None:
        super().__init__()
        self.reduction = check_reduction("CrossEntropyLoss", reduction)
        label_smoothing = float(label_smoothing)
        if not 0.0 <= label_smoothing <= 1.0:
            from ..errors import ConfigError

            raise ConfigError(f"CrossEntropyLoss: label_smoothing must be in [0, 1], got {label_smoothing}")
        self.label_smoothing = label_smoothing

    # ------------------------------------------------------------------ targets
    def _indices(self, out: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Check class-index targets; return them with a class axis of size 1 (for
        ``take_along_axis``)."""
        expected = (out.shape[0], *out.shape[2:])
        if y.shape != expected:
            if out.ndim == 2 and y.shape == (out.shape[0], 1):
                y = y.reshape(-1)
            else:
                raise ShapeError(
                    f"{self.describe()}: logits of shape {tuple(out.shape)} need integer class "
                    f"labels of shape {expected} (or class probabilities of shape "
                    f"{tuple(out.shape)}), got labels of shape {tuple(y.shape)}"
                )
        c = out.shape[1]
        if y.size:
            lo, hi = int(y.min()), int(y.max())
            if lo < 0 or hi >= c:
                bad = lo if lo < 0 else hi
                raise IndexRangeError(
                    f"{self.describe()}: class label {bad} is out of range for {c} classes "
                    f"(labels must be in [0, {c - 1}])"
                )
        return np.expand_dims(y.astype(np.intp, copy=False), 1)

    def _probabilities(self, out: np.ndarray, y: np.ndarray) -> np.ndarray:
        if y.shape != out.shape:
            raise ShapeError(
                f"{self.describe()}: class probabilities must have the shape of the logits "
                f"{tuple(out.shape)}, got {tuple(y.shape)} (integer class labels would have shape "
                f"{(out.shape[0], *out.shape[2:])})"
            )
        q = y.astype(out.dtype, copy=False)
        check_probabilities(self, q, axis=1)
        return q

    # ------------------------------------------------------------------ the loss
    def forward(self, output: np.ndarray, target: Any) -> float:
        out = _float_output(self, output)
        if out.ndim < 2:
            raise ShapeError(
                f"{self.describe()}: expects logits of shape (batch, classes) or "
                f"(batch, classes, d1, ...), got {tuple(out.shape)}"
            )
        check_batch(self, out)
        check_finite(self, out, "model output")
        y = target if isinstance(target, np.ndarray) else np.asarray(target)
        kind = y.dtype.kind
        if kind in "iu":
            labels = self._indices(out, y)
        elif kind == "f":
            if y.shape != out.shape and y.shape in ((out.shape[0], *out.shape[2:]), (out.shape[0], 1)):
                raise DtypeError(
                    f"{self.describe()}: class labels must be integers, got an array of dtype "
                    f"{y.dtype} and shape {tuple(y.shape)} (convert with .astype(np.int64); "
                    f"floats are read as class probabilities of shape {tuple(out.shape)})"
                )
            labels = None
            q = self._probabilities(out, y)
        else:
            raise DtypeError(
                f"{self.describe()}: the target must be integer class labels or float class "
                f"probabilities, got an array of dtype {y.dtype}"
            )
        dt = out.dtype
        c = out.shape[1]
        eps = self.label_smoothing
        n = out.size // c if c else 0  # samples (positions) the mean runs over
        if n == 0:
            raise ShapeError(f"{self.describe()}: empty batch {tuple(out.shape)}")

        shifted = out - out.max(axis=1, keepdims=True)  # x − m
        p = np.exp(shifted)
        total = p.sum(axis=1, keepdims=True)
        log_total = np.log(total)  # ln Σ e^(x − m)
        p /= total  # softmax

        if labels is not None:
            # −log p_y = ln Σ − (x_y − m); with smoothing, add ε·(−(1/C) Σ_c log p_c)
            per_sample = log_total - np.take_along_axis(shifted, labels, axis=1)
            if eps:
                per_sample *= dt.type(1.0 - eps)
                smooth = log_total - shifted.mean(axis=1, keepdims=True)
                smooth *= dt.type(eps)
                per_sample += smooth
            value = float(per_sample.sum(dtype=np.float64))
            delta = p
            if eps:
                delta -= dt.type(eps / c)
            if out.ndim == 2:
                delta[np.arange(out.shape[0]), labels[:, 0]] -= dt.type(1.0 - eps)
            else:
                picked = np.take_along_axis(delta, labels, axis=1)
                picked -= dt.type(1.0 - eps)
                np.put_along_axis(delta, labels, picked, axis=1)
        else:
            if eps:
                q = q * dt.type(1.0 - eps)
                q += dt.type(eps / c)
            shifted -= log_total  # log p
            shifted *= q
            value = -float(shifted.sum(dtype=np.float64))
            q_sum = q.sum(axis=1, keepdims=True)
            delta = p
            delta *= q_sum
            delta -= q
        if self.reduction == "mean":
            delta *= dt.type(1.0 / n)
            value /= n
        self._delta = delta
        return value

    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = {}
        if self.reduction != "mean":
            config["reduction"] = self.reduction
        if self.label_smoothing:
            config["label_smoothing"] = self.label_smoothing
        return config


class BCEWithLogitsLoss(Loss):
    """Binary cross-entropy on logits, PyTorch's ``BCEWithLogitsLoss``: for each element, a logit
    ``x`` and a target ``y ∈ [0, 1]`` (the probability of the positive class)::

        loss = −[y·ln σ(x) + (1 − y)·ln(1 − σ(x))] = max(x, 0) − x·y + ln(1 + e^(−|x|))

    The right-hand form never overflows (``e^(−|x|) ≤ 1``). The value is the mean over **all**
    ``N`` elements (``reduction="mean"``) or their sum (``"sum"``).

    Backward, fused with the sigmoid: ``δ = (σ(x) − y)/N`` (``σ(x) − y`` for ``"sum"``), with
    ``σ(x) = ½(1 + tanh(x/2))``.

    Args:
        reduction: ``"mean"`` (default) or ``"sum"``.

    Shapes: logits ``(batch, ...)`` and targets of the same shape (``(batch,)`` is accepted for
    logits ``(batch, 1)``); integer or boolean 0/1 targets are converted to the logits' dtype.
    Not exact (exp and log).
    """

    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        self.reduction = check_reduction("BCEWithLogitsLoss", reduction)

    def forward(self, output: np.ndarray, target: Any) -> float:
        out = _float_output(self, output)
        check_batch(self, out)
        check_finite(self, out, "model output")
        y = self.match_target(out, target)
        check_probabilities(self, y, axis=None)
        dt = out.dtype
        # max(x, 0) − x·y + ln(1 + e^(−|x|))
        soft = np.abs(out)
        np.negative(soft, out=soft)
        np.exp(soft, out=soft)
        np.log1p(soft, out=soft)
        soft += np.maximum(out, 0)
        soft -= out * y
        value = float(soft.sum(dtype=np.float64))
        delta = np.multiply(out, dt.type(0.5))
        np.tanh(delta, out=delta)
        delta += 1
        delta *= dt.type(0.5)  # σ(x)
        delta -= y
        if self.reduction == "mean":
            n = max(out.size, 1)
            delta *= dt.type(1.0 / n)
            value /= n
        self._delta = delta
        return value

    def get_config(self) -> dict[str, Any]:
        return {} if self.reduction == "mean" else {"reduction": self.reduction}


__all__ = ["BCEWithLogitsLoss", "CrossEntropyLoss"]
