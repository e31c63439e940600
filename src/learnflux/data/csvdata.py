"""Tabular data from CSV files: ``load_csv`` → ``(x, y)`` with errors naming the file and line."""

from __future__ import annotations

import csv
import gzip
import io
import os
import warnings
from pathlib import Path
from typing import Any, List, Optional, Tuple, Union

import numpy as np

from ..errors import ConfigError, DataError

PathLike = Union[str, "os.PathLike[str]"]
Target = Optional[Union[int, str]]


def _read_text(path: Path, reader: str = "load_csv") -> str:
    """A UTF-8 text file (gzipped or not, a byte-order mark dropped); ``reader`` names the
    caller in the error when the file cannot be read."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise DataError(f"{reader}: cannot read {path}: {e.strerror or e}") from None
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as e:
            raise DataError(f"{path}: corrupt gzip data ({e})") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text ({e})") from None


def _is_number(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


def _looks_like_header(fields: List[str]) -> bool:
    """A first row with a non-empty field that is not a number holds column names."""
    return any(f.strip() and not _is_number(f) for f in fields)


def _resolve_target(target: Target, names: Optional[List[str]], ncols: int, path: Path) -> Optional[int]:
    if target is None:
        return None
    if isinstance(target, str):
        if names is None:
            raise ConfigError(f"{path}: target={target!r} is a column name but the file has no header row")
        stripped = [n.strip() for n in names]
        if target.strip() not in stripped:
            raise ConfigError(f"{path}: no column named {target!r}; the columns are {stripped}")
        return stripped.index(target.strip())
    if isinstance(target, bool) or not isinstance(target, (int, np.integer)):
        raise ConfigError(f"load_csv: target must be a column index, a column name or None, got {target!r}")
    if not -ncols <= int(target) < ncols:
        raise ConfigError(f"{path}: target column {target} out of range for {ncols} columns")
    return int(target) % ncols


def _first_row(text: str, delimiter: str) -> Tuple[Optional[List[str]], int]:
    """The first non-blank row and the number of physical lines up to and including it."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        for fields in reader:
            if fields and any(f.strip() for f in fields):
                return fields, reader.line_num
    except csv.Error:
        pass
    return None, 0


def _fast_numeric(
    text: str, header: Union[str, bool], delimiter: str
) -> Optional[Tuple[np.ndarray, Optional[List[str]]]]:
    """All-numeric files through NumPy's C parser; ``None`` when anything is unusual (then the
    careful Python parser runs and reports the exact line and column of the problem)."""
    first, skip = _first_row(text, delimiter)
    if first is None:
        return None
    names = None
    if header is True or (header == "infer" and _looks_like_header(first)):
        names = first
    else:
        skip -= 1
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # e.g. "input contained no data": let the careful parser explain
            table = np.loadtxt(
                io.StringIO(text),
                delimiter=delimiter,
                skiprows=skip,
                dtype=np.float64,
                ndmin=2,
                quotechar='"',
                comments=None,
            )
    except (ValueError, IndexError, UserWarning):
        return None
    if table.shape[0] == 0 or (names is not None and table.shape[1] != len(names)):
        return None
    return table, names


def _finish(
    x: np.ndarray, values: Optional[np.ndarray], dtype: Any, target_dtype: Any, return_classes: bool
) -> Any:
    """Numeric target: int64 when every value is a whole number, else ``dtype``."""
    if values is None:
        y = None
    else:
        whole = bool(np.isfinite(values).all() and (values == np.round(values)).all())
        y = values.astype(target_dtype or (np.int64 if whole else dtype))
    return (x, y, []) if return_classes else (x, y)


