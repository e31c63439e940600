"""The benchmark cases and, for each framework, the ``step()`` closure that one timed step runs.

Every framework gets the same model, the same float32 data (a few fixed synthetic batches built
once from one seed and cycled, so no data loading is timed), the same loss, plain SGD (lr 0.01)
and the same thread count. A training step is forward + loss + backward + update; a predict step
is one forward pass in the inference phase (PyTorch under ``torch.inference_mode()``).

Frameworks: ``learnflux`` (its default kernel set: compiled where built), ``learnflux-numpy``
(the same on the NumPy kernels), ``torch`` (eager, NCHW), ``torch-cl`` (eager, ``channels_last``
memory format for model and input) and ``numpy`` (the hand-written reference of
``benchmarks.numpy_ref``). Modules are imported lazily so that the memory workers load only what
their framework needs.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import numpy as np

LR = 0.01
MLP_SIZES = (784, 512, 512, 10)
VGG_PLAN = (32, 32, "M", 64, 64, "M", 128, "M")
SCALING_BATCHES = (1, 4, 16, 64, 256, 1024)
SCALING_WIDTHS = (64, 128, 256, 512, 1024, 2048, 4096)
#: the sequence cases: one causal pre-norm transformer block (GELU, as examples/charlm.toml's
#: blocks) on (T, d) and one LSTM layer on (T, input); both trained on the squared error against
#: random targets of their output's shape, so that the step times the layer itself
TRANSFORMER = {"d_model": 128, "nhead": 4, "dim_feedforward": 512}
LSTM = {"input_size": 64, "hidden_size": 128}


@dataclass
class Case:
    """One benchmark: a model, a batch shape, a mode, the frameworks compared and the targets.

    ``targets`` maps a framework to the minimum ratio ``learnflux / framework`` of throughput
    that issue 10 (the compiled kernels) asks for; the transformer and LSTM cases carry issue
    15's."""

    name: str
    title: str
    model: str
    input_shape: tuple
    batch: int
    mode: str = "train"  # "train" or "predict"
    model_kwargs: dict = field(default_factory=dict)
    frameworks: tuple = ("learnflux", "torch", "numpy")
    unit: str = "samples/s"
    targets: dict = field(default_factory=dict)
    memory: bool = True
    group: str = ""
    classes: int = 10
    n_batches: int = 4
    #: per-sample shape of the float targets when ``classes`` is 0 (the squared error)
    target_shape: tuple = (1,)
    #: SGD's learning rate (the sequence cases sum the squared error over thousands of outputs
    #: per sample: 0.01 would diverge to NaN within the timed steps)
    lr: float = LR

    def __post_init__(self) -> None:
        self.group = self.group or self.name


