"""``learnflux explain``: replay the seed article's worked example ("The Weights") step by step,
or record the learning flow of any model (``learnflux explain MODEL``, see
:mod:`learnflux.cli.explain_model`).

The model is ``L1 = Input(3)``, ``L2 = Linear(3 → 1)`` without bias (``o2 = w2 · o1``),
``L3 = ReLU``, the loss ``½(o3 − y)²``; the start weights are
``w2 = (1/200, −3000/11600000, 1/5800)``, the data the article's three samples in dataset order,
``α = 1`` and batch size 1 by default. In exact arithmetic (the default) every number is the
article's; ``--dtype float32`` / ``float64`` replays it in floating point and explains where and
why the results differ.
"""

from __future__ import annotations

import argparse
from fractions import Fraction
from typing import Any, Optional

import numpy as np

from ..core.model import Sequential
from ..errors import ConfigError
from ..layers import Input, Linear, ReLU
from ..losses import SquaredError
from ..numbers import is_exact, resolve_dtype
from ..optim import SGD
from ..training.trace import Trace, format_tensor, format_value, record
from .argtypes import positive_int

#: the article's data: (broccoli, Tagada strawberries, workout hours) → good shape (1) or not (0)
SEED_X = [[100, 2000, 100], [200, 0, 0], [0, 2000, 3000]]
SEED_Y = [[0], [1], [1]]
#: the article's start weights of L2
SEED_W2 = [Fraction(1, 200), Fraction(-3000, 11_600_000), Fraction(1, 5800)]


def seed_example(dtype: Any = "exact") -> tuple[Sequential, np.ndarray, np.ndarray]:
    """The seed's model (weights set to the article's ``w2``) and data, in ``dtype``."""
    model = Sequential(Input(3), Linear(3, 1, bias=False), ReLU()).astype(dtype)
    model.layers[1].weight.value = np.array([SEED_W2], dtype=object)
    return model, np.array(SEED_X), np.array(SEED_Y)


def parse_lr(text: Any, dtype: Any) -> Any:
    """The learning rate in the run's arithmetic: in exact mode ``"1e-7"`` is exactly 1/10⁷
    (and ``"1/3"`` is one third); in float mode the nearest float."""
    try:
        value = text if isinstance(text, Fraction) else Fraction(str(text).strip())
    except (ValueError, ZeroDivisionError):
        raise ConfigError(f"--lr: {text!r} is not a number (examples: 1, 0.5, 1e-7, 1/3)") from None
    return value if is_exact(resolve_dtype(dtype)) else float(value)


def run(dtype: Any = "exact", lr: Any = 1, batch_size: int = 1, epochs: int = 1) -> Trace:
    """Replay the seed example and return its :class:`~learnflux.trace.Trace`."""
    if int(batch_size) < 1:
        raise ConfigError(f"--batch-size must be at least 1, got {batch_size}")
    if int(epochs) < 1:
        raise ConfigError(f"--epochs must be at least 1, got {epochs}")
    alpha = parse_lr(lr, dtype)
    model, x, y = seed_example(dtype)
    trace = record(
        model,
        SquaredError(),
        SGD(model.parameters(), lr=alpha),
        x,
        y,
        batch_size=int(batch_size),
        epochs=int(epochs),
        lr=alpha,
    )
    return trace


# ---------------------------------------------------------------------------------- comments
def _step_comment(step: Any, batch_size: int) -> str:
    """One line saying what happened in this step, for a learner."""
    o2 = step.outputs[1][:, 0]
    d4 = step.deltas[3][:, 0]
    d3 = step.deltas[2][:, 0]
    grad = step.grads["w2"].reshape(-1)
    parts = []
    if batch_size > 1:
        parts.append(
            f"δ4 carries the 1/n of the batch mean (n = {len(step.samples)}); δw2 sums "
            "δ3·o1 over the batch, i.e. the mean of the per-sample gradients."
        )
    zero_pass = [s + 1 for s, a, d in zip(step.samples, o2, d4, strict=True) if a == 0 and d != 0]
    blocked = [s + 1 for s, a, d in zip(step.samples, o2, d4, strict=True) if a < 0 and d != 0]
    if zero_pass:
        parts.append(
            f"o2 = 0 for sample {', '.join(map(str, zero_pass))}: ReLU's derivative at 0 "
            "is 1 (x ≥ 0), so δ4 passes to δ3 and w2 learns."
        )
    if blocked:
        parts.append(
            f"o2 < 0 for sample {', '.join(map(str, blocked))}: ReLU blocks the flow "
            "(δ3 = 0), nothing is learned from it."
        )
    if all(g == 0 for g in grad):
        if all(v == 0 for v in d4):
            parts.append(
                "loss = 0: the model already gives the expected result; nothing to learn, w2 is unchanged."
            )
        elif all(v == 0 for v in d3) and not blocked:
            parts.append("δ3 = 0: the learning flow stops at ReLU, so w2 is unchanged.")
    else:
        parts.append("w2 moves against its gradient: ŵ2 = w2 − α·δw2.")
    return " ".join(parts)


