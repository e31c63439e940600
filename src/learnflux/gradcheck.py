"""Gradient checking: analytical gradients against central finite differences, in float64.

For a layer (or model) ``L``, an input ``x`` and a random upstream ``δ``, the scalar
``f(x, W) = Σ L(x; W) ⊙ δ`` has ``∂f/∂x = δ_in`` and ``∂f/∂W = W.grad`` as computed by the
backward pass. Each is compared with ``(f(θ + ε) − f(θ − ε)) / 2ε`` element by element.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from .core.layer import Layer


@dataclass
class TensorCheck:
    """The comparison for one tensor (the input, or one parameter)."""

    name: str
    shape: tuple
    max_abs_error: float
    max_rel_error: float
    passed: bool


@dataclass
class GradcheckReport:
    """What ``gradcheck`` found; truthy when every tensor passed. ``str(report)`` is a table."""

    target: str
    checks: list[TensorCheck] = field(default_factory=list)
    rtol: float = 0.0
    atol: float = 0.0

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    def __bool__(self) -> bool:
        return self.passed

    def __str__(self) -> str:
        lines = [
            f"gradcheck of {self.target}: {'PASS' if self.passed else 'FAIL'} "
            f"(|analytical − numerical| ≤ {self.atol:g} + {self.rtol:g}·|numerical|)",
            f"  {'tensor':<16} {'shape':<18} {'max abs err':>12} {'max rel err':>12}  result",
        ]
        for c in self.checks:
            lines.append(
                f"  {c.name:<16} {str(c.shape):<18} {c.max_abs_error:12.3e} "
                f"{c.max_rel_error:12.3e}  {'ok' if c.passed else 'FAIL'}"
            )
        return "\n".join(lines)


def _generators(layer: Layer) -> list[tuple[Any, str]]:
    """Every (object, attribute) holding a numpy Generator: stochastic layers (dropout) replay
    the same random draws in every forward pass of the check."""
    found = []
    layers = getattr(layer, "layers", None)
    for item in [layer] + (list(layers) if layers is not None else []):
        for attr, value in vars(item).items():
            if isinstance(value, np.random.Generator):
                found.append((item, attr))
        if item is not layer and getattr(item, "layers", None) is not None:
            found.extend(_generators(item))
    return found


def gradcheck(
    target: Layer,
    x: Any,
    delta: Optional[Any] = None,
    *,
    eps: float = 1e-6,
    rtol: float = 1e-5,
    atol: float = 1e-7,
    seed: int = 0,
    check_input: bool = True,
) -> GradcheckReport:
    """Check the backward pass of ``target`` at ``x``.

    Args:
        target: a layer or a model (it is copied and converted to float64; the original is
            untouched).
        x: the input (an array, or a list of arrays for merge layers / multi-input models).
        delta: the upstream δ; by default random normal values (never all ones, which would hide
            transposition errors).
        eps: the finite-difference step.
        rtol, atol: an element passes when ``|a − n| ≤ atol + rtol·|n|``.
        check_input: also check δ for the input (skipped automatically for integer inputs).

    Returns:
        A :class:`GradcheckReport` (truthy when everything passed; print it for the table).
    """
    layer = copy.deepcopy(target).astype(np.float64).train()
    layer.zero_grad()  # a gradient copied from the target cannot stand in for a missing one
    multi = isinstance(x, (list, tuple))
    xs = [
        np.array(xi, dtype=np.float64) if np.asarray(xi).dtype.kind == "f" else np.asarray(xi)
        for xi in (x if multi else [x])
    ]
    gens = _generators(layer)
    states = [copy.deepcopy(getattr(obj, attr).bit_generator.state) for obj, attr in gens]

    def run() -> np.ndarray:
        for (obj, attr), state in zip(gens, states, strict=True):
            getattr(obj, attr).bit_generator.state = copy.deepcopy(state)
        return layer.forward(xs if multi else xs[0])

    out = run()
    rng = np.random.default_rng(seed)
    up = rng.standard_normal(out.shape) if delta is None else np.asarray(delta, dtype=np.float64)
    d_in = layer.backward(up)
    d_ins = (list(d_in) if isinstance(d_in, (list, tuple)) else [d_in]) if multi else [d_in]
    # a parameter left without a gradient (a branch the backward pass never reached) fails
    analytical = [
        (p_name, p, None if p.grad is None else np.array(p.grad, copy=True))
        for p_name, p in layer.named_parameters()
    ]

    def f() -> float:
        return float(np.sum(run() * up))

    def numerical(arr: np.ndarray) -> np.ndarray:
        grad = np.zeros_like(arr, dtype=np.float64)
        flat, gflat = arr.reshape(-1), grad.reshape(-1)
        for i in range(flat.size):
            orig = flat[i]
            flat[i] = orig + eps
            plus = f()
            flat[i] = orig - eps
            minus = f()
            flat[i] = orig
            gflat[i] = (plus - minus) / (2 * eps)
        return grad

    report = GradcheckReport(target=target.describe(), rtol=rtol, atol=atol)

    def compare(name: str, a: np.ndarray, n: np.ndarray) -> None:
        a = np.asarray(a, dtype=np.float64)
        if a.shape != n.shape:
            report.checks.append(TensorCheck(name, n.shape, np.inf, np.inf, False))
            return
        err = np.abs(a - n)
        rel = err / np.maximum(np.abs(n), 1e-12)
        ok = bool(np.all(err <= atol + rtol * np.abs(n)))
        report.checks.append(
            TensorCheck(name, tuple(n.shape), float(err.max(initial=0)), float(rel.max(initial=0)), ok)
        )

    def missing(name: str, shape: tuple) -> None:
        report.checks.append(TensorCheck(name, tuple(shape), np.inf, np.inf, False))

    if check_input:
        if len(d_ins) != len(xs):  # backward must return one δ per input
            missing(f"δ count: {len(d_ins)} for {len(xs)} inputs", ())
        else:
            for k, (xi, di) in enumerate(zip(xs, d_ins, strict=True)):
                if xi.dtype.kind != "f":
                    continue
                name = "input" if not multi else f"input[{k}]"
                if di is None:
                    missing(name, xi.shape)
                else:
                    compare(name, di, numerical(xi))
    for name, p, grad in analytical:
        if grad is None:
            missing(name, p.value.shape)
        else:
            compare(name, grad, numerical(p.value))
    return report
