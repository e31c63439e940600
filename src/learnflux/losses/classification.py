"""Classification losses: cross-entropy on logits (fused with softmax), the negative
log-likelihood of log-probabilities, and binary cross-entropy on logits (fused with the
sigmoid). Cross-entropy and BCE take **logits** (the raw scores of the last Linear layer), never
probabilities: fusing the normalisation into the loss is what keeps them stable and makes their
δ a simple difference. ``NLLLoss`` takes log-probabilities (the output of a ``LogSoftmax``)."""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from ..errors import ConfigError, DataError, DtypeError, ExactnessError, IndexRangeError, ShapeError
from .base import Loss, as_output, check_batch, check_finite, check_probabilities, check_reduction

IGNORE_INDEX = -100  # PyTorch's default ``ignore_index``: a label no class has


def _float_output(loss: Loss, output: Any) -> np.ndarray:
    out = as_output(loss, output)
    if out.dtype == object:
        raise ExactnessError(
            f"{loss.describe()} cannot run in exact arithmetic (it needs exp and log, whose "
            "results are not fractions); use float32 or float64"
        )
    return out


# ---------------------------------------------------------------------------- shared checks
def class_weight(loss_name: str, weight: Any) -> Optional[np.ndarray]:
    """A ``weight=`` argument checked: None, or one finite number ``≥ 0`` per class (float64)."""
    if weight is None:
        return None
    hint = ""
    if isinstance(weight, str):
        hint = f" (reduction is a keyword argument: {loss_name}(reduction={weight!r}))"
    try:
        w = np.array(weight, dtype=np.float64)
    except (TypeError, ValueError):
        w = None
    if w is None or isinstance(weight, str) or w.ndim != 1 or w.size == 0:
        raise ConfigError(
            f"{loss_name}: weight must be a list with one number per class, got {weight!r}{hint}"
        )
    if not np.isfinite(w).all():
        raise ConfigError(f"{loss_name}: weight must hold finite numbers, got {w.tolist()}")
    if (w < 0).any():
        c = int(np.argmax(w < 0))
        raise ConfigError(
            f"{loss_name}: class weights must be >= 0 (a weight scales its class's share of the "
            f"loss), got {w[c]:g} for class {c}"
        )
    return w


def check_ignore_index(loss_name: str, ignore_index: Any) -> int:
    if isinstance(ignore_index, (bool, np.bool_)) or not isinstance(ignore_index, (int, np.integer)):
        raise ConfigError(
            f"{loss_name}: ignore_index must be an integer (the label of the positions to skip; "
            f"default {IGNORE_INDEX}), got {ignore_index!r}"
        )
    return int(ignore_index)


def weight_for(loss: Loss, weight: Optional[np.ndarray], out: np.ndarray) -> Optional[np.ndarray]:
    """The class weights in the output's arithmetic, shaped ``(1, C, 1, ...)`` to broadcast over
    the output; a ShapeError when their number is not the number of classes."""
    if weight is None:
        return None
    c = out.shape[1]
    if weight.size != c:
        raise ShapeError(
            f"{loss.describe()}: weight has {weight.size} values but the output has {c} classes "
            f"(shape {tuple(out.shape)}, classes on axis 1)"
        )
    if out.dtype == object:
        from ..numbers import exact_array

        w = exact_array(weight)
    else:
        w = weight.astype(out.dtype)
    return w.reshape((1, c) + (1,) * (out.ndim - 2))


def integer_labels(loss: Loss, target: Any, out: np.ndarray) -> np.ndarray:
    """The target as an integer array, or a DtypeError that says what was expected."""
    y = target if isinstance(target, np.ndarray) else np.asarray(target)
    if y.dtype.kind in "iu":
        return y
    if y.dtype.kind == "f":
        raise DtypeError(
            f"{loss.describe()}: class labels must be integers, got an array of dtype {y.dtype} "
            f"and shape {tuple(y.shape)} (convert with .astype(np.int64))"
        )
    raise DtypeError(
        f"{loss.describe()}: the target must be integer class labels of shape "
        f"{(out.shape[0], *out.shape[2:])}, got an array of dtype {y.dtype}"
    )