def _float_notes(trace: Trace, exact: Trace) -> list[str]:
    """How and why the float run differs from the exact one (docs/conventions.md, 'Numbers and dtypes')."""
    name = trace.dtype
    bits = 24 if name == "float32" else 53
    w0 = trace.initial.weights["w2"].reshape(-1)
    errors = [float(Fraction(float(w)) - t) for w, t in zip(w0, SEED_W2, strict=True)]
    notes = [
        f"{name} keeps {bits} significant bits (about {7 if bits == 24 else 16} decimal digits). "
        "1/200, -3/11600 and 1/5800 have no finite binary expansion, so the start weights are "
        f"rounded: w2 = {format_tensor(w0)} (rounding errors " + ", ".join(f"{e:.2g}" for e in errors) + ").",
        "For samples 1 and 3 the exact o2 is exactly 0: the three products cancel. In floating "
        "point the rounded products leave a tiny residue, of either sign. Before training "
        f"{name} gives o2 = {format_value(trace.initial.outputs[1][0, 0])} for sample 1 and "
        f"o2 = {format_value(trace.initial.outputs[1][2, 0])} for sample 3 (the residue depends on "
        "the order in which the library adds the products, so a sample can give a different one "
        "alone and in a batch).",
        "At o2 = 0 everything hinges on ReLU: exactly 0 counts as x ≥ 0 (derivative 1) and "
        "lets δ4 through; a negative residue blocks it (δ3 = 0, nothing learned); a positive one "
        "lets it through (and, with y = 0, becomes an error δ4 of its own).",
    ]
    diverged = False
    for fs, es in zip(trace.steps, exact.steps, strict=True):
        for j, s in enumerate(fs.samples):
            e_o2 = es.outputs[1][j, 0]
            f_o2 = fs.outputs[1][j, 0]
            f_d3 = fs.deltas[2][j, 0]
            e_d3 = es.deltas[2][j, 0]
            if e_o2 == 0 and (f_o2 != 0 or (f_d3 == 0) != (e_d3 == 0)):
                if f_d3 == 0 and e_d3 != 0:
                    what = (
                        f"ReLU blocks the flow: δ3 = 0 instead of {format_value(e_d3)}, so "
                        "this sample teaches nothing, whereas the exact run learns from it."
                    )
                elif f_d3 != 0 and e_d3 == 0:
                    what = (
                        f"ReLU lets the residue through: δ3 = {format_value(f_d3)} instead of "
                        "0, so w2 moves (by −α·δ3·o1) where the exact run does not move."
                    )
                elif f_d3 != 0:
                    what = (
                        f"ReLU lets δ through, as in the exact run: δ3 = {format_value(f_d3)} "
                        f"(exact {format_value(e_d3)}), so the update is approximately the "
                        "article's."
                    )
                else:
                    what = "δ3 = 0 in both runs."
                notes.append(
                    f"Step {fs.index} (sample {s + 1}): exact o2 = 0, {name} o2 = "
                    f"{format_value(f_o2)}. {what}"
                )
        gap = _max_rel_gap(fs.weights_after["w2"], es.weights_after["w2"])
        if not diverged and gap > 1e-3 and fs.index < len(trace.steps):
            diverged = True
            notes.append(
                f"After step {fs.index} the {name} weights differ from the exact ones by "
                f"{gap:.3g} (largest relative difference); later steps start from "
                "different weights, so the two runs no longer match."
            )
    f_w = trace.final.weights["w2"].reshape(-1)
    e_w = exact.final.weights["w2"].reshape(-1)
    gap = _max_rel_gap(f_w, e_w)
    notes.append(
        f"Final w2: exact {format_tensor(e_w)} ≈ ({', '.join(f'{float(v):.9g}' for v in e_w)}); "
        f"{name} {format_tensor(f_w)}; largest relative difference {gap:.3g}."
    )
    if gap <= 1e-3:
        notes.append(f"So {name} reproduces the exact result approximately (to rounding).")
    else:
        notes.append(
            f"So {name} does not reproduce the exact result: a rounding residue at "
            "ReLU's kink (o2 = 0) decided what was learned. Use --dtype exact to get the "
            "exact numbers (with the default settings, the article's)."
        )
    return notes