def all_cases() -> list[Case]:
    mlp_kw = {"sizes": MLP_SIZES}
    cases = [
        Case(
            "mlp",
            "MLP 784-512-512-10, ReLU, cross-entropy, SGD, batch 128 (train)",
            "mlp",
            (784,),
            128,
            model_kwargs=mlp_kw,
            targets={"torch": 1.1, "numpy": 0.95},
        ),
        Case(
            "cnn",
            "LeNet-like CNN on 1×28×28, batch 64 (train)",
            "cnn",
            (1, 28, 28),
            64,
            frameworks=("learnflux", "torch", "torch-cl", "numpy"),
            targets={"torch": 1.2, "torch-cl": 1.0},
        ),
        Case(
            "cnn-cifar",
            "VGG-style CNN with BatchNorm on 3×32×32, batch 64 (train)",
            "vgg",
            (3, 32, 32),
            64,
            model_kwargs={"plan": VGG_PLAN},
            frameworks=("learnflux", "torch"),
            targets={"torch": 1.2},
        ),
        Case(
            "transformer",
            "Transformer block: causal pre-norm, d 128, 4 heads, FF 512, GELU, on (64, 128), "
            "squared error, batch 32 (train)",
            "transformer",
            (64, TRANSFORMER["d_model"]),
            32,
            model_kwargs=TRANSFORMER,
            frameworks=("learnflux", "torch"),
            targets={"torch": 1.2},
            classes=0,
            target_shape=(64, TRANSFORMER["d_model"]),
            lr=1e-4,
        ),
        Case(
            "lstm",
            "LSTM 64→128, one layer, on (32, 64) sequences, squared error on its outputs, batch 32 (train)",
            "lstm",
            (32, LSTM["input_size"]),
            32,
            model_kwargs=LSTM,
            frameworks=("learnflux", "torch"),
            targets={"torch": 1.2},
            classes=0,
            target_shape=(32, LSTM["hidden_size"]),
            lr=1e-4,
        ),
        Case(
            "tiny",
            "The seed's model: Linear 3→1 (no bias), ReLU, squared error, SGD, batch 1",
            "tiny",
            (3,),
            1,
            unit="steps/s",
            targets={"torch": 5.0},
            classes=0,
        ),
        Case(
            "predict-mlp",
            "MLP 784-512-512-10 inference, batch 256",
            "mlp",
            (784,),
            256,
            mode="predict",
            model_kwargs=mlp_kw,
            targets={"torch": 1.1},
            group="predict",
        ),
        Case(
            "predict-cnn",
            "LeNet-like CNN inference, batch 256",
            "cnn",
            (1, 28, 28),
            256,
            mode="predict",
            targets={"torch": 1.5},
            group="predict",
        ),
    ]
    for case in cases:  # the kernel-set dimension: learnflux on the NumPy kernels beside the default
        case.frameworks = (case.frameworks[0], "learnflux-numpy", *case.frameworks[1:])
    for b in SCALING_BATCHES:
        cases.append(
            Case(
                f"scale-batch-{b}",
                f"MLP 784-512-512-10 train, batch {b}",
                "mlp",
                (784,),
                b,
                model_kwargs=mlp_kw,
                memory=False,
                group="scaling",
            )
        )
    for w in SCALING_WIDTHS:
        cases.append(
            Case(
                f"scale-width-{w}",
                f"MLP 784-{w}-{w}-10 train, batch 128",
                "mlp",
                (784,),
                128,
                model_kwargs={"sizes": (784, w, w, 10)},
                memory=False,
                group="scaling",
            )
        )
    return cases


def select(names: Optional[list[str]]) -> list[Case]:
    """Cases by name or group (``scaling`` and ``predict`` are groups); all when ``names`` is
    empty. ``limit`` is not a timed case (see ``benchmarks.limit``)."""
    cases = all_cases()
    if not names:
        return cases
    known = {c.name for c in cases} | {c.group for c in cases} | {"limit"}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise SystemExit(f"unknown case(s) {unknown}; known: {sorted(known)}")
    return [c for c in cases if c.name in names or c.group in names]


# ------------------------------------------------------------------------------------------ data
@dataclass
class Data:
    x: list[np.ndarray]
    labels: list[np.ndarray]  # int64 class labels (or float targets for the tiny case)
    onehot: list[np.ndarray]  # float32 targets for the squared error


def make_data(case: Case, seed: int = 0) -> Data:
    rng = np.random.default_rng(seed)
    xs, labels, onehots = [], [], []
    for _ in range(case.n_batches):
        shape = (case.batch, *case.input_shape)
        if case.classes:
            x = rng.random(shape, dtype=np.float32)  # MNIST/CIFAR-like pixels in [0, 1)
            y = rng.integers(0, case.classes, size=case.batch, dtype=np.int64)
            oh = np.zeros((case.batch, case.classes), np.float32)
            oh[np.arange(case.batch), y] = 1.0
        else:
            x = rng.standard_normal(shape, dtype=np.float32)
            y = rng.standard_normal((case.batch, *case.target_shape), dtype=np.float32)
            oh = y
        xs.append(x)
        labels.append(y)
        onehots.append(oh)
    return Data(xs, labels, onehots)


def loss_kind(case: Case, lf_has_cross_entropy: bool) -> str:
    """The tiny case uses the squared error (it is the seed's model); the others use the
    cross-entropy, or the squared error on one-hot targets for every framework while learnflux
    has no ``CrossEntropyLoss`` (the result then says so)."""
    if not case.classes or not lf_has_cross_entropy:
        return "squared_error"
    return "cross_entropy"


