"""The schema of a run config: which values each key takes.

The arguments of a layer, loss, optimizer or schedule are read from its class: their names from
the constructor's signature, their types from its annotations (``typing.get_type_hints``), so
every argument is checked, those whose default is ``None`` included. The keys of ``[data]`` and
``[training]`` are declared below in the same terms. A TOML value fits an annotation when it is:

=========================================================  ======================================
annotation                                                 TOML value
=========================================================  ======================================
``int``                                                    an integer (``true`` is not one)
``float``                                                  a number (integer or float)
``bool``                                                   ``true`` or ``false``
``str``                                                    a string
``Literal["a", "b"]``                                      one of the choices, of the same type
``tuple[int, int]``                                        a list of exactly two integers
``tuple[int, ...]``, ``list[int]``, ``Sequence[int]`` ...  a list of integers
``Optional[X]``, ``Union[X, Y]``, ``X | Y``                a value that fits one of them
``dict[str, X]``                                           a table of such values
``Any``, or a typing form not listed here                  anything (the constructor checks it)
another class                                              an instance of it (no TOML value is
                                                           a ``numpy.random.Generator``)
=========================================================  ======================================

An argument without an annotation is checked against the type of its default (when the default
is a bool, int, float or string).
"""

from __future__ import annotations

import collections.abc as cabc
import inspect
import re
import types
import typing
from dataclasses import dataclass
from typing import Any, Literal, Optional, Union

#: the tables a config may hold
TABLES = ("data", "model", "loss", "optimizer", "schedule", "training", "output")
DATASETS = ("digits", "mnist", "fashion", "csv", "text")
#: the values of the [data] keys a config leaves out (``learnflux train --help`` prints them)
DATA_DEFAULTS: dict[str, Any] = {
    "dataset": "digits",
    "download": False,
    "target": -1,
    "val_fraction": 0.15,
    "test_fraction": 0.15,
    "stratify": True,
    "standardize": False,
    "limit": 0,
    "context": 64,
}
#: the values of the [training] keys a config leaves out (``metrics = None``: accuracy for class
#: labels, nothing for numeric targets)
TRAINING_DEFAULTS: dict[str, Any] = {
    "epochs": 20,
    "batch_size": 32,
    "seed": 0,
    "metrics": None,
    "clip_norm": 0,
    "accumulate": 1,
    "early_stopping": 0,
}
#: the optimizer of a config without an [optimizer] table
OPTIMIZER_DEFAULT: dict[str, Any] = {"type": "Adam", "args": {"lr": 0.001}}
#: the keys of [data] and their types
DATA_KEYS: dict[str, Any] = {
    "dataset": Literal[DATASETS],  # type: ignore[valid-type]
    "root": str,
    "download": bool,
    "path": str,
    "target": Union[int, str],
    "val_fraction": float,
    "test_fraction": float,
    "stratify": bool,
    "standardize": bool,
    "limit": int,
    "base_url": str,
    "text": str,
    "context": int,
    "stride": int,
}
#: the keys of [training] and their types (each metric name is checked by ``get_metric``)
TRAINING_KEYS: dict[str, Any] = {
    "epochs": int,
    "batch_size": int,
    "seed": int,
    "metrics": list,
    "clip_norm": float,
    "accumulate": int,
    "early_stopping": int,
}
#: constructor arguments a config cannot give: the run supplies them (the layers draw their
#: weights from ``training.seed``; the optimizer gets the model's parameters, the schedule the
#: optimizer)
SUPPLIED = {"model.layers": ("rng",), "loss": (), "optimizer": ("params",), "schedule": ("optimizer",)}
#: layer arguments inferred from the incoming shape when a layer table leaves them out
#: (name -> the axis of the per-sample shape they equal)
INFERRED = {
    "in_features": -1,
    "in_channels": 0,
    "num_features": 0,
    "embed_dim": -1,
    "d_model": -1,
    "input_size": -1,
}

_NAMES = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
_PLURALS = {bool: "true/false values", int: "integers", float: "numbers", str: "strings"}
#: the classes (and generic origins) whose TOML value is a list
_SEQUENCES = (
    list,
    tuple,
    cabc.Sequence,
    cabc.MutableSequence,
    cabc.Iterable,
    cabc.Collection,
)
_MAPPINGS = (dict, cabc.Mapping, cabc.MutableMapping)
_UNIONS = (Union, types.UnionType)


