"""Mutation testing for learnflux: plant one realistic bug at a time and check the tests catch it.

Each mutant in ``MUTANTS`` replaces one piece of text (found exactly once) in one file by a
plausible mistake: a wrong axis, a dropped term, ``>`` for ``>=``, a forgotten ``1/n``... For each
mutant the script

1. applies it to a **temporary copy** of the repository (never to the working tree),
2. runs the tests most likely to catch it (``pytest -x``, stopping at the first failure),
3. calls it *killed* when a test fails (or errors, or runs past the time limit), *survived*
   when every test passes. A survivor is then run against the whole suite before being reported
   (``--no-confirm`` skips that), so a narrow choice of test files cannot fake a survivor. A kill
   counts only if the failing test passes on the unmutated copy (checked once per test): a test
   that fails anyway is left out of the rest of the run and named at the end.

The score is killed / (killed + survived). A survivor is a hole in the safety net: either a test
is missing (write it, then rerun) or the mutant is equivalent to the original (it changes
nothing observable: remove it from the list and say why in the commit).

Usage (from the repository root; about 10-15 minutes for the whole list on two shared cores)::

    .venv/bin/python tools/mutate.py                  # every mutant, then the score
    .venv/bin/python tools/mutate.py --list           # ids, areas and files
    .venv/bin/python tools/mutate.py add-two-deltas concat-axis-1   # chosen mutants
    .venv/bin/python tools/mutate.py --area layers --json mutants.json
    .venv/bin/python tools/mutate.py --jobs 2         # two copies in parallel
    .venv/bin/python tools/mutate.py --rev HEAD       # the committed tree, not work in progress

Exit status: 0 when every mutant was killed, 1 when one survived, 2 on a bad mutant list (a text
that is no longer found exactly once: the code moved, update the mutant).

To add a mutant, append a :class:`Mutant` to ``MUTANTS``: the smallest ``old`` text that is unique
in its file (a few words of context are fine), the buggy ``new`` text, and the test files (or
``-k`` expressions) that should catch it.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SRC = "src/learnflux/"

# test files per area (the default targets of a mutant of that area)
HARNESS = "tests/test_layer_harness.py"
GRAPH = ["tests/test_graph_configs.py", "tests/test_model.py"]


def harness(expr: str, *files: str) -> list:
    """The layer harness's cases matching ``expr`` (a ``pytest -k`` expression on case ids), plus
    every test of ``files``."""
    modules = [Path(f).stem for f in files]
    return [HARNESS, *files, "-k", " or ".join([f"({expr})", *modules])]


@dataclass(frozen=True)
class Mutant:
    id: str
    area: str  # layers, graph, losses, optimizers, io, data, tests-of-tests
    file: str  # relative to the repository root
    old: str  # must occur exactly once in the file
    new: str
    tests: tuple[str, ...]  # pytest arguments: files, node ids, "-k", "expr"
    why: str = ""  # what a developer would have meant / what the bug breaks


def M(id, area, file, old, new, tests, why=""):  # the compact constructor of the table below
    tests = (tests,) if isinstance(tests, str) else tuple(tests)
    return Mutant(
        id,
        area,
        file if file.startswith(("src/", "tests/", "benchmarks/")) else SRC + file,
        old,
        new,
        tests,
        why,
    )


MUTANTS: list[Mutant] = [
    # ------------------------------------------------ the survivors of the first run (issue 14)
    M(
        "add-two-deltas",
        "layers",
        "layers/merge.py",
        "return [delta_out] * self._n",
        "return [delta_out, delta_out]",
        harness("add", *GRAPH),
        "Add's backward ignores the number of inputs",
    ),
    M(
        "concat-axis-1",
        "layers",
        "layers/merge.py",
        "return np.split(delta_out, cuts, axis=self.axis % delta_out.ndim)",
        "return np.split(delta_out, cuts, axis=1)",
        harness("concat"),
        "Concat's backward always cuts the channel axis",
    ),
    M(
        "input-delta-overwritten",
        "graph",
        "core/model.py",
        "input_deltas[k] = dj if input_deltas[k] is None else input_deltas[k] + dj",
        "input_deltas[k] = dj",
        GRAPH,
        "a model input feeding two layers keeps the last δ only",
    ),
    M(
        "branch-order-reversed",
        "graph",
        "core/model.py",
        "for src in reversed(node.inbound):",
        "for src in node.inbound:",
        GRAPH,
        "layers numbered last branch first: state_dict names move",
    ),
    M(
        "loader-seed-plus-epoch",
        "data",
        "data/loader.py",
        "np.random.default_rng([self.seed, int(epoch)])",
        "np.random.default_rng(self.seed + int(epoch))",
        "tests/test_data_loader.py",
        "seed 5 epoch 1 equals seed 6 epoch 0",
    ),
    # ------------------------------------------------ the weak spots found beside them
    M(
        "linear-exact-delta-float",
        "layers",
        "layers/linear.py",
        "return matmul(delta_out, self.weight.value) if need_input_delta else None",
        "return matmul(delta_out, self.weight.value).astype(float if self.dtype == object else self.dtype) "
        "if need_input_delta else None",
        harness("exact"),
        "exact arithmetic silently becomes float in the input δ",
    ),
    M(
        "linear-exact-weight-grad-float",
        "layers",
        "layers/linear.py",
        "        self.weight.set_grad(grad)\n",
        "        self.weight.set_grad(grad.astype(float) if grad.dtype == object else grad)\n",
        harness("exact"),
        "exact arithmetic silently becomes float in δW",
    ),
    M(
        "mnist-checksum-missing",
        "data",
        "data/datasets.py",
        '"train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"',
        '"train-labels-idx1-ubyte.gz": None',
        "tests/test_data_datasets.py",
        "a file downloaded without verification",
    ),
    M(
        "trace-same-order-every-epoch",
        "data",
        "training/trace.py",
        "order = rng.permutation(n) if shuffle else np.arange(n)",
        "order = np.random.default_rng(seed).permutation(n) if shuffle else np.arange(n)",
        "tests/test_trace.py",
        "every epoch of a recorded run replays the same order",
    ),
    M(
        "fit-loader-drops-last-batch",
        "data",
        "training/train.py",
        "        if self.loader:\n            return self.x\n",
        "        if self.loader:\n            return list(self.x)[:-1]\n",
        ["tests/test_fit.py", "-k", "loader"],
        "fit over a loader skips a batch",
    ),
    M(
        "benchmark-layer-missing",
        "tests-of-tests",
        "benchmarks/learnflux_ref.py",
        "missing = [n for n in names if not hasattr(lf, n)]",
        'missing = [n for n in names if not hasattr(lf, n) or n == "Conv2d"]',
        ["tests/test_benchmarks_smoke.py", "-k", "every_framework"],
        "a benchmark case loses learnflux",
    ),
    # ------------------------------------------------ layers
    M(
        "relu-derivative-0-at-0",
        "layers",
        "kernels/reference/eltwise.py",
        "mask = (x >= 0) if training else None",
        "mask = (x > 0) if training else None",
        harness("relu", "tests/test_seed_example.py"),
        "ReLU'(0) = 0: the seed's sample 3 stops learning",
    ),
    M(
        "leaky-relu-backward-no-slope",
        "layers",
        "layers/activations.py",
        "return np.where(mask, delta_out, delta_out * self._slope())",
        "return np.where(mask, delta_out, delta_out)",
        harness("leaky"),
    ),
    M(
        "sigmoid-backward-missing-factor",
        "layers",
        "layers/activations.py",
        "return delta_out * out * (1 - out)",
        "return delta_out * out",
        harness("sigmoid"),
    ),
    M(
        "tanh-backward-not-squared",
        "layers",
        "layers/activations.py",
        "return delta_out * (1 - out * out)",
        "return delta_out * (1 - out)",
        harness("tanh"),
    ),
    M("gelu-pdf-sign", "layers", "layers/activations.py", "pdf *= -0.5", "pdf *= 0.5", harness("gelu")),
    M(
        "silu-backward-drops-one",
        "layers",
        "layers/activations.py",
        "d *= x\n        d += 1\n        d *= sig",
        "d *= x\n        d *= sig",
        harness("silu"),
    ),
    M(
        "softmax-backward-unweighted-sum",
        "layers",
        "layers/activations.py",
        "d = delta_out - (delta_out * s).sum(axis=axis, keepdims=True)",
        "d = delta_out - delta_out.sum(axis=axis, keepdims=True)",
        harness("softmax"),
    ),
    M(
        "logsoftmax-backward-no-sum",
        "layers",
        "layers/activations.py",
        "d *= delta_out.sum(axis=axis, keepdims=True)",
        "d *= delta_out",
        harness("softmax"),
    ),
    M(
        "linear-bias-grad-mean",
        "layers",
        "layers/linear.py",
        "self.bias.set_grad(np.sum(delta_out, axis=0, out=self.bias.grad_buffer()))",
        "self.bias.set_grad(np.mean(delta_out, axis=0, out=self.bias.grad_buffer()))",
        harness("linear"),
    ),
    M(
        "conv-flat-bias-grad-mean",
        "layers",
        "kernels/reference/conv.py",
        'gb = np.einsum("nohw->o", delta) if has_bias else None',
        'gb = np.einsum("nohw->o", delta) / delta.shape[0] if has_bias else None',
        harness("conv", "tests/test_conv.py"),
    ),
    M(
        "conv-general-bias-grad-mean",
        "layers",
        "kernels/reference/conv.py",
        "gb = dmat.reshape(geo.out_channels, -1).sum(axis=1) if has_bias else None",
        "gb = dmat.reshape(geo.out_channels, -1).mean(axis=1) if has_bias else None",
        harness("conv", "tests/test_conv.py"),
    ),
    M(
        "conv-delta-block-stale-column",
        "layers",
        "kernels/reference/conv.py",
        "for col in range(wo, wp):",
        "for col in range(wo + 1, wp):",
        harness("conv", "tests/test_conv.py"),
        "a reused buffer keeps one stale column",
    ),
    M(
        "conv-col2im-shift-off-by-one",
        "layers",
        "kernels/reference/conv.py",
        "for t, s in enumerate(shifts[1:], start=1):",
        "for t, s in enumerate(shifts[1:], start=0):",
        harness("conv", "tests/test_conv.py"),
    ),
    M(
        "maxpool-ties-last-wins",
        "layers",
        "kernels/reference/pool.py",
        "better = view > out",
        "better = view >= out",
        harness("pool", "tests/test_pool.py"),
        "on ties δ goes to the last window offset",
    ),
    M(
        "maxpool-overlap-overwrites",
        "layers",
        "kernels/reference/pool.py",
        "view += delta * (winner == k)",
        "view[...] = delta * (winner == k)",
        harness("pool", "tests/test_pool.py"),
        "overlapping windows lose δ",
    ),
    M(
        "avgpool-count-pad-right",
        "layers",
        "layers/pool.py",
        "start, end = np.maximum(start, 0), np.minimum(end, size)",
        "start, end = np.maximum(start, 0), end",
        harness("pool", "tests/test_pool.py"),
    ),
    M(
        "avgpool-overlap-overwrites",
        "layers",
        "kernels/reference/pool.py",
        "            view += share\n",
        "            view[...] = share\n",
        harness("pool", "tests/test_pool.py"),
    ),
    M(
        "global-avgpool-divides-by-h",
        "layers",
        "layers/pool.py",
        "share = delta_out.reshape(n, c, 1, 1) / (Fraction(h * w) if delta_out.dtype == object else h * w)",
        "share = delta_out.reshape(n, c, 1, 1) / (Fraction(h * w) if delta_out.dtype == object else h)",
        harness("pool"),
    ),
    M(
        "batchnorm-biased-running-var",
        "layers",
        "layers/norm.py",
        "unbiased = var * scalar_like(m / (m - 1), dt)",
        "unbiased = var",
        harness("batchnorm", "tests/test_norm.py"),
    ),
    M(
        "batchnorm-momentum-inverted",
        "layers",
        "layers/norm.py",
        "factor = 1.0 / float(count) if self.momentum is None else self.momentum",
        "factor = 1.0 / float(count) if self.momentum is None else 1 - self.momentum",
        harness("batchnorm", "tests/test_norm.py"),
    ),
    M(
        "batchnorm-backward-wrong-sum",
        "layers",
        "kernels/reference/norm.py",
        "d_in -= (sum_d * inv_m)[:, None]",
        "d_in -= (sum_dx * inv_m)[:, None]",
        harness("batchnorm", "tests/test_norm.py"),
    ),
    M(
        "batchnorm-eval-uses-batch-stats",
        "layers",
        "layers/norm.py",
        "use_batch = self.training or not self.track_running_stats",
        "use_batch = True",
        harness("batchnorm", "tests/test_norm.py"),
    ),
    M(
        "layernorm-backward-drops-xhat",
        "layers",
        "layers/norm.py",
        "mean_gx = (g * xhat).mean(axis=axes, keepdims=True)",
        "mean_gx = g.mean(axis=axes, keepdims=True)",
        harness("layernorm"),
    ),
    M(
        "layernorm-weight-grad-no-xhat",
        "layers",
        "layers/norm.py",
        # LayerNorm's (RMSNorm's has the same line, after its own ``if``)
        "        lead = tuple(range(xhat.ndim - len(axes)))\n        if self.elementwise_affine:\n"
        "            self.weight.set_grad((delta_out * xhat).sum(axis=lead))",
        "        lead = tuple(range(xhat.ndim - len(axes)))\n        if self.elementwise_affine:\n"
        "            self.weight.set_grad(delta_out.sum(axis=lead))",
        harness("layernorm"),
    ),
    M(
        "dropout-scale-inverted",
        "layers",
        "layers/dropout.py",
        "return scalar_like(1.0 / (1.0 - self.p), self.dtype)",
        "return scalar_like(1.0 - self.p, self.dtype)",
        harness("dropout", "tests/test_dropout.py"),
    ),
    M(
        "dropout-backward-unscaled",
        "layers",
        "layers/dropout.py",
        "return delta_out * mask",
        "return delta_out * (mask != 0)",
        harness("dropout", "tests/test_dropout.py"),
    ),
    M(
        "dropout-keeps-p",
        "layers",
        "layers/dropout.py",
        "keep = self.rng.random(x.shape, dtype=np.float32) >= np.float32(self.p)",
        "keep = self.rng.random(x.shape, dtype=np.float32) < np.float32(self.p)",
        harness("dropout", "tests/test_dropout.py"),
    ),
    M(
        "embedding-repeated-ids-overwrite",
        "layers",
        "layers/embedding.py",
        "np.add.at(grad, ids.reshape(-1), delta_out.reshape(-1, self.embedding_dim))",
        "grad[ids.reshape(-1)] = delta_out.reshape(-1, self.embedding_dim)",
        harness("embedding"),
        "a token seen twice in a batch learns once",
    ),
    M(
        "input-shape-check-lax",
        "layers",
        "layers/input.py",
        "e is not None and e != a for e, a in",
        "e is not None and e < a for e, a in",
        ["tests/test_errors.py", "tests/test_shape_layers.py", *GRAPH],
    ),
    # ------------------------------------------------ graph
    M(
        "fan-out-overwrites",
        "graph",
        "core/model.py",
        "deltas[j] = dj if deltas[j] is None else deltas[j] + dj",
        "deltas[j] = dj",
        GRAPH,
    ),
    M(
        "input-delta-only-when-learning",
        "graph",
        "core/model.py",
        "need = self._input_delta_useful[i] or (need_input_delta and self._reaches_input[i])",
        "need = self._input_delta_useful[i]",
        GRAPH,
    ),
    M(
        "accumulate-ignored",
        "graph",
        "core/model.py",
        "                p.accumulate = accumulate\n",
        "                p.accumulate = False\n",
        ["tests/test_model.py", "tests/test_fit.py"],
    ),
    M(
        "config-model-single-input",
        "graph",
        "core/model.py",
        "model._build(layers, plan, single_input=n_inputs == 1)",
        "model._build(layers, plan, single_input=True)",
        GRAPH,
    ),
    M(
        "upstream-learns-ignores-branches",
        "graph",
        "core/model.py",
        "learns = bool(layer.parameters()) or any(j >= 0 and upstream_learns[j] for j in ins)",
        "learns = bool(layer.parameters()) or (ins[0] >= 0 and upstream_learns[ins[0]])",
        GRAPH,
        "a branch behind a merge's second input stops training",
    ),
    # ------------------------------------------------ losses
    M(
        "squared-error-no-1/n",
        "losses",
        "losses/regression.py",
        "self._delta = diff * output.dtype.type(1.0 / n) if n != 1 else diff",
        "self._delta = diff",
        "tests/test_losses.py",
    ),
    M(
        "mse-delta-without-2",
        "losses",
        "losses/regression.py",
        "diff *= _elementwise_scale(out, self.reduction, 2)",
        "diff *= _elementwise_scale(out, self.reduction, 1)",
        "tests/test_losses.py",
    ),
    M(
        "l1-sign-of-zero",
        "losses",
        "losses/regression.py",
        "self._delta = np.where(diff > zero, scale, np.where(diff < zero, -scale, zero))",
        "self._delta = np.where(diff >= zero, scale, -scale)",
        "tests/test_losses.py",
    ),
    M(
        "ce-smoothing-not-divided",
        "losses",
        "losses/classification.py",
        "spread = (dt.type(1) if w is None else w) * dt.type(eps / c)",
        "spread = (dt.type(1) if w is None else w) * dt.type(eps)",
        "tests/test_losses.py",
    ),
    M(
        "ce-mean-over-batch-only",
        "losses",
        "losses/classification.py",
        "count = float(per.size) if wy is None",
        "count = float(per.shape[0]) if wy is None",
        "tests/test_losses.py",
        "(N, C, d1) logits averaged over N instead of N·d1",
    ),
    M(
        "ce-value-without-logsumexp",
        "losses",
        "losses/classification.py",
        "per = log_total - np.take_along_axis(shifted, labels, axis=1)",
        "per = -np.take_along_axis(shifted, labels, axis=1)",
        "tests/test_losses.py",
    ),
    M(
        "bce-value-drops-target",
        "losses",
        "losses/classification.py",
        "soft -= out * y",
        "soft -= out",
        "tests/test_losses.py",
    ),
    # ------------------------------------------------ optimizers (the transforms of optim/transforms.py)
    M(
        "sgd-dampening-inverted",
        "optimizers",
        "optim/transforms.py",
        "np.multiply(u, 1 - tau, out=t)",
        "np.multiply(u, tau, out=t)",
        "tests/test_optim.py",
    ),
    M(
        "sgd-nesterov-no-mu",
        "optimizers",
        "optim/transforms.py",
        "np.multiply(buf, mu, out=t)",
        "np.copyto(t, buf)",
        "tests/test_optim.py",
    ),
    M(
        "sgd-weight-decay-on-grad",
        "optimizers",
        "optim/transforms.py",
        "np.multiply(step.w, lam, out=d)",
        "np.multiply(step.u, lam, out=d)",
        "tests/test_optim.py",
    ),
    M(
        "adam-no-bias-correction",
        "optimizers",
        "optim/transforms.py",
        "step.divide_by(1 - beta1**k)",
        "step.divide_by(1)",
        "tests/test_optim.py",
    ),
    M(
        "adam-bias-correction2-no-sqrt",
        "optimizers",
        "optim/transforms.py",
        "t /= (1 - beta2**k) ** 0.5",
        "t /= 1 - beta2**k",
        "tests/test_optim.py",
    ),
    M(
        "adamw-decay-without-lr",
        "optimizers",
        "optim/transforms.py",
        'step.w *= 1 - step.option("lr") * lam',
        "step.w *= 1 - lam",
        "tests/test_optim.py",
    ),
    M(
        "amsgrad-no-max",
        "optimizers",
        "optim/transforms.py",
        "np.maximum(vmax, v, out=vmax)",
        "np.copyto(vmax, v)",
        "tests/test_optim.py",
    ),
    M(
        "rmsprop-centered-adds",
        "optimizers",
        "optim/transforms.py",
        "np.subtract(sq, t, out=t)",
        "np.add(sq, t, out=t)",
        "tests/test_optim.py",
    ),
    M(
        "momentum-inverted",
        "optimizers",
        "optim/transforms.py",
        "buf *= mu",
        "buf *= 1 - mu",
        "tests/test_optim.py",
    ),
    M(
        "adagrad-lr-decay-off-by-one",
        "optimizers",
        "optim/transforms.py",
        '(1 + (state["step"] - 1) * step.option("lr_decay"))',
        '(1 + state["step"] * step.option("lr_decay"))',
        "tests/test_optim.py",
    ),
    M(
        "momentum-first-step-zero-buffer",
        "optimizers",
        "optim/transforms.py",
        'buf = step.state["momentum_buffer"] = np.array(u, dtype=step.w.dtype, copy=True)',
        'buf = step.state["momentum_buffer"] = np.zeros_like(step.w)',
        "tests/test_optim.py",
    ),
    M(
        "adam-step-not-counted",
        "optimizers",
        "optim/transforms.py",
        'step.state["step"] = step.state.get("step", 0) + 1',
        'step.state["step"] = 1',
        "tests/test_optim.py",
    ),
    M(
        "adamw-adam-default",
        "optimizers",
        "optim/adam.py",
        "__init__ = with_defaults(Adam.__init__, weight_decay=1e-2)",
        "__init__ = Adam.__init__",
        "tests/test_optim.py",
    ),
    M(
        "deferred-numbers-not-applied",
        "optimizers",
        "optim/optimizer.py",
        "            if step._deferred and transform.reads_update:\n                step.resolve()\n",
        "",
        "tests/test_optim.py",
        "a transform reads u before the learning rate (or 1/(1 - b1^t)) is applied",
    ),
    M(
        "deferred-divisor-ignored",
        "optimizers",
        "optim/optimizer.py",
        "c = self._scale if self._divisor == 1 else self._scale / self._divisor",
        "c = self._scale",
        "tests/test_optim.py",
    ),
    M(
        "spare-may-hold-u",
        "optimizers",
        "optim/optimizer.py",
        "i = 1 if self.u.base is bufs[0] else 0",
        "i = 0",
        "tests/test_optim.py",
        "the scratch handed out is the one holding u",
    ),
    M(
        "resolve-writes-into-borrowed-u",
        "optimizers",
        "optim/optimizer.py",
        "        if self._owns_update():\n            self.u *= c",
        "        if True:\n            self.u *= c",
        "tests/test_optim.py",
        "the deferred factor multiplied into the gradient or a state array",
    ),
    M(
        "exact-options-read-as-floats",
        "optimizers",
        "optim/optimizer.py",
        "return scalar_like(value, _OBJECT) if self.exact else float(value)",
        "return float(value)",
        ["tests/test_optim.py", "tests/test_seed_example.py"],
    ),
    M(
        "options-not-validated",
        "optimizers",
        "optim/optimizer.py",
        "                check_option(group, key, owner)\n",
        "                pass\n",
        "tests/test_optim.py",
    ),
    M(
        "clip-norm-no-epsilon",
        "optimizers",
        "optim/clip.py",
        "coef = max_norm / (total + 1e-6)",
        "coef = max_norm / total",
        "tests/test_clip.py",
    ),
    M(
        "clip-inf-norm-sums",
        "optimizers",
        "optim/clip.py",
        "total = max(norms)",
        "total = sum(norms)",
        "tests/test_clip.py",
    ),
    M(
        "clip-value-one-sided",
        "optimizers",
        "optim/clip.py",
        "p.grad = np.clip(g, lo, hi)",
        "p.grad = np.clip(g, None, hi)",
        "tests/test_clip.py",
    ),
    M(
        # (not the closed form two lines above it: that branch, _step_count == 1 with t > 0, is
        # unreachable, the constructor's own step returns first; a mutant there is equivalent)
        "cosine-annealing-recursion-off-by-one",
        "optimizers",
        "optim/schedules.py",
        "(1 + math.cos(math.pi * t / T)) / (1 + math.cos(math.pi * (t - 1) / T)) * (lr - eta) + eta",
        "(1 + math.cos(math.pi * (t + 1) / T)) / (1 + math.cos(math.pi * t / T)) * (lr - eta) + eta",
        "tests/test_schedules.py",
    ),
    M(
        "step-skips-params-without-grad-check",
        "optimizers",
        "optim/optimizer.py",
        "                if g is None:\n                    continue\n",
        "                if g is None:\n                    g = np.zeros_like(p.value)\n",
        ["tests/test_optim.py"],
        "a parameter without gradient still decays / moves with momentum",
    ),
    # ------------------------------------------------ io
    M(
        "save-exact-as-float",
        "io",
        "files/io.py",
        "value = np.array([str(v) for v in value.reshape(-1)], dtype=str).reshape(value.shape)",
        "value = value.astype(np.float64)",
        "tests/test_io.py",
    ),
    M(
        "load-ignores-dtype",
        "io",
        "files/io.py",
        "    try:\n        model.astype(dtype)\n",
        '    try:\n        model.astype("float32")\n',
        "tests/test_io.py",
    ),
    M(
        "load-ignores-unexpected-arrays",
        "io",
        "files/io.py",
        "    if missing or unexpected:\n",
        "    if missing:\n",
        "tests/test_io.py",
        "a file holding arrays the model does not have loads anyway",
    ),
    M(
        "load-accepts-any-format",
        "io",
        "files/io.py",
        'if header.get("format") != FORMAT:',
        'if header.get("format") is None:',
        "tests/test_io.py",
    ),
    M(
        "atomic-write-leaves-temporary-file",
        "io",
        "files/io.py",
        "            os.unlink(tmp)\n",
        "            pass\n",
        ["tests/test_io.py", "tests/test_callbacks.py"],
        "a crash while saving leaves a temporary file beside the model",
    ),
    M(
        "load-state-dict-shares-arrays",
        "io",
        "core/layer.py",
        'arr = np.array(value.detach().cpu().numpy() if hasattr(value, "detach") else value)',
        'arr = np.asarray(value.detach().cpu().numpy() if hasattr(value, "detach") else value)',
        ["tests/test_io.py", "tests/test_model.py", "tests/test_interop.py", "tests/test_optim.py"],
        "an optimizer step writes into the caller's state dict",
    ),
    # ------------------------------------------------ data
    M(
        "loader-same-order-every-epoch",
        "data",
        "data/loader.py",
        "        self.epoch += 1\n",
        "        self.epoch += 0\n",
        "tests/test_data_loader.py",
    ),
    M(
        "loader-len-floor",
        "data",
        "data/loader.py",
        "return n // b if self.drop_last else -(-n // b)",
        "return n // b",
        "tests/test_data_loader.py",
        "the last, partial batch is dropped without drop_last",
    ),
    M(
        "split-floor-sizes",
        "data",
        "data/split.py",
        "sizes = [math.ceil(f * n) if f > 0 else 0 for f in fractions]",
        "sizes = [math.floor(f * n) if f > 0 else 0 for f in fractions]",
        "tests/test_data_loader.py",
    ),
    M(
        "split-stratified-remainder-lost",
        "data",
        "data/split.py",
        "take[rank[:short]] += 1",
        "take[rank[:short]] += 0",
        "tests/test_data_loader.py",
    ),
    M(
        "standardizer-zero-std",
        "data",
        "data/transforms.py",
        "std[std == 0] = 1.0",
        "std[std == 0] = 0.0",
        ["tests/test_data_loader.py", "tests/test_data_datasets.py"],
    ),
    M(
        "standardizer-sample-std",
        "data",
        "data/transforms.py",
        "std = x.std(axis=self.axis, dtype=np.float64, keepdims=True)",
        "std = x.std(axis=self.axis, dtype=np.float64, keepdims=True, ddof=1)",
        ["tests/test_data_loader.py", "tests/test_data_datasets.py"],
    ),
    M(
        "idx-little-endian-int32",
        "data",
        "data/idx.py",
        '0x0C: np.dtype(">i4"),',
        '0x0C: np.dtype("<i4"),',
        "tests/test_data_datasets.py",
    ),
    M(
        "digits-scaled-by-15",
        "data",
        "data/datasets.py",
        "x = np.divide(table[:, :64], np.float32(16), dtype=np.float32)",
        "x = np.divide(table[:, :64], np.float32(15), dtype=np.float32)",
        "tests/test_data_datasets.py",
    ),
    # ------------------------------------------------ attention and transformers (issue 15)
    M(
        "attention-backward-unscaled",
        "layers",
        "layers/attention.py",
        "    d_a *= scalar_like(cache.scale, d_a.dtype)\n",
        "",
        harness("sdpa or mha"),
        "the scores' 1/√d forgotten in the backward pass: δQ and δK √d too large",
    ),
    M(
        "causal-mask-sees-next",
        "layers",
        "layers/attention.py",
        "-np.inf, dtype=dtype), k=1)",
        "-np.inf, dtype=dtype), k=2)",
        harness("causal", "tests/test_attention.py"),
        "the causal mask lets each position see one step of the future",
    ),
    M(
        "padding-mask-on-queries",
        "layers",
        "layers/attention.py",
        "parts.append(additive_mask(m, dtype)[:, None, None, :])",
        "parts.append(additive_mask(m, dtype)[:, None, :, None])",
        "tests/test_attention.py",
        "key_padding_mask masks the queries of a position instead of its keys",
    ),
    M(
        "prenorm-residual-delta-dropped",
        "layers",
        "layers/transformer.py",
        "d_h = delta_out + self.norm2.backward(self._ff_backward(delta_out))",
        "d_h = self.norm2.backward(self._ff_backward(delta_out))",
        harness("transformer"),
        "the pre-norm block's backward forgets the δ of its residual connection",
    ),
    M(
        "rmsnorm-no-scale-path",
        "layers",
        "layers/norm.py",
        "d_in = xhat * (g * xhat).mean(axis=axes, keepdims=True)",
        "d_in = np.zeros_like(g)",
        harness("rmsnorm"),
        "RMSNorm's backward ignores the path through the root mean square",
    ),
    M(
        "rotary-backward-same-rotation",
        "layers",
        "layers/positional.py",
        "return delta_out * cos - _rotate_half(delta_out * sin)",
        "return delta_out * cos + _rotate_half(delta_out * sin)",
        harness("rotary"),
        "RoPE's backward rotates δ forward again instead of back",
    ),
    M(
        "batches-always-drop-last",
        "data",
        "training/train.py",
        "    stop = n - n % batch_size if drop_last else n\n    for begin in range(start * batch_size, stop,",
        "    stop = n - n % batch_size\n    for begin in range(start * batch_size, stop,",
        ["tests/test_fit.py", "tests/test_data_loader.py"],
    ),
]


@dataclass
class Result:
    mutant: Mutant
    status: str  # killed, survived, invalid, error
    seconds: float
    detail: str = ""  # the first failing test, or why the mutant is invalid
    confirmed: bool = False  # survived the whole suite, not only its targeted tests
    log: list = field(default_factory=list)


def _copy_tree(dest: Path, rev: str | None = None) -> None:
    if rev:  # a committed tree: unaffected by work in progress in the working tree
        dest.mkdir(parents=True)
        archive = subprocess.run(["git", "archive", rev], cwd=ROOT, capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
        return
    ignore = shutil.ignore_patterns(
        ".git",
        ".venv",
        "__pycache__",
        "*.pyc",
        ".pytest_cache",
        ".ruff_cache",
        "runs",
        "build",
        "dist",
        "*.egg-info",
        "results",
    )
    shutil.copytree(ROOT, dest, ignore=ignore, symlinks=True)


def _env(copy: Path) -> dict:
    env = dict(os.environ)
    paths = [str(copy / "src"), str(copy), env.get("PYTHONPATH", "")]
    env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # a mutant of the same size must never reuse a stale .pyc
    env.setdefault("MPLBACKEND", "Agg")
    return env


def _pytest(copy: Path, args: list, timeout: float) -> tuple[str, str, str]:
    """Run pytest in ``copy``: ``(outcome, detail, first failing node id)``."""
    # a test file that this tree does not have (an older revision) is left out, not an error
    args = [a for a in args if not a.startswith("tests/") or (copy / a.split("::")[0]).exists()]
    for node in sorted(BROKEN):  # tests that fail without any mutant prove nothing
        args += ["--deselect", node] if "::" in node else ["--ignore", node]
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-rfE", "--no-header", *args]
    try:
        proc = subprocess.run(cmd, cwd=copy, env=_env(copy), capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return "timeout", f"no result within {timeout:.0f} s", ""
    out = proc.stdout + proc.stderr
    first = next((line for line in out.splitlines() if line.startswith(("FAILED ", "ERROR "))), "")
    node = first.split(" ", 1)[1].split(" - ", 1)[0].strip() if first else ""
    if proc.returncode == 0:
        return "passed", "", ""
    if proc.returncode in (1, 2):  # tests failed, or collection failed (an import error is a kill)
        return "failed", first or out.strip().splitlines()[-1], node
    return f"rc{proc.returncode}", out.strip()[-2000:], ""


# node ids checked on the unmutated tree: GOOD pass there, BROKEN fail there too (a kill by a
# BROKEN test would be a false kill: they are deselected from then on and reported at the end)
GOOD: set = set()
BROKEN: set = set()
_LOCK = threading.Lock()


def _run_against(copy: Path, path: Path, original: str, mutated: str, args: list, timeout: float):
    """Run ``args`` on the mutated file; a failure counts only if the failing test passes on
    the unmutated file (checked once per test)."""
    while True:
        path.write_text(mutated, encoding="utf-8")
        try:
            outcome, detail, node = _pytest(copy, args, timeout)
        finally:
            path.write_text(original, encoding="utf-8")
        if outcome != "failed" or not node or node in GOOD:
            return outcome, detail
        clean, _, _ = _pytest(copy, [node], timeout)
        with _LOCK:
            (GOOD if clean == "passed" else BROKEN).add(node)
        if clean == "passed":
            return outcome, detail


def _sanity(copy: Path) -> None:
    """The copy's package is the one the tests import (not the working tree's)."""
    code = "import learnflux, sys; sys.stdout.write(learnflux.__file__)"
    where = subprocess.run(
        [sys.executable, "-c", code], cwd=copy, env=_env(copy), capture_output=True, text=True, check=True
    ).stdout
    if not Path(where).resolve().is_relative_to(copy.resolve()):
        raise SystemExit(f"mutate: the tests would import {where}, not the copy under {copy}")


def run_mutant(m: Mutant, copy: Path, timeout: float, confirm: bool) -> Result:
    t0 = time.perf_counter()
    path = copy / m.file
    original = path.read_text(encoding="utf-8")
    count = original.count(m.old)
    if count != 1:
        return Result(m, "invalid", 0.0, f"the text to replace occurs {count} times in {m.file}")
    mutated = original.replace(m.old, m.new)
    outcome, detail = _run_against(copy, path, original, mutated, list(m.tests), timeout)
    confirmed = False
    if outcome == "passed" and confirm:  # not caught by its tests: try the whole suite
        outcome, detail = _run_against(copy, path, original, mutated, ["tests"], timeout * 4)
        confirmed = outcome == "passed"
    status = {"passed": "survived", "failed": "killed", "timeout": "killed"}.get(outcome, "error")
    return Result(m, status, time.perf_counter() - t0, detail, confirmed)


def _select(args: argparse.Namespace) -> list[Mutant]:
    chosen = [
        m for m in MUTANTS if (not args.ids or m.id in args.ids) and (not args.area or m.area == args.area)
    ]
    unknown = set(args.ids) - {m.id for m in MUTANTS}
    if unknown:
        raise SystemExit(f"mutate: unknown mutant(s) {sorted(unknown)}; see --list")
    return chosen


def main(argv: list | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("ids", nargs="*", help="mutant ids (default: all)")
    ap.add_argument("--area", help="only the mutants of one area (layers, graph, losses, ...)")
    ap.add_argument("--list", action="store_true", help="list the mutants and exit")
    ap.add_argument("--jobs", type=int, default=1, help="mutants run in parallel, one copy each")
    ap.add_argument("--timeout", type=float, default=300, help="seconds per mutant's targeted tests")
    ap.add_argument("--no-confirm", action="store_true", help="do not rerun survivors on the whole suite")
    ap.add_argument(
        "--baseline",
        action="store_true",
        help="first run every targeted test file on the unmutated copy (they must pass)",
    )
    ap.add_argument("--json", type=Path, help="write the results here")
    ap.add_argument(
        "--rev",
        help="mutate this git revision (e.g. HEAD) instead of the working tree, as it is now",
    )
    args = ap.parse_args(argv)
    mutants = _select(args)
    if args.list:
        for m in mutants:
            print(f"{m.id:40} {m.area:14} {m.file}")
        print(f"{len(mutants)} mutants")
        return 0

    tmp = Path(tempfile.mkdtemp(prefix="learnflux-mutants-"))
    copies = [tmp / f"copy{k}" for k in range(max(1, args.jobs))]
    try:
        for c in copies:
            _copy_tree(c, args.rev)
        _sanity(copies[0])
        if args.baseline:
            files = sorted({t for m in mutants for t in m.tests if t.startswith("tests/")})
            outcome, detail, _ = _pytest(copies[0], files, args.timeout * 4)
            if outcome != "passed":
                print(f"baseline: the unmutated tests do not pass ({detail}); fix that first")
                return 2
            print(f"baseline: {len(files)} test files pass unmutated")
        results: list[Result] = []
        free = list(copies)

        def work(m: Mutant) -> Result:
            copy = free.pop()
            try:
                return run_mutant(m, copy, args.timeout, not args.no_confirm)
            finally:
                free.append(copy)

        t0 = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(max_workers=len(copies)) as pool:
            for k, r in enumerate(pool.map(work, mutants), start=1):
                results.append(r)
                where = re.sub(r"^(FAILED|ERROR) ", "", r.detail)[:110]
                print(
                    f"[{k:3}/{len(mutants)}] {r.status:8} {r.seconds:6.1f}s  {r.mutant.id:40} {where}",
                    flush=True,
                )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    killed = [r for r in results if r.status == "killed"]
    survived = [r for r in results if r.status == "survived"]
    bad = [r for r in results if r.status in ("invalid", "error")]
    scored = len(killed) + len(survived)
    score = len(killed) / scored if scored else float("nan")
    print(
        f"\nmutation score: {len(killed)}/{scored} killed = {100 * score:.1f}% "
        f"({time.perf_counter() - t0:.0f} s)"
    )
    by_area: dict[str, list[int]] = {}
    for r in killed + survived:
        by_area.setdefault(r.mutant.area, [0, 0])[r.status == "survived"] += 1
    for area, (k, s) in sorted(by_area.items()):
        print(f"  {area:14} {k}/{k + s} killed")
    for r in survived:
        scope = "the whole suite" if r.confirmed else "its targeted tests"
        print(f"SURVIVED {r.mutant.id} ({r.mutant.file}; passed {scope}): {r.mutant.why}")
    for r in bad:
        print(f"{r.status.upper()} {r.mutant.id}: {r.detail}")
    for node in sorted(BROKEN):
        print(f"NOTE: {node} fails without any mutant: it was left out of the runs (fix it)")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "score": score,
                    "killed": len(killed),
                    "survived": len(survived),
                    "broken_without_mutant": sorted(BROKEN),
                    "results": [
                        {
                            "id": r.mutant.id,
                            "area": r.mutant.area,
                            "file": r.mutant.file,
                            "status": r.status,
                            "seconds": round(r.seconds, 1),
                            "detail": r.detail,
                            "confirmed_on_whole_suite": r.confirmed,
                        }
                        for r in results
                    ],
                },
                indent=2,
            ),
            encoding="utf-8",
        )
    if bad:
        return 2
    return 1 if survived else 0


if __name__ == "__main__":
    sys.exit(main())