def class_labels(
    loss: Loss, out: np.ndarray, y: np.ndarray, ignore_index: Optional[int], what: str, other: str = ""
) -> tuple[np.ndarray, Optional[np.ndarray]]:
    """Check integer class labels ``y`` against an output ``(N, C, d1, ...)``.

    Returns the labels with a class axis of size 1 (for ``take_along_axis``; an ignored position
    holds 0 there) and the mask, of the same shape, of the positions that count (None when all
    count)."""
    expected = (out.shape[0], *out.shape[2:])
    if y.shape != expected:
        if out.ndim == 2 and y.shape == (out.shape[0], 1):
            y = y.reshape(-1)
        else:
            raise ShapeError(
                f"{loss.describe()}: {what} of shape {tuple(out.shape)} need integer class labels "
                f"of shape {expected}{other}, got labels of shape {tuple(y.shape)}"
            )
    c = out.shape[1]
    valid: Optional[np.ndarray] = None
    lo, hi = (int(y.min()), int(y.max())) if y.size else (0, 0)
    if ignore_index is not None and lo <= ignore_index <= hi:  # some label may be ignored
        valid = y != ignore_index
        counted = y[valid]
        lo, hi = (int(counted.min()), int(counted.max())) if counted.size else (0, 0)
    if lo < 0 or hi >= c:
        bad = lo if lo < 0 else hi
        skip = f", or ignore_index={ignore_index} to skip a position" if ignore_index is not None else ""
        raise IndexRangeError(
            f"{loss.describe()}: class label {bad} is out of range for {c} classes "
            f"(labels must be in [0, {c - 1}]{skip})"
        )
    labels = y.astype(np.intp, copy=valid is not None)
    if valid is not None:
        labels[~valid] = 0
        valid = np.expand_dims(valid, 1)
    return np.expand_dims(labels, 1), valid


def subtract_at(delta: np.ndarray, labels: np.ndarray, amount: Any) -> None:
    """``delta[n, y_n, ...] −= amount`` in place (``amount``: a scalar or one value per position,
    shaped like ``labels``)."""
    if delta.ndim == 2:
        rows = np.arange(delta.shape[0])
        delta[rows, labels[:, 0]] -= amount if np.ndim(amount) == 0 else amount[:, 0]
    else:
        picked = np.take_along_axis(delta, labels, axis=1)
        picked -= amount
        np.put_along_axis(delta, labels, picked, axis=1)


def _check_logits(loss: Loss, out: np.ndarray, what: str) -> None:
    if out.ndim < 2:
        raise ShapeError(
            f"{loss.describe()}: expects {what} of shape (batch, classes) or "
            f"(batch, classes, d1, ...), got {tuple(out.shape)}"
        )
    check_batch(loss, out)
    check_finite(loss, out, "model output")


def _weighted_config(loss: Any, config: dict[str, Any]) -> dict[str, Any]:
    """``weight`` and ``ignore_index`` added to ``config`` when they differ from the defaults."""
    if loss.weight is not None:
        config["weight"] = loss.weight.tolist()
    if getattr(loss, "ignore_index", IGNORE_INDEX) != IGNORE_INDEX:
        config["ignore_index"] = loss.ignore_index
    if loss.reduction != "mean":
        config["reduction"] = loss.reduction
    return config


