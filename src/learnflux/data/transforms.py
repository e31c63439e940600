"""Standardisation: per-feature mean 0, standard deviation 1, saveable as JSON."""

from __future__ import annotations

from typing import Any, Dict, Optional, Sequence, Tuple, Union

import numpy as np

from ..errors import ConfigError, DataError, NonFiniteError, ShapeError

AxisLike = Union[int, Sequence[int]]


def _float_array(x: Any) -> np.ndarray:
    x = np.asarray(x)
    if x.dtype.kind == "f":
        return x
    if x.dtype.kind in "iub":
        return x.astype(np.float32)
    raise DataError(f"Standardizer: expected a numeric array, got dtype {x.dtype}")


class Standardizer:
    """Per-feature standardisation ``z = (x − mean) / std``, fitted on training data.

    ``mean`` and ``std`` (the biased standard deviation, ``ddof=0``, as scikit-learn's
    ``StandardScaler``) are computed over ``axis``: by default the sample axis 0, i.e. one mean per
    feature; ``axis=(0, 2, 3)`` standardises images per channel. A feature with ``std == 0`` is
    only centred (its std is taken as 1). Statistics are kept in float64; :meth:`transform` computes
    in the input's float dtype (integers become float32), so float32 data stays float32.

    ``inverse_transform`` undoes the transform: ``x = z · std + mean``.
    ``get_config()`` is a JSON-serialisable dict (axis, mean, std); ``from_config`` restores it.

    Args:
        axis: axis or axes reduced when fitting (must include 0, the sample axis).
    """

    def __init__(self, axis: AxisLike = 0) -> None:
        axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
        if not axes or any(isinstance(a, bool) or not isinstance(a, (int, np.integer)) for a in axes):
            raise ConfigError(f"Standardizer: axis must be an int or a sequence of ints, got {axis!r}")
        axes = tuple(sorted(int(a) for a in axes))
        if 0 not in axes or any(a < 0 for a in axes) or len(set(axes)) != len(axes):
            raise ConfigError(
                f"Standardizer: axis must contain the sample axis 0 and only distinct axes >= 0, got {axis!r}"
            )
        self.axis: Tuple[int, ...] = axes
        self.mean: Optional[np.ndarray] = None
        self.std: Optional[np.ndarray] = None

    @property
    def fitted(self) -> bool:
        return self.mean is not None

    def _check(self, x: np.ndarray, what: str) -> None:
        if self.mean is None or self.std is None:
            raise DataError(f"Standardizer.{what}: not fitted yet; call fit(x_train) first")
        if x.ndim != self.mean.ndim or any(
            m != 1 and m != s for m, s in zip(self.mean.shape[1:], x.shape[1:], strict=True)
        ):
            feature_shape = tuple("*" if i in self.axis else d for i, d in enumerate(self.mean.shape))[1:]
            raise ShapeError(
                f"Standardizer.{what}: expected samples of shape {feature_shape} (as in fit), "
                f"got {x.shape[1:]}"
            )

    def fit(self, x: Any) -> Standardizer:
        """Compute the per-feature mean and std of ``x``; returns ``self``."""
        x = _float_array(x)
        if x.ndim == 0 or len(x) == 0:
            raise DataError(f"Standardizer.fit: need at least one sample, got shape {x.shape}")
        if max(self.axis) >= x.ndim:
            raise ShapeError(
                f"Standardizer.fit: axis {self.axis} out of range for an array of shape {x.shape}"
            )
        mean = x.mean(axis=self.axis, dtype=np.float64, keepdims=True)
        std = x.std(axis=self.axis, dtype=np.float64, keepdims=True)
        if not (np.isfinite(mean).all() and np.isfinite(std).all()):
            raise NonFiniteError("Standardizer.fit: the data contain NaN or infinite values")
        std[std == 0] = 1.0
        self.mean, self.std = mean, std
        return self

    def transform(self, x: Any) -> np.ndarray:
        """Return ``(x − mean) / std`` (a new array, in the float dtype of ``x``)."""
        x = _float_array(x)
        self._check(x, "transform")
        out = np.subtract(x, self.mean.astype(x.dtype))
        out /= self.std.astype(x.dtype)
        return out

    def fit_transform(self, x: Any) -> np.ndarray:
        """``fit(x)`` then ``transform(x)``."""
        return self.fit(x).transform(x)

    def inverse_transform(self, z: Any) -> np.ndarray:
        """Return ``z · std + mean`` (undoes :meth:`transform`)."""
        z = _float_array(z)
        self._check(z, "inverse_transform")
        out = np.multiply(z, self.std.astype(z.dtype))
        out += self.mean.astype(z.dtype)
        return out

    def get_config(self) -> Dict[str, Any]:
        """JSON-serialisable state: ``{"axis": [...], "mean": nested list | None, "std": ...}``."""
        return {
            "axis": list(self.axis),
            "mean": None if self.mean is None else self.mean.tolist(),
            "std": None if self.std is None else self.std.tolist(),
        }

    @classmethod
    def from_config(cls, config: Dict[str, Any]) -> Standardizer:
        """Rebuild a (fitted) Standardizer from :meth:`get_config`'s dict."""
        try:
            obj = cls(axis=config["axis"])
            mean, std = config.get("mean"), config.get("std")
        except (KeyError, TypeError) as e:
            raise ConfigError(f"Standardizer.from_config: bad config {config!r} ({e})") from None
        if (mean is None) != (std is None):
            raise ConfigError("Standardizer.from_config: mean and std must both be given or both be None")
        if mean is not None:
            m, s = np.asarray(mean, dtype=np.float64), np.asarray(std, dtype=np.float64)
            if m.shape != s.shape or m.ndim == 0 or m.shape[0] != 1:
                raise ConfigError(
                    f"Standardizer.from_config: mean and std must have the same shape (1, ...), "
                    f"got {m.shape} and {s.shape}"
                )
            obj.mean, obj.std = m, s
        return obj

    def __repr__(self) -> str:
        state = "fitted" if self.fitted else "not fitted"
        return f"Standardizer(axis={self.axis if len(self.axis) > 1 else self.axis[0]}, {state})"
