"""``learnflux predict MODEL INPUT``: run a saved model on a ``.npy`` array or an image file."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Optional

import numpy as np

from ..errors import ConfigError, DataError

HELP = """\
INPUT (or --sample N instead):
  X.npy      an array of samples (n, *input shape), or one sample (*input shape)
  IMAGE      a PNG or JPEG image (read with Pillow; at most 64 megapixels): converted to
             grey (luminance) when the model takes one channel, scaled to [0, 1], resized to
             the model's input height × width by area averaging, and inverted when it looks
             like dark ink on light paper (--invert auto: the border is brighter than the
             middle), since the digits and MNIST are light strokes on a dark background.
             For best results crop the digit with a small margin.
  --sample N sample N of the test split of the model's run (rebuilt from the config.toml
             that `learnflux train` writes beside the model; --data and --split choose
             other data, as in `learnflux evaluate`); its label is printed with the
             prediction, and --save-image FILE writes it as a PNG to try as INPUT later:
               learnflux predict runs/mnist/model.lf --sample 0 --save-image digit.png
               learnflux predict runs/mnist/model.lf digit.png

The output: per sample, the predicted class and its probability (softmax of the model's
outputs) with the --top most likely classes; --save writes the raw outputs as .npy.
"""


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "predict",
        help="run a saved model on a .npy array or an image",
        description="Predict with a saved model (lf.save format) on a .npy array or an image file.",
        epilog=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("model", metavar="MODEL", help="a model file (model.lf of a run folder)")
    p.add_argument("input", metavar="INPUT", nargs="?", help="X.npy or an image file (PNG, JPEG)")
    p.add_argument(
        "--sample",
        metavar="N",
        type=int,
        help="instead of INPUT: sample N (from 0) of the test split of the model's run",
    )
    p.add_argument(
        "--data",
        default="run",
        metavar="SPEC",
        help="with --sample: the dataset, as in `learnflux evaluate --data` (default: run)",
    )
    p.add_argument(
        "--split",
        default="test",
        choices=("train", "val", "test", "all"),
        help="with --sample: the part of the dataset (default: test)",
    )
    p.add_argument("--seed", type=int, default=None, help="with --sample: split seed (default: the run's)")
    p.add_argument("--download", action="store_true", help="with --sample: download missing MNIST files")
    p.add_argument("--save-image", metavar="FILE.png", help="with --sample: write the sample as an image")
    p.add_argument("--top", type=int, default=3, help="how many classes to list per sample (default 3)")
    p.add_argument(
        "--invert",
        choices=("auto", "yes", "no"),
        default="auto",
        help="invert image brightness (default: auto)",
    )
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--save", metavar="OUT.npy", help="write the model outputs to this file")
    p.add_argument("--json", action="store_true", help="print JSON lines")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from ..files.io import atomic_write, load
    from .evaluate import _existing, _npy, apply_preprocess

    model = load(_existing(args.model))
    shape = input_shape(model)
    if (args.input is None) == (args.sample is None):
        raise ConfigError(
            "give INPUT (X.npy or an image file) or --sample N (a sample of the model's data), "
            + ("not both" if args.input is not None else "e.g. --sample 0")
        )
    if args.save_image and args.sample is None:
        raise ConfigError("--save-image writes the sample chosen with --sample N; it needs --sample")
    labels: Optional[np.ndarray] = None
    first = 0
    path = Path(args.input or "")
    if args.sample is not None:
        x, labels = pick_sample(args)
        first = args.sample
        if args.save_image:
            save_image(x[0], Path(args.save_image))
            note = f"wrote {args.save_image}: sample {args.sample}, label {labels[0]}"
            print(note, file=sys.stderr if args.json else sys.stdout)
    elif not path.is_file():
        raise ConfigError(f"{path}: no such file")
    elif path.suffix.lower() == ".npy":
        x = _npy(str(path))
        if shape is not None and tuple(x.shape) == shape:
            x = x[None]
    else:
        if shape is None:
            raise ConfigError(
                f"{args.model}: the model has no Input layer with a known shape, "
                "so an image cannot be resized for it; pass a .npy array"
            )
        x = load_image(path, shape, invert=args.invert)[None]
    x = apply_preprocess(Path(args.model), x.astype(np.float32, copy=False))
    out = np.asarray(model.predict(x, batch_size=args.batch_size))
    if args.save:
        atomic_write(args.save, lambda fh: np.save(fh, out))
    if out.ndim == 2 and out.shape[1] > 1:
        probs = as_probabilities(out)
        k = max(1, min(args.top, out.shape[1]))
        for i, p in enumerate(probs):
            order = np.argsort(-p)[:k]
            label = {} if labels is None else {"label": labels[i].tolist()}
            if args.json:
                top = [[int(c), float(p[c])] for c in order]
                print(json.dumps({"sample": first + i, "class": int(order[0]), "top": top, **label}))
            else:
                top = ", ".join(f"{c} ({p[c]:.3f})" for c in order)
                known = "" if labels is None else f" · label {labels[i]}"
                print(f"sample {first + i}: class {order[0]} (p = {p[order[0]]:.3f}) · top {k}: {top}{known}")
    else:
        for i, row in enumerate(out.reshape(len(out), -1)):
            values = [float(v) for v in row]
            label = {} if labels is None else {"label": labels[i].tolist()}
            if args.json:
                print(json.dumps({"sample": first + i, "output": values, **label}))
            else:
                print(f"sample {first + i}: {values}" + ("" if labels is None else f" · target {labels[i]}"))
    return 0


def pick_sample(args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray]:
    """``(x[N:N+1], y[N:N+1])``: sample ``args.sample`` of the data ``learnflux evaluate``
    would use (``--data``, ``--split``, ``--seed``), before the model's preprocessing."""
    from .evaluate import load_eval_data

    x, y, desc = load_eval_data(
        args.data, Path(args.model), args.split, args.seed, None, download=args.download
    )
    if not 0 <= args.sample < len(x):
        raise ConfigError(f"--sample {args.sample}: {desc} has {len(x)} samples, numbered 0 to {len(x) - 1}")
    return x[args.sample : args.sample + 1], y[args.sample : args.sample + 1]


