"""``learnflux summary MODEL|CONFIG``: layers, output shapes, parameters and FLOPs per sample."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Optional

from ..errors import ConfigError

#: per-sample shapes of the built-in datasets (a config on CSV data needs the file or input_shape)
_SAMPLE_SHAPES = {"digits": (1, 8, 8), "mnist": (1, 28, 28), "fashion": (1, 28, 28)}


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "summary",
        help="table of a model's layers: output shapes, parameters, FLOPs",
        description="Show a model's layers with their output shapes, parameter counts and FLOPs "
        "per sample (one forward pass, a multiply-add counting 2), and the totals. MODEL is a "
        "saved model file; CONFIG a TOML run config (its model is built, not trained).",
    )
    p.add_argument("target", metavar="MODEL|CONFIG", help="a model file or a .toml run config")
    p.add_argument(
        "--input-shape",
        metavar="C,H,W",
        help="per-sample input shape, when the model does not start with an Input layer of known shape",
    )
    p.add_argument("--json", action="store_true", help="print the table as JSON")
    p.set_defaults(func=main)


def _parse_shape(text: Optional[str]) -> Optional[tuple[int, ...]]:
    if not text:
        return None
    try:
        shape = tuple(int(s) for s in text.replace("x", ",").split(",") if s.strip())
    except ValueError:
        raise ConfigError(f"--input-shape {text!r}: expected integers such as 1,28,28") from None
    if not shape or any(s < 1 for s in shape):
        raise ConfigError(f"--input-shape {text!r}: expected positive integers such as 1,28,28")
    return shape


def main(args: argparse.Namespace) -> int:
    from ..training.summary import summary

    path = Path(args.target)
    if not path.is_file():
        raise ConfigError(f"{path}: no such file")
    shape = _parse_shape(args.input_shape)
    if path.suffix.lower() == ".toml":
        model = model_from_config(path, shape)
        shape = None
    else:
        from ..files.io import load

        model = load(path)
    table = summary(model, shape)
    print(json.dumps(table.to_dict()) if args.json else table)
    return 0


def model_from_config(path: Path, shape: Optional[tuple] = None) -> Any:
    """Build (untrained) the model a config describes, with every check ``train`` makes."""
    from ..config import build_model, load_config, load_data

    cfg = load_config(path)
    if shape is None and cfg.input_shape is None:
        known = _SAMPLE_SHAPES.get(cfg.data["dataset"])
        shape = known if known is not None else load_data(cfg).sample_shape
    return build_model(cfg, shape)
