"""``learnflux export MODEL --format onnx|safetensors --out FILE``: a saved model as an ONNX graph
(checked in ONNX Runtime when it is installed) or its weights as safetensors (docs/exchange.md)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, LearnfluxError
from .summary import _parse_shape

SUFFIXES = {"onnx": ".onnx", "safetensors": ".safetensors"}

HELP = """\
formats:
  onnx         the model's inference phase as an ONNX graph (opset 17, float32, dynamic batch
               axis, input 'input', output 'output', weights named as in its state dict); then
               run in ONNX Runtime, when installed, on random samples and compared with
               learnflux (--no-check skips that). Needs pip install 'learnflux[onnx]'.
  safetensors  the weights and buffers (the state dict, PyTorch's names); load them with
               lf.load_safetensors(model, FILE) or safetensors.torch.load_file(FILE).
               Needs pip install 'learnflux[safetensors]'.
The format defaults to the suffix of --out, and --out to MODEL with the format's suffix.
The standardisation a run may apply to its inputs (preprocess.json beside MODEL) is not part of
the exported graph: apply it before running the graph.

examples:
  learnflux export runs/digits/model.lf --format onnx --out digits.onnx
  learnflux export runs/digits/model.lf --out digits.safetensors
"""


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "export",
        help="export a saved model to ONNX or its weights to safetensors",
        description="Export a saved model (lf.save format) for other frameworks and runtimes.",
        epilog=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("model", metavar="MODEL", help="a model file (model.lf of a run folder)")
    p.add_argument("--format", choices=sorted(SUFFIXES), help="onnx or safetensors (default: from --out)")
    p.add_argument(
        "--out", metavar="FILE", help="the file to write (default: MODEL with the format's suffix)"
    )
    p.add_argument(
        "--input-shape",
        metavar="C,H,W",
        help="onnx: per-sample input shape, when the model does not start with an Input layer of known shape",
    )
    p.add_argument("--no-check", action="store_true", help="onnx: do not run the graph in ONNX Runtime")
    p.set_defaults(func=main)


def _format_and_out(args: argparse.Namespace) -> tuple[str, Path]:
    fmt = args.format
    out = Path(args.out) if args.out else None
    if fmt is None:
        if out is None or out.suffix.lower() not in SUFFIXES.values():
            raise ConfigError("give --format onnx or --format safetensors (or an --out FILE ending in one)")
        fmt = next(k for k, v in SUFFIXES.items() if v == out.suffix.lower())
    if out is None:
        out = Path(args.model).with_suffix(SUFFIXES[fmt])
    if out.resolve() == Path(args.model).resolve():
        raise ConfigError(f"--out {out} is the model file itself; choose another file")
    return fmt, out


def main(args: argparse.Namespace) -> int:
    from ..files.io import load

    if not Path(args.model).is_file():
        raise ConfigError(f"{args.model}: no such model file")
    fmt, out = _format_and_out(args)
    shape = _parse_shape(args.input_shape)
    if shape is not None and fmt != "onnx":
        raise ConfigError("--input-shape is for --format onnx (safetensors files hold weights only)")
    model = load(args.model)
    if fmt == "safetensors":
        from ..exchange import save_safetensors

        save_safetensors(model, out)
        state = model.state_dict()
        values = sum(int(v.size) for v in state.values())
        print(f"wrote {out}: {len(state)} tensors, {values:,} values ({out.stat().st_size / 1024:.1f} KiB)")
        return 0
    from ..exchange import export_onnx
    from ..exchange.onnx_graph import OPSET

    proto = export_onnx(model, out, shape)
    graph = proto.graph
    inputs = ", ".join(_signature(v) for v in graph.input)
    print(
        f"wrote {out}: ONNX opset {OPSET}, {len(graph.node)} node{'s' * (len(graph.node) != 1)}, "
        f"input{'s' * (len(graph.input) > 1)} {inputs} -> output {_signature(graph.output[0])} "
        f"({out.stat().st_size / 1024:.1f} KiB)"
    )
    if (Path(args.model).parent / "preprocess.json").is_file():
        print(
            f"note: {Path(args.model).parent / 'preprocess.json'} standardises this model's inputs; "
            "the graph does not: apply it before running the graph"
        )
    if not args.no_check:
        print(check_in_onnx_runtime(model, out, proto))
    return 0


#: ONNX's element type code of int64 (TensorProto.INT64; ids entering an Embedding)
_INT64 = 7


def _signature(value: Any) -> str:
    dims = [d.dim_param or str(d.dim_value) for d in value.type.tensor_type.shape.dim]
    kind = "int64" if value.type.tensor_type.elem_type == _INT64 else "float32"
    return f"'{value.name}' ({', '.join(dims)}) {kind}"


def check_in_onnx_runtime(model: Any, path: Path, proto: Any, samples: int = 8) -> str:
    """Run the exported graph in ONNX Runtime on random samples and compare with learnflux's
    inference output; a :class:`LearnfluxError` when they differ by more than 1e-4 of the
    output's scale, a line saying what was checked otherwise."""
    try:
        import onnxruntime
    except ImportError:
        return "not checked in ONNX Runtime (not installed: pip install 'learnflux[onnx]')"
    from ..exchange.onnx import _entry

    rng = np.random.default_rng(0)
    xs = []
    for k, spec in enumerate(proto.graph.input):
        shape = (samples, *[d.dim_value for d in spec.type.tensor_type.shape.dim[1:]])
        if spec.type.tensor_type.elem_type == _INT64:  # int64 ids: valid ones for the entry layer
            high = getattr(_entry(model, k), "num_embeddings", 1)
            xs.append(rng.integers(0, high, size=shape))
        else:
            xs.append(rng.standard_normal(shape).astype(np.float32))
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {spec.name: x for spec, x in zip(proto.graph.input, xs, strict=True)})[0]
    expected = model.predict(xs[0] if len(xs) == 1 else xs)
    scale = max(float(np.max(np.abs(expected))), 1e-30)
    diff = float(np.max(np.abs(got - expected))) / scale
    if got.shape != expected.shape or not diff <= 1e-4:
        raise LearnfluxError(
            f"the exported graph disagrees with learnflux on random samples (largest difference "
            f"{diff:.2e} of the output's scale, shapes {got.shape} and {expected.shape}); please report it"
        )
    return (
        f"checked in ONNX Runtime {onnxruntime.__version__} on {samples} random samples: "
        f"largest difference {diff:.1e} of the output's scale"
    )