def save_image(sample: np.ndarray, path: Path) -> None:
    """Write one sample ``(channels, height, width)`` with values in [0, 1] as an image (grey for
    one channel), at its own size: `predict` reads it back to the same values (to 1/255)."""
    if sample.ndim != 3 or sample.shape[0] not in (1, 3):
        raise ConfigError(
            f"--save-image: the samples have shape {tuple(sample.shape)}, not an image "
            "(1 or 3 channels, height, width)"
        )
    if path.suffix.lower() not in (".png", ".jpg", ".jpeg"):
        raise ConfigError(f"--save-image {path}: expected a .png (or .jpg) file name")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.image as mpimg
    except ImportError:
        raise ConfigError("writing images needs matplotlib (pip install learnflux[train])") from None
    pixels = np.clip(np.asarray(sample, dtype=np.float64), 0.0, 1.0)
    if pixels.shape[0] == 1:
        mpimg.imsave(path, pixels[0], cmap="gray", vmin=0.0, vmax=1.0)
    else:
        mpimg.imsave(path, np.moveaxis(pixels, 0, -1))


def input_shape(model: Any) -> Optional[tuple]:
    first = model.layers[0] if hasattr(model, "layers") else model
    shape = getattr(first, "shape", None)
    if type(first).__name__ == "Input" and shape is not None and all(s is not None for s in shape):
        return tuple(shape)
    return None


def as_probabilities(out: np.ndarray) -> np.ndarray:
    """Rows that already are probabilities are kept; logits go through a softmax."""
    out = out.astype(np.float64)
    if np.all(out >= 0) and np.allclose(out.sum(axis=1), 1.0, atol=1e-4):
        return out
    z = out - out.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _area_matrix(n_out: int, n_in: int) -> np.ndarray:
    """Row i averages the input cells covering output cell i (area resampling)."""
    edges = np.linspace(0.0, n_in, n_out + 1)
    m = np.zeros((n_out, n_in))
    for i in range(n_out):
        lo, hi = edges[i], edges[i + 1]
        for j in range(int(np.floor(lo)), min(n_in, int(np.ceil(hi)))):
            m[i, j] = min(hi, j + 1) - max(lo, j)
    return m / m.sum(axis=1, keepdims=True)


def resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize ``(channels, h, w)`` to ``(channels, height, width)`` by area averaging."""
    rows = _area_matrix(height, image.shape[-2])
    cols = _area_matrix(width, image.shape[-1])
    return np.einsum("ih,chw,jw->cij", rows, image, cols)


#: the largest image ``predict`` decodes (checked from the file's header, before decoding)
MAX_IMAGE_PIXELS = 64_000_000
#: a larger image is first shrunk (box averages of whole pixels) to this many times the model's
#: height and width, before any conversion to floating point
_KEEP_FACTOR = 4


def _read_pixels(path: Path, height: int, width: int) -> np.ndarray:
    """The image's pixels as floats in [0, 1], ``(h, w)`` or ``(h, w, channels)``, shrunk first
    when it is much larger than ``height × width``. Its size is checked from its header before
    it is decoded (Pillow)."""
    try:
        from PIL import Image
    except ImportError:
        raise ConfigError("reading images needs Pillow (pip install learnflux[train])") from None
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(path)  # reads the header only
        with im:
            w, h = im.size
            if w * h > MAX_IMAGE_PIXELS:
                raise DataError(
                    f"{path}: an image of {w}×{h} pixels ({w * h / 1e6:.0f} megapixels); predict "
                    f"decodes at most {MAX_IMAGE_PIXELS / 1e6:.0f} megapixels: shrink or crop it first"
                )
            fx, fy = max(1, w // (_KEEP_FACTOR * width)), max(1, h // (_KEEP_FACTOR * height))
            if im.format == "JPEG" and (fx > 1 or fy > 1):
                im.draft(im.mode, (w // fx, h // fy))  # decode at a reduced scale
            mode = im.mode
            if mode in ("1", "P", "PA", "LA", "La", "RGBa", "CMYK", "YCbCr", "LAB", "HSV"):
                im = im.convert("RGBA" if mode in ("P", "PA", "LA", "La", "RGBa") else "RGB")
            elif mode.startswith("I;16") or mode == "I":
                im = im.convert("I")
            if fx > 1 or fy > 1:
                im = im.reduce((fx, fy))
            pixels = np.asarray(im)
            scale = 65535 if im.mode == "I" else (1 if im.mode == "F" else 255)
    except DataError:
        raise
    except Image.DecompressionBombError as exc:  # Pillow's own limit, above twice its default
        raise DataError(
            f"{path}: the image is too large to decode ({exc}); predict decodes at most "
            f"{MAX_IMAGE_PIXELS / 1e6:.0f} megapixels: shrink or crop it first"
        ) from None
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise DataError(f"{path}: cannot read the image ({exc})") from None
    return np.divide(pixels, scale, dtype=np.float32)


def load_image(path: Path, shape: tuple, invert: str = "auto") -> np.ndarray:
    """Read an image file into one sample of ``shape`` (channels, height, width), values in [0, 1].

    The image is refused above :data:`MAX_IMAGE_PIXELS` (from its header, before decoding), and
    one much larger than the model's input is shrunk by whole-pixel averages before it becomes
    floating point."""
    if len(shape) != 3:
        raise ConfigError(f"the model takes samples of shape {shape}, not images (channels, height, width)")
    img = _read_pixels(path, shape[1], shape[2]).astype(np.float64)
    if img.ndim == 2:
        img = img[..., None]
    if img.shape[-1] == 4:  # composite transparent pixels on white paper
        alpha = img[..., 3:4]
        img = img[..., :3] * alpha + (1.0 - alpha)
    channels = shape[0]
    if channels == 1:
        if img.shape[-1] >= 3:
            img = img[..., :3] @ np.array([0.299, 0.587, 0.114])
        else:
            img = img[..., 0]
        img = img[None]
    elif channels == 3:
        img = np.repeat(img, 3, axis=-1) if img.shape[-1] == 1 else img[..., :3]
        img = np.moveaxis(img, -1, 0)
    else:
        raise ConfigError(f"the model takes {channels} channels; images have 1 (grey) or 3 (colour)")
    if invert == "yes" or (invert == "auto" and _light_background(img)):
        img = 1.0 - img
    img = resize(img, shape[1], shape[2])
    return np.clip(img, 0.0, 1.0).astype(np.float32)


def _light_background(img: np.ndarray) -> bool:
    border = np.concatenate(
        [img[:, 0, :].ravel(), img[:, -1, :].ravel(), img[:, :, 0].ravel(), img[:, :, -1].ravel()]
    )
    return bool(border.mean() > 0.5)
