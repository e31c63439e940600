"""How the ``learnflux`` command ends when something goes wrong: one message naming the file or
option at fault and what to do, and an exit code saying what kind of failure it was (never a
traceback, unless ``--debug``)."""

from __future__ import annotations

import errno
from typing import Optional

from ..errors import (
    ConfigError,
    DataError,
    DownloadError,
    DtypeError,
    FileFormatError,
    IndexRangeError,
    LearnfluxError,
    ShapeError,
)

EXIT_OK = 0
#: the run itself failed (training stopped on NaN or infinite values...)
EXIT_FAILED = 1
#: the command line, a config file or a layer's arguments are wrong
EXIT_USAGE = 2
#: a data, model or image file cannot be used (corrupt, truncated, hostile, wrong shape)
EXIT_DATA = 3
#: a file or folder cannot be read or written (missing, permissions, not a folder, disk full)
EXIT_FILES = 4
#: a bug in learnflux
EXIT_INTERNAL = 70
#: Ctrl-C (SIGINT)
EXIT_INTERRUPTED = 130

EXIT_CODES_HELP = """\
exit codes:
  0    success
  1    the run failed (e.g. training stopped on NaN or infinite values)
  2    usage or configuration error (the command line, a config file, a layer's arguments)
  3    data error: a data, model or image file that cannot be used (corrupt, truncated,
       hostile, too large, or not of the shape the model takes)
  4    a file or folder cannot be read or written (missing, permissions, not a folder, disk full)
  70   internal error: a bug in learnflux (please report it with the output of --debug)
  130  interrupted (Ctrl-C); an interrupted `learnflux train` resumes with --resume RUN_DIR
--debug (before or after the command) shows the traceback of an error."""

_ERRNO_HINTS = {
    errno.EACCES: "check the permissions, or choose another location",
    errno.EPERM: "check the permissions, or choose another location",
    errno.EROFS: "the file system is read-only: choose another location",
    errno.ENOSPC: "the disk is full: free some space or choose another location",
    errno.ENOTDIR: "a part of that path is a file, not a folder",
    errno.EISDIR: "that is a folder, not a file",
    errno.ENOENT: "check the path",
    errno.EEXIST: "it already exists",
}


def _os_message(exc: OSError) -> str:
    what = exc.strerror or str(exc) or type(exc).__name__
    name = exc.filename if exc.filename is not None else None
    text = f"{name}: {what}" if name is not None else what
    if exc.filename2 is not None:
        text += f" (and {exc.filename2})"
    hint = _ERRNO_HINTS.get(exc.errno) if exc.errno is not None else None
    return f"{text}; {hint}" if hint else text


def classify(exc: BaseException) -> tuple[int, Optional[str]]:
    """``(exit code, message)`` for an exception that ends the command (``None``: print
    nothing, e.g. a closed pipe)."""
    if isinstance(exc, KeyboardInterrupt):
        return EXIT_INTERRUPTED, "interrupted"
    if isinstance(exc, (FileFormatError, DataError, DownloadError)):
        return EXIT_DATA, str(exc)
    if isinstance(exc, ConfigError):
        return EXIT_USAGE, str(exc)
    if isinstance(exc, (ShapeError, DtypeError, IndexRangeError)):
        return EXIT_DATA, str(exc)
    if isinstance(exc, LearnfluxError):
        return EXIT_FAILED, str(exc)
    if isinstance(exc, BrokenPipeError):
        return 141, None  # the reader of the output went away (``| head``): nothing to say
    if isinstance(exc, OSError):
        return EXIT_FILES, _os_message(exc)
    if isinstance(exc, MemoryError):
        return EXIT_FAILED, "out of memory; try a smaller --batch-size or a smaller model"
    return (
        EXIT_INTERNAL,
        f"internal error ({type(exc).__name__}: {exc}); this is a bug in learnflux: run the "
        "command again with --debug for the traceback and report it",
    )