@dataclass(frozen=True)
class Argument:
    """One constructor argument a config may give: its annotation and whether it has a default."""

    name: str
    hint: Any
    required: bool


def arguments(cls: type, supplied: tuple[str, ...] = ()) -> dict[str, Argument]:
    """The arguments of ``cls``'s constructor a config may give (all but ``self``, ``*args``,
    ``**kwargs`` and the names in ``supplied``), in the signature's order."""
    try:
        hints = typing.get_type_hints(cls.__init__)
    except Exception:  # an annotation that does not resolve (a name imported for type checkers only)
        hints = {}
    out = {}
    for name, p in inspect.signature(cls.__init__).parameters.items():
        if name == "self" or name in supplied or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        hint = hints.get(name, _from_default(p.default))
        out[name] = Argument(name, hint, p.default is p.empty)
    return out


def _from_default(default: Any) -> Any:
    """The type an unannotated argument is checked against: its default's, if a TOML type."""
    return type(default) if type(default) in _NAMES else Any


def mismatch(value: Any, hint: Any) -> Optional[str]:
    """``None`` when the TOML ``value`` fits the annotation ``hint``, else
    ``"expected <what fits>, got <value>"``."""
    return None if fits(value, hint) else f"expected {describe(hint)}, got {value!r}"


def fits(value: Any, hint: Any) -> bool:
    """Whether the TOML ``value`` fits the annotation ``hint`` (see the module docstring)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return True
    if hint is None or hint is type(None):
        return value is None
    if origin in _UNIONS:
        return any(fits(value, a) for a in args)
    if origin is Literal:
        return any(value == c and type(value) is type(c) for c in args)
    if hint in _SEQUENCES or origin in _SEQUENCES:
        return _fits_sequence(value, origin or hint, args)
    if hint in _MAPPINGS or origin in _MAPPINGS:
        item = args[1] if len(args) == 2 else Any
        return isinstance(value, dict) and all(fits(v, item) for v in value.values())
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(hint, type):
        return isinstance(value, hint)
    return True  # a typing form this schema does not read (Callable, a TypeVar ...)


def _fits_sequence(value: Any, kind: Any, args: tuple) -> bool:
    if not isinstance(value, (list, tuple)):
        return False
    if kind is tuple and args and args[-1] is not Ellipsis:  # tuple[int, int]: that many items
        return len(value) == len(args) and all(fits(v, a) for v, a in zip(value, args, strict=True))
    item = args[0] if args else Any
    return all(fits(v, item) for v in value)


def describe(hint: Any) -> str:
    """What fits ``hint``, in words: ``"an integer or a list of integers"``."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return "anything"
    if origin in _UNIONS:
        return _either([describe(a) for a in args if a is not type(None)])
    if origin is Literal:
        return f"one of {list(args)!r}"
    if hint in _SEQUENCES or origin in _SEQUENCES:
        return _describe_sequence(origin or hint, args)
    if hint in _MAPPINGS or origin in _MAPPINGS:
        return "a table"
    if hint in _NAMES:
        return _NAMES[hint]
    return f"a {getattr(hint, '__name__', hint)}"


def _describe_sequence(kind: Any, args: tuple) -> str:
    if kind is tuple and args and args[-1] is not Ellipsis:
        if len(set(args)) == 1:
            return f"a list of {len(args)} {_plural(args[0])}"
        return f"a list [{', '.join(describe(a) for a in args)}]"
    if not args or args[0] is Any:
        return "a list"
    return f"a list of {_plural(args[0])}"


def _plural(hint: Any) -> str:
    return _PLURALS.get(hint) or f"items each {describe(hint)}"


def _either(parts: list[str]) -> str:
    """``"a, b or c"`` without repeats; "a list of 2 integers" goes when "a list of integers" is
    there (``int | tuple[int, int] | list[int]`` reads "an integer or a list of integers")."""
    unique = list(dict.fromkeys(parts))
    general = [re.sub(r"^a list of \d+ ", "a list of ", p) for p in unique]
    unique = [p for p, g in zip(unique, general, strict=True) if g == p or g not in unique]
    if len(unique) == 1:
        return unique[0]
    return f"{', '.join(unique[:-1])} or {unique[-1]}"
