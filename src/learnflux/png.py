"""PNG images from arrays, with NumPy and zlib alone (no matplotlib, no Pillow).

Used to show what a model looks at (:mod:`learnflux.look`) and the feature maps of the
tutorials. :func:`colorize` maps values to colours (``"gray"``, ``"sequential"`` for values of one
sign, ``"diverging"`` for signed values such as a δ: 0 is white, blue below, red above, with a
scale symmetric around 0), :func:`grid` lays images out with a gap, :func:`write_png` writes an
8-bit RGB (or grey) image. The bytes depend only on the pixels: the same array gives the same
file.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import numpy as np

from .errors import ConfigError
from .files.io import atomic_write

__all__ = ["colorize", "grid", "image_of", "png_bytes", "upscale", "write_png"]

#: sequential colour map (dark violet → yellow), anchors of a perceptually even ramp
_SEQUENTIAL = np.array(
    [[68, 1, 84], [72, 40, 120], [62, 74, 137], [49, 104, 142], [38, 130, 142], [31, 158, 137],
     [53, 183, 121], [109, 205, 89], [180, 222, 44], [253, 231, 37]],
    dtype=np.float64,
)  # fmt: skip
#: diverging colour map: blue (negative) → white (0) → red (positive)
_DIVERGING = np.array(
    [[5, 48, 97], [33, 102, 172], [67, 147, 195], [146, 197, 222], [209, 229, 240], [247, 247, 247],
     [253, 219, 199], [244, 165, 130], [214, 96, 77], [178, 24, 43], [103, 0, 31]],
    dtype=np.float64,
)  # fmt: skip


def _ramp(stops: np.ndarray, u: np.ndarray) -> np.ndarray:
    u = np.clip(np.nan_to_num(u, nan=0.5), 0.0, 1.0) * (len(stops) - 1)
    i = np.minimum(np.floor(u).astype(int), len(stops) - 2)
    f = (u - i)[..., None]
    return stops[i] * (1 - f) + stops[i + 1] * f


def colorize(
    a: Any, cmap: str = "sequential", lo: Optional[float] = None, hi: Optional[float] = None
) -> np.ndarray:
    """Values ``(H, W)`` → colours ``(H, W, 3)`` uint8.

    ``"gray"`` and ``"sequential"`` map ``[lo, hi]`` (default: the array's min and max) to dark →
    light; ``"diverging"`` maps ``[-m, m]`` with ``m = hi`` (default ``max |a|``) so that 0 is
    white."""
    arr = np.asarray(a, dtype=np.float64)
    if arr.ndim != 2:
        raise ConfigError(f"colorize: expects a 2-D array (height, width), got shape {arr.shape}")
    if cmap == "diverging":
        m = float(np.max(np.abs(arr))) if hi is None else float(hi)
        rgb = _ramp(_DIVERGING, (arr / (m or 1.0) + 1) / 2)
    elif cmap in ("gray", "sequential"):
        lo = float(arr.min()) if lo is None else float(lo)
        hi = float(arr.max()) if hi is None else float(hi)
        u = (arr - lo) / ((hi - lo) or 1.0)
        if cmap == "gray":
            rgb = np.repeat(np.clip(u, 0, 1)[..., None] * 255.0, 3, axis=-1)
        else:
            rgb = _ramp(_SEQUENTIAL, u)
    else:
        raise ConfigError(f"colorize: cmap must be 'gray', 'sequential' or 'diverging', got {cmap!r}")
    return np.round(rgb).astype(np.uint8)


def image_of(sample: Any, lo: Optional[float] = None, hi: Optional[float] = None) -> np.ndarray:
    """One data sample ``(channels, H, W)`` as an RGB image: grey for 1 channel, colour for 3
    (values mapped from ``[lo, hi]``, default the sample's range, to 0-255)."""
    arr = np.asarray(sample, dtype=np.float64)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3 or arr.shape[0] not in (1, 3):
        raise ConfigError(f"image_of: expects (1 or 3 channels, height, width), got shape {arr.shape}")
    lo = float(arr.min()) if lo is None else float(lo)
    hi = float(arr.max()) if hi is None else float(hi)
    u = np.clip((arr - lo) / ((hi - lo) or 1.0), 0, 1)
    rgb = np.repeat(u, 3, axis=0) if arr.shape[0] == 1 else u
    return np.round(np.moveaxis(rgb, 0, -1) * 255).astype(np.uint8)


def upscale(img: np.ndarray, factor: int) -> np.ndarray:
    """Each pixel becomes a ``factor × factor`` block (nearest neighbour: the values stay sharp)."""
    return np.repeat(np.repeat(img, int(factor), axis=0), int(factor), axis=1)


def grid(
    images: Sequence[np.ndarray], cols: Optional[int] = None, gap: int = 2, background: int = 255
) -> np.ndarray:
    """Lay RGB images ``(H, W, 3)`` of one size out in rows of ``cols`` (default: one row), with
    ``gap`` pixels of ``background`` between them."""
    if not images:
        raise ConfigError("grid: no images")
    h, w = images[0].shape[:2]
    if any(im.shape[:2] != (h, w) for im in images):
        raise ConfigError(f"grid: images of different sizes {sorted({im.shape[:2] for im in images})}")
    cols = len(images) if cols is None else max(1, int(cols))
    rows = -(-len(images) // cols)
    out = np.full((rows * (h + gap) - gap, cols * (w + gap) - gap, 3), background, dtype=np.uint8)
    for i, im in enumerate(images):
        r, c = divmod(i, cols)
        out[r * (h + gap) : r * (h + gap) + h, c * (w + gap) : c * (w + gap) + w] = im
    return out


def _chunk(kind: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    )


def png_bytes(img: Any) -> bytes:
    """An 8-bit image ``(H, W, 3)`` (RGB) or ``(H, W)`` (grey) as PNG bytes."""
    arr = np.asarray(img)
    if arr.dtype != np.uint8:
        raise ConfigError(f"png: expects uint8 pixels (0-255), got {arr.dtype}")
    if arr.ndim == 2:
        color = 0
    elif arr.ndim == 3 and arr.shape[2] == 3:
        color = 2
    else:
        raise ConfigError(f"png: expects (height, width) or (height, width, 3), got shape {arr.shape}")
    h, w = arr.shape[:2]
    raw = np.concatenate([np.zeros((h, 1), np.uint8), arr.reshape(h, -1)], axis=1).tobytes()
    header = struct.pack(">IIBBBBB", w, h, 8, color, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(raw, 9))
        + _chunk(b"IEND", b"")
    )


def write_png(path: Union[str, Path], img: Any) -> Path:
    """Write ``img`` (see :func:`png_bytes`) to ``path`` atomically; returns the path."""
    data = png_bytes(img)
    atomic_write(path, lambda fh: fh.write(data))
    return Path(path)
