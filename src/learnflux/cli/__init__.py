"""The ``learnflux`` command. Each subcommand lives in its own module of this package, which
defines ``register(subparsers)`` (adds its parser and sets ``func``). Errors end the command with
a one-line message and an exit code (:mod:`learnflux.cli.failures`; ``--debug`` shows the
traceback)."""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Optional, Sequence

from .failures import EXIT_INTERRUPTED, classify

#: subcommand modules, in the order ``learnflux --help`` lists them
SUBCOMMANDS = [
    "train",
    "evaluate",
    "predict",
    "generate",
    "summary",
    "export",
    "explain",
    "saliency",
    "maximize",
]


class _Version(argparse.Action):
    """``--version``: print the text as it is (several lines) and exit."""

    def __init__(
        self, option_strings: Sequence[str], version: str, dest: str = argparse.SUPPRESS, **kw
    ) -> None:
        super().__init__(option_strings, dest=dest, default=argparse.SUPPRESS, nargs=0, **kw)
        self.version = version

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        print(self.version)
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    from .failures import EXIT_CODES_HELP

    parser = argparse.ArgumentParser(
        prog="learnflux",
        description="learnflux: a deep-learning framework whose machinery is visible.",
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    from ..kernels import describe
    from ..version import __version__

    # the version, then which kernel set runs and why (argparse would re-wrap a two-line version)
    version = f"learnflux {__version__}\n{describe()}"
    parser.add_argument(
        "--version", action=_Version, version=version, help="show the version and the kernels"
    )
    debug_help = "show the traceback of an error (instead of its one-line message)"
    parser.add_argument("--debug", action="store_true", help=debug_help)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        try:
            module = importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"{__name__}.{name}":
                continue  # subcommand not available in this build
            raise
        module.register(subparsers)
    for sub in subparsers.choices.values():  # --debug after the command too
        sub.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=debug_help)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except (Exception, KeyboardInterrupt) as exc:  # a message and an exit code, not a traceback
        if getattr(args, "debug", False) and not isinstance(exc, KeyboardInterrupt):
            raise
        code, message = classify(exc)
        if message is not None:
            prefix = f"learnflux {args.command}: " + ("" if code == EXIT_INTERRUPTED else "error: ")
            print(prefix + message, file=sys.stderr)
        return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
