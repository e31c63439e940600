"""Argument types shared by the subcommands: integers with a lower bound, whose error says what
was typed and what is expected (argparse shows it as ``argument --epochs: ...``)."""

from __future__ import annotations

import argparse


def _bounded_int(text: str, minimum: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
    return value


def positive_int(text: str) -> int:
    """An integer ≥ 1 (epochs, steps, batch sizes)."""
    return _bounded_int(text, 1)


def non_negative_int(text: str) -> int:
    """An integer ≥ 0 (seeds)."""
    return _bounded_int(text, 0)
