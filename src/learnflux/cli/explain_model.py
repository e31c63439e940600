"""``learnflux explain MODEL``: the learning flow of any model, and where the outputs go.

The recording itself is :func:`learnflux.flow.explain_model`; this module reads the command
line, checks that options meant for a model are not given to the seed's example, and writes
text, Markdown, JSON, ``.npz`` or the HTML page.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Optional, Union

from ..errors import ConfigError
from .argtypes import positive_int

MODEL_HELP = """\
MODEL (optional; without it, the seed's worked example):
  runs/<timestamp>/model.lf   a model saved by `learnflux train` (or lf.save)
  runs/<timestamp>            a run folder (its model.lf)
  runs                        a folder of runs: the newest one
  CONFIG.toml                 a run config: its model with fresh weights, its data
The samples (--samples, default 0,1) are taken from the run's data set (the split --split, default
train; the model's preprocessing applied), or from --data as `learnflux evaluate` reads it
(digits, mnist:DIR, csv:FILE, X.npy with --labels Y.npy, DATA.npz, ...). Then --steps training
steps (default 3), each on --batch-size of them (default: all, so every step sees the same
batch), with --optimizer (default SGD) and --lr. The model file is never changed.

Examples:
  learnflux explain runs --format html                  # the newest run: learning-flow.html
  learnflux explain runs/mnist/model.lf --samples 0-3 --steps 2 --format markdown
  learnflux explain examples/cnn_digits.toml --optimizer adam --lr 0.003 --format json
"""

#: options that only mean something with a MODEL: name -> how the command line spells it
_MODEL_ONLY = {
    "samples": "--samples",
    "data": "--data",
    "labels": "--labels",
    "split": "--split",
    "steps": "--steps",
    "optimizer": "--optimizer",
    "seed": "--seed",
    "title": "--title",
}


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """The positional MODEL and the options that go with it (defaults None: see
    :func:`model_command` for the values they stand for)."""
    parser.add_argument(
        "model", nargs="?", metavar="MODEL", help="a model file, run folder, folder of runs or run config"
    )
    parser.add_argument("--samples", help="sample indices in the data, from 0: 0,1 (default) or 0-3")
    parser.add_argument("--data", help="the data to take them from (default: the run's, see below)")
    parser.add_argument("--labels", metavar="Y.npy", help="targets, when --data is a .npy array")
    parser.add_argument(
        "--split", choices=("train", "val", "test", "all"), help="which part of the data (default train)"
    )
    parser.add_argument("--steps", type=positive_int, help="training steps to record (default 3)")
    parser.add_argument("--optimizer", help="sgd (default), adam, adamw, rmsprop, adagrad")
    parser.add_argument("--seed", type=int, help="seed of the dropout masks (default 0)")
    parser.add_argument("--title", help="the page's title (--format html)")
    parser.add_argument("--download", action="store_true", help="mnist / fashion: download missing IDX files")


def check_seed_options(args: argparse.Namespace) -> None:
    """The seed's example takes its own data and model: refuse the options meant for a MODEL."""
    given = [flag for name, flag in _MODEL_ONLY.items() if getattr(args, name, None) is not None]
    if getattr(args, "download", False):
        given.append("--download")
    if given:
        raise ConfigError(
            f"{', '.join(given)} appl{'y' if len(given) > 1 else 'ies'} to a MODEL "
            "(learnflux explain MODEL ...); without MODEL, explain replays the seed's example"
        )


def model_command(args: argparse.Namespace) -> int:
    """``learnflux explain MODEL ...``: record, then write the chosen format."""
    from ..flow import explain_model

    samples = args.samples if args.samples is not None else "0,1"
    steps = args.steps
    if steps is None:
        steps = 3
        if args.epochs is not None:  # passes over the chosen samples
            from ..flow.record import parse_samples

            n = len(parse_samples(samples))
            per_epoch = -(-n // (args.batch_size or n))
            steps = args.epochs * per_epoch
    trace = explain_model(
        args.model,
        samples=samples,
        data=args.data or "run",
        labels=args.labels,
        split=args.split or "train",
        steps=steps,
        batch_size=args.batch_size,
        optimizer=args.optimizer or "SGD",
        lr=args.lr,
        dtype=args.dtype,
        seed=0 if args.seed is None else args.seed,
        download=args.download,
    )
    if args.format in ("html", "npz"):
        title = args.title or f"Learning flow · {trace.extra.get('source', args.model)}"
        return write_trace(trace, args.format, args.out, title)
    text = {"text": trace.to_text, "markdown": trace.to_markdown, "json": trace.to_json}[args.format]()
    if args.out:
        return write_trace(text, args.format, args.out)
    print(text, end="" if text.endswith("\n") else "\n")
    return 0


def write_trace(what: Union[str, Any], fmt: str, out: Optional[str], title: Optional[str] = None) -> int:
    """Write a rendered text, or a trace as ``npz`` / ``html``, to ``out`` (html and npz have a
    default file name) and say so on standard output."""
    from ..files.io import atomic_write

    if fmt in ("html", "npz"):
        path = Path(out or f"learning-flow.{fmt}")
        if fmt == "html":
            from ..flow.page import write_page

            size = write_page(what, path, title=title)
            print(f"wrote {path} ({size / 1e6:.1f} MB): open it in a browser, no server needed")
        else:
            what.to_npz(path)
            print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB): read it with numpy.load")
        return 0
    if out is None:
        raise ConfigError("write_trace: a text output needs a file name")
    data = what.encode("utf-8")
    atomic_write(out, lambda fh: fh.write(data))
    print(f"wrote {out}", file=sys.stderr)
    return 0
