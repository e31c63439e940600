"""What ``fit`` shows while it trains.

* ``verbose=0``: nothing.
* ``verbose=1``: a progress bar per epoch (tqdm) with ETA, the running loss and metrics, then the
  epoch's validation values; without a terminal (or without tqdm, or on a terminal narrower
  than 40 columns), one line per epoch instead.
* ``verbose=2``: one line per epoch.
* ``verbose="auto"`` (the default of ``fit``): 1 when standard output is a terminal, else 0.
"""

from __future__ import annotations

import io
import os
import sys
import time
from typing import Any, Optional, TextIO, Union

Verbose = Union[int, str]


def resolve_verbose(verbose: Verbose, stream: Optional[TextIO] = None) -> int:
    stream = stream or sys.stdout
    if verbose == "auto":
        return 1 if _isatty(stream) else 0
    if verbose not in (0, 1, 2, False, True):
        from ..errors import ConfigError

        raise ConfigError(f"verbose must be 0, 1, 2 or 'auto', got {verbose!r}")
    return int(verbose)


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def format_logs(logs: dict[str, Any]) -> str:
    """``loss 0.1234 · accuracy 0.9812 · val_loss ...``"""
    parts = []
    for key, value in logs.items():
        if isinstance(value, float):
            parts.append(f"{key} {value:.4g}" if key == "lr" else f"{key} {value:.4f}")
        elif isinstance(value, int) and not isinstance(value, bool):
            parts.append(f"{key} {value}")
    return " · ".join(parts)


class Progress:
    """Shows training progress; ``fit`` calls ``epoch_begin``, ``batch_end`` and ``epoch_end``."""

    def __init__(self, verbose: Verbose = "auto", stream: Optional[TextIO] = None) -> None:
        self.stream = stream or sys.stdout
        self.verbose = resolve_verbose(verbose, self.stream)
        self._bar: Any = None
        self._t0 = 0.0
        self.use_bar = (
            self.verbose == 1 and _isatty(self.stream) and _columns(self.stream) >= 40 and _tqdm() is not None
        )

    def epoch_begin(self, epoch: int, epochs: int, n_batches: int) -> None:
        self._t0 = time.perf_counter()
        self._epoch, self._epochs = epoch, epochs
        if self.use_bar:
            self._bar = _tqdm()(
                total=n_batches,
                desc=f"epoch {epoch + 1}/{epochs}",
                unit="batch",
                leave=True,
                file=self.stream,
                dynamic_ncols=True,
            )

    def batch_end(self, running: dict[str, float]) -> None:
        if self._bar is not None:
            self._bar.set_postfix_str(format_logs(running), refresh=False)
            self._bar.update(1)

    def epoch_end(self, logs: dict[str, Any]) -> None:
        seconds = time.perf_counter() - self._t0
        if self._bar is not None:
            train = {k: v for k, v in logs.items() if not k.startswith("val_") and k != "lr"}
            self._bar.set_postfix_str(format_logs(train), refresh=True)
            self._bar.close()
            self._bar = None
            rest = {k: v for k, v in logs.items() if k not in train}
            if rest:
                print(f"  {format_logs(rest)}", file=self.stream, flush=True)
        elif self.verbose:
            print(
                f"epoch {self._epoch + 1}/{self._epochs} · {format_logs(logs)} · {seconds:.1f}s",
                file=self.stream,
                flush=True,
            )

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def _columns(stream: Any) -> int:
    """The terminal's width (80 when it cannot be asked; 0 for a terminal without a size)."""
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, ValueError, OSError, io.UnsupportedOperation):
        return 80


def _tqdm() -> Any:
    try:
        from tqdm import tqdm
    except ImportError:  # tqdm is in the "train" extra; without it, one line per epoch
        return None
    return tqdm