def load_csv(
    path: PathLike,
    target: Target = -1,
    header: Union[str, bool] = "infer",
    delimiter: str = ",",
    dtype: Any = np.float32,
    target_dtype: Any = None,
    return_classes: bool = False,
) -> Union[Tuple[np.ndarray, Optional[np.ndarray]], Tuple[np.ndarray, Optional[np.ndarray], List[str]]]:
    """Read a CSV file (or a gzipped one) of numbers into ``(x, y)``.

    Every row must have the same number of fields; blank lines are skipped. All columns but the
    target are features and must be numbers. The target column may hold numbers (``y`` is int64 when
    they are all whole numbers, else ``dtype``; force one with ``target_dtype``) or class names
    (``y`` is then the int64 index of each name in the sorted list of names, which
    ``return_classes=True`` also returns). A bad row raises :class:`~learnflux.errors.DataError`
    naming the file, the line and the column.

    Args:
        path: the CSV file.
        target: the target column: an index (``-1`` the last), a name from the header, or ``None``
            (no target: ``y`` is ``None``).
        header: ``True`` (the first row holds column names), ``False``, or ``"infer"``: a header
            when the first row has a field that is not a number.
        delimiter: the field separator.
        dtype: dtype of ``x`` (float32 by default).
        target_dtype: dtype of ``y`` (default: see above).
        return_classes: also return the class names (``[]`` for a numeric target).

    Returns:
        ``(x, y)`` with ``x`` of shape ``(rows, features)``, or ``(x, y, classes)``.
    """
    path = Path(path)
    if not isinstance(delimiter, str) or len(delimiter) != 1:
        raise ConfigError(f"load_csv: delimiter must be one character, got {delimiter!r}")
    if header not in ("infer", True, False):
        raise ConfigError(f"load_csv: header must be 'infer', True or False, got {header!r}")
    text = _read_text(path)
    fast = _fast_numeric(text, header, delimiter)
    if fast is not None:
        table, names = fast
        ncols = table.shape[1]
        col = _resolve_target(target, names, ncols, path)
        feature_cols = [j for j in range(ncols) if j != col]
        if not feature_cols:
            raise DataError(f"{path}: no feature column besides the target")
        return _finish(
            table[:, feature_cols].astype(dtype),
            None if col is None else table[:, col],
            dtype,
            target_dtype,
            return_classes,
        )
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    rows: List[List[str]] = []
    lines: List[int] = []
    try:
        for fields in reader:
            if not fields or all(not f.strip() for f in fields):
                continue
            rows.append(fields)
            lines.append(reader.line_num)
    except csv.Error as e:
        raise DataError(f"{path}, line {reader.line_num}: {e}") from None
    if not rows:
        raise DataError(f"{path}: no data rows")

    names: Optional[List[str]] = None
    if header is True or (header == "infer" and _looks_like_header(rows[0])):
        names, rows, lines = rows[0], rows[1:], lines[1:]
        if not rows:
            raise DataError(f"{path}: a header row but no data rows")
    ncols = len(names) if names is not None else len(rows[0])
    col = _resolve_target(target, names, ncols, path)
    label = (
        (lambda j: f"column {j} ({names[j].strip()!r})") if names is not None else (lambda j: f"column {j}")
    )

    feature_cols = [j for j in range(ncols) if j != col]
    if not feature_cols:
        raise DataError(f"{path}: no feature column besides the target")
    x = np.empty((len(rows), len(feature_cols)), dtype=np.float64)
    raw_target: List[str] = []
    for i, (fields, line) in enumerate(zip(rows, lines, strict=True)):
        if len(fields) != ncols:
            raise DataError(f"{path}, line {line}: expected {ncols} fields, got {len(fields)}")
        try:
            x[i] = [float(fields[j]) for j in feature_cols]
        except ValueError:
            for j in feature_cols:
                if not _is_number(fields[j]):
                    value = fields[j].strip()
                    what = "an empty field" if not value else f"{value!r} is not a number"
                    raise DataError(f"{path}, line {line}, {label(j)}: {what}") from None
            raise  # pragma: no cover
        if col is not None:
            raw_target.append(fields[col].strip())
    x_out = x.astype(dtype, copy=False)

    if col is None or all(_is_number(v) for v in raw_target):
        values = None if col is None else np.array([float(v) for v in raw_target])
        return _finish(x_out, values, dtype, target_dtype, return_classes)
    for v, line in zip(raw_target, lines, strict=True):
        if not v:
            raise DataError(f"{path}, line {line}, {label(col)}: an empty target")
    classes = sorted(set(raw_target))
    index = {c: k for k, c in enumerate(classes)}
    y = np.array([index[v] for v in raw_target], dtype=target_dtype or np.int64)
    if return_classes:
        return x_out, y, classes
    return x_out, y
