"""``learnflux saliency MODEL``: the learning flow that reaches the data, as a PNG.

For each chosen sample and a class (default: the class the model predicts), the backward pass
starts from ``e_c`` on the model's output and arrives at the input as ``δ^1 = ∂o^n_c/∂x``
(:func:`learnflux.look.saliency`). The image has three rows: the samples, the saliency maps
``max over channels |δ^1|`` (dark: no influence, yellow: the most) and ``δ^1`` itself summed over
the channels (red: raising that pixel raises the class's score, blue: lowers it).
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

from ..errors import ConfigError

HELP = """\
MODEL: a model file, a run folder, a folder of runs (the newest) or a run config, as for
`learnflux explain MODEL`. The samples come from the run's data (--split, default test; the
model's preprocessing applied) or from --data as `learnflux evaluate` reads it.

Example:
  learnflux saliency runs --samples 0-7 --out saliency.png
"""


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "saliency",
        help="what the model looks at: δ1 = ∂(class score)/∂x as a PNG",
        description="Write the saliency maps of a model on a few samples (a PNG).",
        epilog=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("model", metavar="MODEL", help="a model file, run folder, folder of runs or run config")
    add_data_arguments(p, split="test")
    p.add_argument("--samples", default="0-7", help="sample indices, from 0 (default 0-7)")
    p.add_argument("--class", dest="target", type=int, help="the class (default: each sample's prediction)")
    p.add_argument(
        "--scale", type=int, default=0, help="pixels per data pixel (default: about 96 px a sample)"
    )
    p.add_argument("--out", default="saliency.png", metavar="FILE.png", help="default saliency.png")
    p.set_defaults(func=main)


def add_data_arguments(p: argparse.ArgumentParser, split: str) -> None:
    p.add_argument("--data", default="run", help="the data, as `learnflux evaluate --data` (default run)")
    p.add_argument("--labels", metavar="Y.npy", help="targets, when --data is a .npy array")
    p.add_argument("--split", default=split, choices=("train", "val", "test", "all"), help=f"default {split}")
    p.add_argument("--download", action="store_true", help="mnist / fashion: download missing IDX files")


def model_and_data(args: argparse.Namespace) -> tuple[Any, np.ndarray, np.ndarray, str]:
    """The model (as trained: a config's model is built with fresh weights) and the data it
    reads, after its preprocessing: ``(model, x, y, description)``."""
    from ..flow.record import _load, find_model

    source = find_model(args.model)
    model, _, x, y, desc = _load(source, args.data, args.labels, args.split, None, args.download)
    return model, x, y, desc


def scale_for(shape: tuple, scale: int) -> int:
    return int(scale) if scale else max(1, 96 // max(shape[-2:]))


def main(args: argparse.Namespace) -> int:
    from ..flow.record import parse_samples
    from ..look import saliency
    from ..png import colorize, grid, image_of, upscale, write_png

    model, x, y, desc = model_and_data(args)
    chosen = parse_samples(args.samples)
    bad = [i for i in chosen if i >= len(x)]
    if bad:
        raise ConfigError(f"--samples: {desc} has {len(x)} samples, numbered 0 to {len(x) - 1}; got {bad[0]}")
    xs = x[np.asarray(chosen)]
    if xs.ndim != 4:
        raise ConfigError(
            f"saliency: the samples have shape {xs.shape[1:]}, not images (channels, height, width)"
        )
    with model.inference():
        out = np.asarray(model.forward(xs), dtype=np.float64)
    predicted = out.argmax(axis=1)
    classes = predicted if args.target is None else np.full(len(chosen), args.target)
    d1 = saliency(model, xs, classes)
    s = scale_for(xs.shape, args.scale)
    lo, hi = float(x.min()), float(x.max())
    inputs = [upscale(image_of(v, lo, hi), s) for v in xs]
    maps = [upscale(colorize(np.abs(d).max(axis=0), "sequential", 0.0), s) for d in d1]
    signed = [upscale(colorize(d.sum(axis=0), "diverging"), s) for d in d1]
    write_png(args.out, grid(inputs + maps + signed, cols=len(chosen), gap=max(2, s // 4)))
    print(f"{desc}:")
    for i, idx in enumerate(chosen):
        print(
            f"  sample {idx}: target {np.asarray(y[idx]).tolist()} · predicted {predicted[i]} · "
            f"saliency of class {classes[i]}: max |δ1| = {np.abs(d1[i]).max():.4g}"
        )
    print(
        f"wrote {args.out}: row 1 the samples, row 2 max over channels |δ1| (yellow: most influence), "
        "row 3 δ1 (red: raising the pixel raises the class's score, blue: lowers it)"
    )
    return 0