def _max_rel_gap(a: Any, b: Any) -> float:
    a = np.asarray([float(v) for v in np.asarray(a).reshape(-1)])
    b = np.asarray([float(v) for v in np.asarray(b).reshape(-1)])
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-300)))


# ---------------------------------------------------------------------------------- rendering
_MODEL = [
    "L1 = Input(3)                 o1 = x",
    "L2 = Linear(3 → 1, no bias)   o2 = w2 · o1 = w2₁·o1₁ + w2₂·o1₂ + w2₃·o1₃",
    "L3 = ReLU                     o3 = o2 if o2 ≥ 0 else 0",
    "Loss(o3, y) = ½ (o3 − y)²     (mean over the batch)",
]


def render(trace: Trace, fmt: str = "text", notes: Optional[list[str]] = None) -> str:
    """The explain output in ``text``, ``markdown`` or ``json``."""
    if fmt == "json":
        if notes:
            trace.extra["notes"] = notes
        return trace.to_json()
    md = fmt == "markdown"
    exact = trace.dtype == "exact"
    w0 = trace.initial.weights["w2"].reshape(-1)
    wf = trace.final.weights["w2"].reshape(-1)
    title = (
        f'learnflux explain: the seed\'s worked example ("The Weights"), '
        f"replayed in {'exact arithmetic' if exact else trace.dtype}"
    )
    setting = (
        f"Training: α = {format_value(trace.lr, decimals=exact)}, batch size "
        f"{trace.batch_size}, {trace.epochs} epoch{'s' if trace.epochs != 1 else ''}, "
        "dataset order (each step sees the weights left by the previous one)."
    )
    out: list[str] = []
    if md:
        out += [
            f"## {title}",
            "",
            "```",
            *_MODEL,
            "```",
            "",
            f"Start weights: w2 = {format_tensor(w0, exact)}",
            "",
            setting,
            "",
        ]
    else:
        out += [
            title,
            "=" * len(title),
            "",
            "The model:",
            *("  " + m for m in _MODEL),
            "",
            f"Start weights: w2 = {format_tensor(w0, exact)}",
            setting,
            "",
        ]

    def heading(text: str) -> None:
        out.extend([f"### {text}", ""] if md else [text, "-" * len(text)])

    heading("1. Forward pass before training")
    out += [
        "The information flow: each layer computes its output from the previous one; the loss "
        "compares o3 with the expectation y.",
        "",
    ]
    out += [trace.forward_table(trace.initial, markdown=md), ""]
    heading("2. Backward pass and update, step by step")
    out += [
        "The learning flow δ = ∂Loss/∂(input of the layer) goes from the loss back to L1; "
        "L2 turns it into its weight gradient δw2 = ∂Loss/∂w2, and the optimizer updates "
        "ŵ2 = w2 − α·δw2.",
        "",
    ]
    for step in trace.steps:
        if md:
            out += [f"#### {trace.step_header(step)}", ""]
        else:
            out.append(trace.step_header(step))
        o = step.outputs
        if len(step.samples) == 1:
            out.append(
                f"{'' if md else '  '}forward: x = {format_tensor(step.x[0])}, "
                f"o2 = {format_tensor(o[1][0], exact)}, o3 = {format_tensor(o[2][0], exact)}, "
                f"y = {format_tensor(step.y[0])}"
            )
        else:

            def col(a: Any) -> str:
                return ", ".join(format_tensor(v, exact) for v in a)

            out.append(f"{'' if md else '  '}forward: o2 = {col(o[1])}; o3 = {col(o[2])}; y = {col(step.y)}")
        if md:
            out.append("")
        out += trace.step_lines(step, markdown=md)
        comment = _step_comment(step, len(step.samples))
        out += ["", comment, ""] if md else [f"  → {comment}", ""]
    heading("3. Forward pass after training")
    out += [
        trace.forward_table(trace.final, markdown=md),
        "",
        f"Final weights: w2 = {format_tensor(wf, exact)}",
        "",
    ]
    if exact:
        out.append(
            "Every number above is exact (fractions of integers, no rounding); with the "
            "default settings they are the article's numbers. Try --dtype float32 or "
            "--dtype float64 to see what rounding does."
        )
    if notes:
        heading(f"4. {trace.dtype} versus exact arithmetic: how and why they differ")
        for note in notes:
            out.append(f"- {note}" if md else f"  • {note}")
        out.append("")
        out.append("See docs/numbers.md for the full story.")
    return "\n".join(out).rstrip() + "\n"


