"""The contract of a loss: ``forward(output, target) -> batch mean`` then ``backward() -> δ``."""

from __future__ import annotations

from typing import Any, ClassVar, Optional

import numpy as np

from ..errors import DataError, DtypeError, NonFiniteError, PhaseError, ShapeError


class Loss:
    """Compares the model output with the expectation ``y``. The value is only an indicator;
    what starts the learning flow is ``δ = ∂Loss/∂output`` returned by ``backward``.

    The reported value is the **mean** over the batch; the ``1/n`` of that mean enters **once**,
    in δ (docs/conventions.md, 'Loss and batches').
    """

    supports_exact: ClassVar[bool] = False

    def __init__(self) -> None:
        self._delta: Optional[np.ndarray] = None

    def forward(self, output: np.ndarray, target: Any) -> Any:
        raise NotImplementedError

    def backward(self) -> np.ndarray:
        """δ for the model output of the last ``forward``."""
        if self._delta is None:
            raise PhaseError(f"{type(self).__name__}: backward called before forward")
        return self._delta

    def __call__(self, output: np.ndarray, target: Any) -> Any:
        return self.forward(output, target)

    def get_config(self) -> dict[str, Any]:
        return {}

    def describe(self) -> str:
        return type(self).__name__

    def match_target(self, output: np.ndarray, target: Any) -> np.ndarray:
        """The target as an array of the output's shape and dtype, or a clear error.

        A target of shape ``(batch,)`` is accepted for an output of shape ``(batch, 1)``."""
        y = target if isinstance(target, np.ndarray) else np.asarray(target)
        if y.dtype.kind not in "fiubO":
            raise DtypeError(
                f"{self.describe()}: the target must hold real numbers, got an array of dtype {y.dtype}"
            )
        if y.shape != output.shape:
            if output.ndim == 2 and output.shape[1] == 1 and y.shape == output.shape[:1]:
                y = y.reshape(output.shape)
            else:
                hint = ""
                if (
                    y.dtype.kind in "iu"
                    and y.ndim == 1
                    and output.ndim == 2
                    and output.shape[1] > 1
                    and len(y) == len(output)
                ):
                    hint = (
                        "; the target looks like class labels (one integer per sample): for "
                        "classification use loss=lf.CrossEntropyLoss(), which takes the labels "
                        "and the model's raw outputs (logits)"
                    )
                raise ShapeError(
                    f"{self.describe()}: the output has shape {tuple(output.shape)} but the "
                    f"target has shape {tuple(y.shape)}{hint}"
                )
        if y.dtype != output.dtype:
            from ..numbers import cast

            try:
                y = cast(y, output.dtype)
            except (TypeError, ValueError) as exc:
                raise DtypeError(f"{self.describe()}: the target must hold real numbers ({exc})") from None
        return y


REDUCTIONS = ("mean", "sum")


def check_reduction(loss_name: str, reduction: str) -> str:
    """Validate a ``reduction=`` argument (``"mean"`` or ``"sum"``)."""
    if reduction not in REDUCTIONS:
        from ..errors import ConfigError

        hint = (
            " (a loss returns one number per batch; compute per-element losses yourself)"
            if reduction == "none"
            else ""
        )
        raise ConfigError(f"{loss_name}: reduction must be 'mean' or 'sum', got {reduction!r}{hint}")
    return reduction


def as_output(loss: Loss, output: Any) -> np.ndarray:
    """The model output as an array of real numbers (float32, float64 or exact), or a clear error."""
    out = output if isinstance(output, np.ndarray) else np.asarray(output)
    if out.dtype.kind not in "fO":
        if out.dtype.kind in "iub":
            return out.astype(np.float64)
        raise DtypeError(
            f"{loss.describe()}: the model output must hold real numbers, got an array of dtype {out.dtype}"
        )
    if out.ndim == 0:
        raise ShapeError(f"{loss.describe()}: the output must have a batch axis, got a scalar")
    return out


def check_batch(loss: Loss, out: np.ndarray) -> None:
    """An empty batch has no mean: refused (rather than a silent 0 or a division by zero)."""
    if out.size == 0:
        raise ShapeError(
            f"{loss.describe()}: empty batch (the output has shape {tuple(out.shape)}); a loss "
            "needs at least one sample"
        )


def check_finite(loss: Loss, arr: np.ndarray, what: str) -> None:
    """A :class:`~learnflux.errors.NonFiniteError` naming the loss when ``arr`` (the model
    output or the target) holds a NaN or an infinity. One dot product when all is finite."""
    if arr.dtype.kind != "f" or not arr.size:
        return
    from ..core.layer import _surely_finite

    if _surely_finite(arr):
        return
    bad = ~np.isfinite(arr)
    count = int(bad.sum())
    if not count:  # finite values so large that the check's sum of squares overflowed
        return
    first = tuple(int(i) for i in np.argwhere(bad)[0])
    hint = (
        "; it comes from an earlier layer: TerminateOnNaN() names where it appeared (lower the "
        "learning rate, clip gradients with clip_norm=..., or check the inputs)"
        if what == "model output"
        else "; check the data"
    )
    raise NonFiniteError(
        f"{loss.describe()}: the {what} holds {count} non-finite value(s) (first: "
        f"{arr[first]} at index {first}){hint}"
    )


def check_probabilities(loss: Loss, q: np.ndarray, axis: Optional[int], tol: float = 1e-3) -> None:
    """Targets that are probabilities: each in [0, 1] and, along ``axis`` (the classes; None:
    no sum to check), summing to 1 within ``tol``."""
    check_finite(loss, q, "target")
    if not q.size:
        return
    lo, hi = float(q.min()), float(q.max())
    if lo < 0.0 or hi > 1.0:
        bad = lo if lo < 0.0 else hi
        raise DataError(
            f"{loss.describe()}: the target holds {bad:.6g}; probabilities must be in [0, 1] "
            "(class labels would be integers)"
        )
    if axis is None:
        return
    sums = q.sum(axis=axis, dtype=np.float64)
    off = np.abs(sums - 1.0)
    if float(off.max()) > tol:
        where = tuple(int(i) for i in np.unravel_index(int(off.argmax()), off.shape))
        raise DataError(
            f"{loss.describe()}: class probabilities must sum to 1 over the classes (axis "
            f"{axis}); sample {where[0] if len(where) == 1 else where} sums to "
            f"{float(sums[where]):.6g}"
        )
