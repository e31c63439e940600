"""``learnflux maximize MODEL``: the images that a class (or a channel) responds to most, as a PNG.

Gradient ascent on the input with the framework's backward pass
(:func:`learnflux.look.maximize`), from the mean image of the model's data: weight decay on the
image, jitter, a blurred gradient, and a clip to the range of the data. Each step is kept only if
it raises the activation.
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

from ..errors import ConfigError
from .saliency import add_data_arguments, model_and_data, scale_for

HELP = """\
What to maximise: by default every class (the model's outputs), one image each, left to right;
--class C (repeatable) for some; --layer K --channel C for channel C of layer L^K's output o^K
(its mean over the positions; without --channel, its first 8 channels).

MODEL: a model file, a run folder, a folder of runs (the newest) or a run config. The images are
clipped to the range of its data (the --split part, default train, after the model's
preprocessing).

Example:
  learnflux maximize runs --out classes.png
  learnflux maximize runs --layer 4 --out relu-channels.png
"""


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "maximize",
        help="what the model looks for: images that maximise a class or a channel, as a PNG",
        description="Gradient ascent on the input: the images a class or a channel responds to most.",
        epilog=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("model", metavar="MODEL", help="a model file, run folder, folder of runs or run config")
    p.add_argument("--class", dest="classes", type=int, action="append", help="a class (repeatable)")
    p.add_argument("--layer", type=int, help="maximise a channel of o^K instead of a class (K from 1)")
    p.add_argument("--channel", type=int, action="append", help="with --layer: a channel (repeatable)")
    p.add_argument("--steps", type=int, default=200, help="gradient-ascent steps (default 200)")
    p.add_argument("--lr", type=float, default=0.05, help="step, a fraction of the data range (default 0.05)")
    p.add_argument("--decay", type=float, default=0.02, help="weight decay on the image (default 0.02)")
    p.add_argument(
        "--blur", type=float, default=0.5, help="σ of the gradient's blur, in pixels (default 0.5)"
    )
    p.add_argument(
        "--jitter",
        type=int,
        default=None,
        help="largest random shift in pixels (default 1, 0 below 16 pixels)",
    )
    p.add_argument(
        "--score",
        choices=("logit", "log_softmax"),
        default="log_softmax",
        help="a class's score: log p (default: raising it also lowers the other classes) or its output",
    )
    p.add_argument(
        "--start",
        choices=("mean", "low"),
        default="mean",
        help="the first image: the mean of the data (default) or its low end plus 5%% noise",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the start image and the jitter")
    p.add_argument(
        "--scale", type=int, default=0, help="pixels per data pixel (default: about 96 px an image)"
    )
    p.add_argument("--out", default="maximize.png", metavar="FILE.png", help="default maximize.png")
    add_data_arguments(p, split="train")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from ..look import maximize
    from ..png import grid, image_of, upscale, write_png

    model, x, _, desc = model_and_data(args)
    if x.ndim != 4:
        raise ConfigError(
            f"maximize: the samples have shape {x.shape[1:]}, not images (channels, height, width)"
        )
    lo, hi = float(x.min()), float(x.max())
    if args.layer is not None:
        channels = args.channel or list(range(8))
        targets: list[Any] = [(args.layer, c) for c in channels]
    else:
        if args.channel:
            raise ConfigError("--channel needs --layer K (the layer whose output o^K has the channels)")
        with model.inference():
            n_out = int(np.asarray(model.forward(x[:1])).shape[1])
        targets = args.classes or list(range(n_out))
    jitter = args.jitter if args.jitter is not None else (1 if min(x.shape[-2:]) >= 16 else 0)
    images, lines = [], []
    for t in targets:
        r = maximize(
            model,
            t,
            steps=args.steps,
            lr=args.lr,
            weight_decay=args.decay,
            jitter=jitter,
            blur=args.blur,
            value_range=(lo, hi),
            seed=args.seed,
            score=args.score,
            start=x.mean(axis=0) if args.start == "mean" else None,
        )
        images.append(r.image)
        lines.append(
            f"  {r.what}: {r.history[0]:.4g} → {r.history[-1]:.4g} in {len(r.history) - 1} steps "
            f"(each one raised it)"
        )
    s = scale_for(x.shape, args.scale)
    write_png(args.out, grid([upscale(image_of(im, lo, hi), s) for im in images], gap=max(2, s // 4)))
    print(f"maximised on the range of {desc} [{lo:.4g}, {hi:.4g}]:")
    print("\n".join(lines))
    print(f"wrote {args.out}: {len(images)} images, left to right in the order above")
    return 0