def explain(
    dtype: str = "exact", lr: Any = "1", batch_size: int = 1, epochs: int = 1, fmt: str = "text"
) -> str:
    """Everything ``learnflux explain`` prints, as a string."""
    trace = run(dtype, lr, batch_size, epochs)
    notes = None
    if trace.dtype != "exact":
        notes = _float_notes(trace, run("exact", lr, batch_size, epochs))
    return render(trace, fmt, notes)


def _command(args: argparse.Namespace) -> int:
    from .explain_model import check_seed_options, model_command, write_trace

    if args.model is not None:
        return model_command(args)
    check_seed_options(args)
    dtype = args.dtype or "exact"
    lr = "1" if args.lr is None else args.lr
    batch_size = args.batch_size or 1
    epochs = args.epochs or 1
    if args.format in ("html", "npz"):
        trace = run(dtype, lr, batch_size, epochs)
        title = 'The seed\'s worked example ("The Weights")'
        return write_trace(trace, args.format, args.out, title)
    text = explain(dtype, lr, batch_size, epochs, args.format)
    if args.out:
        return write_trace(text, args.format, args.out)
    print(text, end="")
    return 0


def register(subparsers: Any) -> None:
    from .explain_model import MODEL_HELP, add_model_arguments

    parser = subparsers.add_parser(
        "explain",
        help="the learning flow step by step: the seed's example, or any model (MODEL)",
        description=(
            "Without MODEL: replay the worked example of the article 'The Weights': a 3-layer\n"
            "model (Input, Linear without bias, ReLU), the squared-error loss and SGD on 3 samples.\n"
            "Prints the forward table, then for every step δ4, δ3, δ2, δ1, δw2 and ŵ2, then the\n"
            "forward table after training. With MODEL (a model file, a run folder or a run config):\n"
            "a few training steps of that model on samples of its data, every layer's o^k, δ^k,\n"
            "δw and ŵ. --format html writes the learning-flow page."
        ),
        epilog=MODEL_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--dtype",
        choices=["exact", "float32", "float64"],
        default=None,
        help="arithmetic: exact fractions (the seed's default, the article's numbers), float32 or "
        "float64 (a MODEL's default: its own)",
    )
    parser.add_argument(
        "--lr",
        default=None,
        help="learning rate α (the seed's default 1; a MODEL's: the optimizer's, SGD 0.01); in exact "
        "mode 1e-7 means exactly 1/10^7",
    )
    parser.add_argument(
        "--batch-size",
        type=positive_int,
        default=None,
        help="samples per step (the seed's default 1; a MODEL's: all the chosen samples)",
    )
    parser.add_argument(
        "--epochs", type=positive_int, default=None, help="passes over the samples (default 1)"
    )
    parser.add_argument(
        "--format",
        choices=["text", "markdown", "json", "npz", "html"],
        default="text",
        help="output: text, markdown or json (the documented contract) on standard output; npz "
        "(every value) or html (the learning-flow page) into a file",
    )
    parser.add_argument(
        "--out",
        metavar="FILE",
        help="write the output there (html: default learning-flow.html; npz: learning-flow.npz)",
    )
    add_model_arguments(parser)
    parser.set_defaults(func=_command)
