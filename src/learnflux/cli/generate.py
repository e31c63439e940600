"""``learnflux generate MODEL --prompt TEXT``: sample text from a character-level language model
trained by ``learnflux train`` on a text dataset (its vocabulary is in the model file's
metadata)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..errors import ConfigError, DataError
from .argtypes import non_negative_int, positive_int

EPILOG = """\
The model file holds the vocabulary (the characters the model knows) and the window length it
was trained on; a prompt character outside the vocabulary is refused with the list of those it
has. Each new character is drawn from softmax(logits / temperature) over the top-k most likely
characters (all with --top-k 0; the most likely one at --temperature 0), after the model has
read the last `context` characters (the whole window is recomputed for each character: a
second or two for a few hundred characters of a small model).

example:
  learnflux train --config examples/charlm.toml
  learnflux generate runs/charlm/model.lf --prompt "It is a truth" --length 300 --seed 1

{exit_codes}
"""


def _temperature(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


def register(subparsers: Any) -> None:
    from .failures import EXIT_CODES_HELP

    p = subparsers.add_parser(
        "generate",
        help="sample text from a character-level language model",
        description="Sample text from a character-level language model trained by `learnflux train`\n"
        'on a text dataset ([data] dataset = "text", e.g. examples/charlm.toml): the prompt,\n'
        "then LENGTH characters drawn one at a time.",
        epilog=EPILOG.format(exit_codes=EXIT_CODES_HELP),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("model", metavar="MODEL", help="the model file (RUN/model.lf), or its run folder")
    p.add_argument("--prompt", default="\n", help="the text to continue (default: a new line)")
    p.add_argument("--length", type=non_negative_int, default=300, help="characters to draw (default 300)")
    p.add_argument(
        "--temperature",
        type=_temperature,
        default=0.8,
        help="< 1 sharper, > 1 flatter, 0 the most likely character each time (default 0.8)",
    )
    p.add_argument(
        "--top-k",
        type=non_negative_int,
        default=0,
        metavar="K",
        help="draw among the K most likely characters only (default 0: all)",
    )
    p.add_argument("--seed", type=non_negative_int, default=0, help="seed of the draw (default 0)")
    p.add_argument(
        "--samples",
        type=positive_int,
        default=1,
        metavar="N",
        help="draw N samples (seeds SEED, SEED+1, ...), separated by a line of dashes",
    )
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from ..files.io import load, load_metadata
    from ..sampling import generate, vocabulary_of

    path = Path(args.model)
    if path.is_dir():
        path = path / "model.lf"
    if not path.is_file():
        raise ConfigError(f"{path}: no such model file")
    metadata = load_metadata(path)
    vocab = vocabulary_of(metadata, str(path))
    try:  # a bad prompt fails before the model is built: a usage error, exit code 2
        vocab.encode(args.prompt, what="the prompt")
    except DataError as exc:
        raise ConfigError(f"--prompt: {exc}") from None
    model = load(path)
    context = metadata.get("context")
    for i in range(args.samples):
        if i:
            print("-" * 40)
        text = generate(
            model,
            vocab,
            args.prompt,
            length=args.length,
            temperature=args.temperature,
            top_k=args.top_k,
            seed=args.seed + i,
            context=context if isinstance(context, int) else None,
        )
        sys.stdout.write(args.prompt + text + "\n")
    return 0