# ------------------------------------------------------------------------------------------ steps
def _targets(data: Data, kind: str) -> list[np.ndarray]:
    return data.labels if kind == "cross_entropy" else data.onehot


def make_step(framework: str, case: Case, data: Data, kind: str, seed: int = 0) -> Callable[[], Any]:
    """Build the model of ``case`` in ``framework`` and return its ``step()`` closure.

    Raises ``benchmarks.learnflux_ref.Unavailable`` when learnflux lacks a piece; ``KeyError``
    when a framework has no version of the model (no NumPy reference for the VGG net)."""
    builders = {
        "learnflux": _learnflux_step,
        "learnflux-numpy": _learnflux_step,
        "torch": _torch_step,
        "torch-cl": _torch_step,
        "numpy": _numpy_step,
    }
    return builders[framework](framework, case, data, kind, seed)


def _learnflux_step(framework: str, case: Case, data: Data, kind: str, seed: int) -> Callable:
    """``learnflux`` runs the default kernel set (compiled where built); ``learnflux-numpy`` the
    NumPy kernels, switched on around each step (``kernels.using``: a few µs)."""
    from learnflux import kernels

    step = _learnflux_default_step(framework, case, data, kind, seed)
    kernel_set = framework.partition("-")[2]
    if not kernel_set:
        return step

    def with_kernels() -> Any:
        with kernels.using(kernel_set):
            return step()

    return with_kernels


def _learnflux_default_step(framework: str, case: Case, data: Data, kind: str, seed: int) -> Callable:
    import learnflux as lf

    from . import learnflux_ref

    lf.seed(seed)
    model = learnflux_ref.build(case.model, **case.model_kwargs)
    batches = itertools.cycle(list(zip(data.x, _targets(data, kind), strict=True)))
    if case.mode == "predict":
        model.eval()

        def predict() -> Any:
            return model.predict(next(batches)[0])

        return predict
    loss = learnflux_ref.loss(kind)
    opt = lf.SGD(model.parameters(), lr=case.lr)

    def train() -> Any:
        xb, tb = next(batches)
        loss.forward(model(xb), tb)
        model.backward(loss.backward(), need_input_delta=False)
        opt.step()

    return train


def _torch_step(framework: str, case: Case, data: Data, kind: str, seed: int) -> Callable:
    import torch

    from . import torch_ref

    torch.manual_seed(seed)
    model = torch_ref.build(case.model, **case.model_kwargs).float()
    xs = [torch.from_numpy(x) for x in data.x]
    if framework == "torch-cl":
        model = model.to(memory_format=torch.channels_last)
        xs = [x.contiguous(memory_format=torch.channels_last) for x in xs]
    batches = itertools.cycle(list(zip(xs, [torch.from_numpy(t) for t in _targets(data, kind)], strict=True)))
    if case.mode == "predict":
        model.eval()

        def predict() -> Any:
            with torch.inference_mode():
                return model(next(batches)[0])

        return predict
    loss_fn = torch_ref.loss_fn(kind)
    opt = torch.optim.SGD(model.parameters(), lr=case.lr)

    def train() -> Any:
        xb, tb = next(batches)
        opt.zero_grad(set_to_none=True)
        loss_fn(model(xb), tb).backward()
        opt.step()

    return train


def _numpy_step(framework: str, case: Case, data: Data, kind: str, seed: int) -> Callable:
    from . import numpy_ref

    if case.model == "tiny":
        net = numpy_ref.build("tiny", lr=LR, seed=seed)
    elif case.model == "mlp":
        net = numpy_ref.build("mlp", lr=LR, loss=kind, seed=seed, **case.model_kwargs)
    else:
        net = numpy_ref.build(case.model, lr=LR, loss=kind, seed=seed, **case.model_kwargs)
    batches = itertools.cycle(list(zip(data.x, _targets(data, kind), strict=True)))
    if case.mode == "predict":
        return lambda: net.predict(next(batches)[0])
    return lambda: net.step(*next(batches))