# ---------------------------------------------------------------------------- cross-entropy
class CrossEntropyLoss(Loss):
    """Softmax cross-entropy on logits, PyTorch's ``CrossEntropyLoss``.

    For logits ``x`` of one sample (``C`` classes) and a target distribution ``q``::

        log p_c = x_c − m − ln Σ_k e^(x_k − m)        (log-softmax, m = max_k x_k: no overflow)
        loss    = −Σ_c q_c · log p_c

    The target is either **class indices** (integers in ``[0, C)``, ``q`` = one-hot) or **class
    probabilities** (floats, the shape of the logits, each in ``[0, 1]`` and summing to 1 over
    the classes within 1e-3: other values are a ``DataError``). With ``label_smoothing = ε`` the
    target becomes ``q ← (1 − ε)·q + ε/C``.

    **Class weights** ``w`` (one per class) and **ignored positions** (label ``ignore_index``),
    PyTorch's semantics. With class labels, each position ``n`` weighs ``w_{y_n}`` (0 when
    ignored) and the smoothing term weighs the classes by ``w_c``::

        loss_n = −Σ_c a_c · log p_c,     a_c = (1 − ε)·w_{y_n}·[c = y_n] + (ε/C)·w_c
        Loss   = Σ_n loss_n / W,         W = Σ_n w_{y_n}   (the number of counted positions
                                                              without weights)

    so ``"mean"`` is the **weighted mean**: it divides by the weights of the targets that count,
    not by ``N``. When nothing counts (every label ignored) the mean is 0/0: NaN, as PyTorch, and
    δ is 0 (no update). With probabilities, ``a_c = w_c·q_c`` and ``"mean"`` divides by the
    number of positions ``n`` (PyTorch); ``ignore_index`` applies to labels only.

    Backward, fused with the softmax (no Jacobian needed)::

        δ = (p · Σ_c a_c − a) / W        (= (p − q)/n without weights, ignored labels and with
                                           q summing to 1)

    with ``p = softmax(x)``; ``W = 1`` for ``"sum"``. The 1/n of the mean enters once, here
    (docs/conventions.md, 'Loss and batches'); an ignored position gets δ = 0.

    Args:
        weight: one weight ``≥ 0`` per class (a list or array of ``C`` numbers), or None (all 1).
        ignore_index: the label of the positions that do not count (default -100).
        reduction: ``"mean"`` (default: the (weighted) mean over the positions) or ``"sum"``.
        label_smoothing: ``ε`` in ``[0, 1]`` (default 0).

    ``weight`` is PyTorch's first positional argument; the others are keyword-only (in PyTorch
    deprecated arguments sit between them).

    Shapes:
        * logits ``(N, C)`` with target ``(N,)`` integers (``(N, 1)`` is also accepted) or
          ``(N, C)`` probabilities;
        * logits ``(N, C, d1, ...)`` (a sequence ``(N, C, L)``, per-pixel classes) with target
          ``(N, d1, ...)`` integers or ``(N, C, d1, ...)`` probabilities; a "sample" is then one
          position, so the mean divides by ``N·d1·…``, as PyTorch.

    Not exact (exp and log).
    """

    def __init__(
        self,
        weight: Any = None,
        *,
        ignore_index: int = IGNORE_INDEX,
        reduction: str = "mean",
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__()
        self.weight = class_weight("CrossEntropyLoss", weight)
        self.ignore_index = check_ignore_index("CrossEntropyLoss", ignore_index)
        self.reduction = check_reduction("CrossEntropyLoss", reduction)
        label_smoothing = float(label_smoothing)
        if not 0.0 <= label_smoothing <= 1.0:
            raise ConfigError(f"CrossEntropyLoss: label_smoothing must be in [0, 1], got {label_smoothing}")
        self.label_smoothing = label_smoothing

    def _probabilities(self, out: np.ndarray, y: np.ndarray) -> np.ndarray:
        if y.shape != out.shape:
            raise ShapeError(
                f"{self.describe()}: class probabilities must have the shape of the logits "
                f"{tuple(out.shape)}, got {tuple(y.shape)} (integer class labels would have shape "
                f"{(out.shape[0], *out.shape[2:])})"
            )
        if self.ignore_index != IGNORE_INDEX:
            raise DataError(
                f"{self.describe()}: ignore_index={self.ignore_index} applies to class labels, but "
                "the target holds class probabilities (PyTorch refuses this too)"
            )
        q = y.astype(out.dtype, copy=False)
        check_probabilities(self, q, axis=1)
        return q

    # ------------------------------------------------------------------ the loss
    def forward(self, output: np.ndarray, target: Any) -> float:
        out = _float_output(self, output)
        _check_logits(self, out, "logits")
        y = target if isinstance(target, np.ndarray) else np.asarray(target)
        kind = y.dtype.kind
        if kind in "iu":
            labels, valid = class_labels(
                self,
                out,
                y,
                self.ignore_index,
                "logits",
                f" (or class probabilities of shape {tuple(out.shape)})",
            )
        elif kind == "f":
            if y.shape != out.shape and y.shape in ((out.shape[0], *out.shape[2:]), (out.shape[0], 1)):
                raise DtypeError(
                    f"{self.describe()}: class labels must be integers, got an array of dtype "
                    f"{y.dtype} and shape {tuple(y.shape)} (convert with .astype(np.int64); "
                    f"floats are read as class probabilities of shape {tuple(out.shape)})"
                )
            labels = valid = None
            q = self._probabilities(out, y)
        else:
            raise DtypeError(
                f"{self.describe()}: the target must be integer class labels or float class "
                f"probabilities, got an array of dtype {y.dtype}"
            )
        w = weight_for(self, self.weight, out)
        dt = out.dtype
        shifted = out - out.max(axis=1, keepdims=True)  # x − m
        p = np.exp(shifted)
        total = p.sum(axis=1, keepdims=True)
        log_total = np.log(total)  # ln Σ e^(x − m)
        p /= total  # softmax
        if labels is not None:
            value, delta, count = self._from_labels(shifted, log_total, p, labels, valid, w)
        else:
            value, delta = self._from_probabilities(shifted, log_total, p, q, w)
            count = out.size // out.shape[1]  # positions
        if self.reduction == "mean":
            if count == 0:  # nothing counts: the mean is 0/0, NaN as PyTorch; no update
                delta[...] = 0
                value = float("nan")
            else:
                delta *= dt.type(1.0 / count)
                value /= count
        self._delta = delta
        return value

    def _from_labels(
        self,
        shifted: np.ndarray,
        log_total: np.ndarray,
        p: np.ndarray,
        labels: np.ndarray,
        valid: Optional[np.ndarray],
        w: Optional[np.ndarray],
    ) -> tuple[float, np.ndarray, float]:
        """Value (summed), δ·W and ``W`` for class labels: ``a_c = (1 − ε)·w_y·[c = y] +
        (ε/C)·w_c`` per counted position, 0 for an ignored one; ``δ = p·Σ_c a_c − a``."""
        dt = p.dtype
        c = p.shape[1]
        eps = self.label_smoothing
        mask = None if valid is None else valid.astype(dt)
        wy = None if w is None else w.reshape(-1)[labels]  # w_y per position, (N, 1, d1, ...)
        if mask is not None:
            wy = mask if wy is None else wy * mask
        per = log_total - np.take_along_axis(shifted, labels, axis=1)  # −log p_y
        if wy is not None:
            per *= wy
        if eps:
            per *= dt.type(1.0 - eps)
            if w is None:
                smooth = log_total - shifted.mean(axis=1, keepdims=True)  # −(1/C) Σ_c log p_c
            else:  # −(1/C) Σ_c w_c log p_c
                smooth = log_total * w.sum() - (shifted * w).sum(axis=1, keepdims=True)
                smooth *= dt.type(1.0 / c)
            if mask is not None:
                smooth *= mask
            smooth *= dt.type(eps)
            per += smooth
        value = float(per.sum(dtype=np.float64))
        count = float(per.size) if wy is None else float(wy.sum(dtype=np.float64))
        delta = p  # p·Σ_c a_c, then − a
        if w is not None:
            s = wy * dt.type(1.0 - eps)
            if eps:
                s += (dt.type(1) if mask is None else mask) * dt.type(float(w.sum()) * eps / c)
            delta *= s
        elif mask is not None:
            delta *= mask
        if eps:
            spread = (dt.type(1) if w is None else w) * dt.type(eps / c)
            delta -= spread if mask is None else spread * mask
        subtract_at(delta, labels, dt.type(1.0 - eps) if wy is None else wy * dt.type(1.0 - eps))
        return value, delta, count

    def _from_probabilities(
        self,
        shifted: np.ndarray,
        log_total: np.ndarray,
        p: np.ndarray,
        q: np.ndarray,
        w: Optional[np.ndarray],
    ) -> tuple[float, np.ndarray]:
        """Value (summed) and δ·n for class probabilities: ``a = w ⊙ q``, ``δ = p·Σ_c a_c − a``."""
        dt = p.dtype
        eps = self.label_smoothing
        if eps:
            q = q * dt.type(1.0 - eps)
            q += dt.type(eps / p.shape[1])
        if w is not None:
            q = q * w
        shifted -= log_total  # log p
        shifted *= q
        value = -float(shifted.sum(dtype=np.float64))
        delta = p
        delta *= q.sum(axis=1, keepdims=True)
        delta -= q
        return value, delta

    def get_config(self) -> dict[str, Any]:
        config = _weighted_config(self, {})
        if self.label_smoothing:
            config["label_smoothing"] = self.label_smoothing
        return config


# ---------------------------------------------------------------------------- negative log-likelihood
class NLLLoss(Loss):
    """The negative log-likelihood of class labels, PyTorch's ``NLLLoss``. The model outputs
    **log-probabilities** ``x`` (its last layer is a ``LogSoftmax``); the loss takes the one of
    the true class, weighted by its class weight::

        loss_n = −w_{y_n} · x_{n, y_n}      (w ≡ 1 without weights; 0 where y_n = ignore_index)
        Loss   = Σ_n loss_n / W,            W = Σ_n w_{y_n}   ("mean": the weighted mean; W = 1
                                                                for "sum")

    Backward: δ is 0 except at each position's true class::

        δ_{n, c} = −w_{y_n} / W  if c = y_n,  else 0          (0 for an ignored position)

    ``LogSoftmax(dim=1)`` followed by ``NLLLoss`` equals ``CrossEntropyLoss`` on the logits (the
    same value, and LogSoftmax's backward turns this δ into ``(softmax − one-hot)·w_y/W``).
    When nothing counts (every label ignored, or the targets' weights sum to 0) the mean is
    0/0: NaN, as PyTorch, and δ is 0.

    Args:
        weight: one weight ``≥ 0`` per class, or None (all 1).
        ignore_index: the label of the positions that do not count (default -100).
        reduction: ``"mean"`` (default) or ``"sum"``.

    Shapes: log-probabilities ``(N, C)`` with labels ``(N,)`` (``(N, 1)`` accepted), or
    ``(N, C, d1, ...)`` with labels ``(N, d1, ...)`` (sequences, images). Runs exactly on
    Fractions (the loss is linear in ``x``).
    """

    supports_exact = True

    def __init__(
        self, weight: Any = None, *, ignore_index: int = IGNORE_INDEX, reduction: str = "mean"
    ) -> None:
        super().__init__()
        self.weight = class_weight("NLLLoss", weight)
        self.ignore_index = check_ignore_index("NLLLoss", ignore_index)
        self.reduction = check_reduction("NLLLoss", reduction)

    def forward(self, output: np.ndarray, target: Any) -> Any:
        from ..numbers import cast

        out = as_output(self, output)
        _check_logits(self, out, "log-probabilities")
        y = integer_labels(self, target, out)
        labels, valid = class_labels(self, out, y, self.ignore_index, "log-probabilities")
        w = weight_for(self, self.weight, out)
        exact = out.dtype == object
        wy = None if w is None else w.reshape(-1)[labels]
        if valid is not None:
            mask = cast(valid.astype(np.int64), out.dtype)
            wy = mask if wy is None else wy * mask
        picked = np.take_along_axis(out, labels, axis=1)  # x_y
        if wy is not None:
            picked = picked * wy
        if exact:
            from fractions import Fraction

            value: Any = -picked.sum()
            count: Any = picked.size if wy is None else wy.sum()
            delta = np.full(out.shape, Fraction(0), dtype=object)
            one: Any = Fraction(1)
        else:
            value = 0.0 - float(picked.sum(dtype=np.float64))  # +0.0 when nothing counts
            count = picked.size if wy is None else float(wy.sum(dtype=np.float64))
            delta = np.zeros_like(out)
            one = out.dtype.type(1)
        subtract_at(delta, labels, one if wy is None else wy)
        if self.reduction == "mean":
            if count == 0:  # nothing counts: 0/0, NaN as PyTorch; δ stays 0
                value = float("nan")
            else:
                delta *= one / count if exact else out.dtype.type(1.0 / count)
                value /= count
        self._delta = delta
        return value

    def get_config(self) -> dict[str, Any]:
        return _weighted_config(self, {})


# ---------------------------------------------------------------------------- binary
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


__all__ = ["BCEWithLogitsLoss", "CrossEntropyLoss", "NLLLoss"]
