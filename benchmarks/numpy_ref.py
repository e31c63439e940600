"""Plain hand-written NumPy references: the floor of what NumPy can do for each benchmark model.

Explicit forward and backward passes, every buffer allocated once per batch shape, in-place SGD
updates, float32 throughout. No framework, no graph, no checks: what a careful engineer would
write by hand for one fixed model. learnflux should come close to it (issue 5's targets).

Conventions shared with learnflux and PyTorch so that the work is the same:

* Linear weights ``W[out][in]``, ``o = x·Wᵀ + b``; ``δx = δ·W``, ``δW = δᵀ·x``, ``δb = Σ_batch δ``.
* Loss: softmax + cross-entropy fused (``δ = (softmax(o) − onehot(y)) / n``), or the squared error
  ``½(o − y)²`` (``δ = (o − y)/n``) while learnflux has no cross-entropy loss yet.
* The first layer's input δ is never computed (nothing needs it).
* The CNN reference keeps images channels-last (NHWC) internally: a convolution is one GEMM of the
  im2col matrix (built from a zero-copy ``sliding_window_view`` of the padded input, copied once
  into a reused buffer) with the ``(out, in·kh·kw)`` weight matrix; its input δ is scattered back
  with one ``+=`` per kernel offset. Max pooling 2×2 is a reshape + max (the windows tile).
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

F32 = np.float32


def torch_default_init(rng: np.random.Generator, shape: tuple, fan_in: int) -> np.ndarray:
    """U(−1/√fan_in, 1/√fan_in), PyTorch's default for Linear and Conv2d weights and biases."""
    bound = 1.0 / np.sqrt(fan_in)
    return rng.uniform(-bound, bound, size=shape).astype(F32)


# ------------------------------------------------------------------------------------------ losses
def softmax_cross_entropy(logits: np.ndarray, y: np.ndarray, delta: np.ndarray) -> float:
    """Mean cross-entropy of ``softmax(logits)`` against int labels ``y``; writes
    ``δ = (softmax − onehot)/n`` into ``delta`` (same shape as logits) and returns the loss."""
    n = logits.shape[0]
    rows = np.arange(n)
    np.subtract(logits, logits.max(axis=1, keepdims=True), out=delta)
    shifted_y = delta[rows, y]
    np.exp(delta, out=delta)
    total = delta.sum(axis=1, keepdims=True)
    loss = float(np.mean(np.log(total[:, 0]) - shifted_y))
    np.divide(delta, total, out=delta)
    delta[rows, y] -= F32(1.0)
    delta *= F32(1.0 / n)
    return loss


def squared_error(out: np.ndarray, target: np.ndarray, delta: np.ndarray) -> float:
    """½ Σ (o − y)² per sample, mean over the batch; ``δ = (o − y)/n`` written into ``delta``."""
    n = out.shape[0]
    np.subtract(out, target, out=delta)
    flat = delta.reshape(-1)
    loss = float(np.dot(flat, flat)) * 0.5 / n
    delta *= F32(1.0 / n)
    return loss


LOSSES = {"cross_entropy": softmax_cross_entropy, "squared_error": squared_error}


def _sgd(param: np.ndarray, grad: np.ndarray, lr: np.float32) -> None:
    """``w ← w − lr·g`` in place (the gradient buffer is scaled in place too)."""
    grad *= lr
    param -= grad


# ------------------------------------------------------------------------------------------ MLP
class NumpyMLP:
    """``Linear → ReLU → ... → Linear`` (ReLU between linears, none after the last), SGD.

    ``sizes`` e.g. ``(784, 512, 512, 10)``. ``step(x, target)`` does forward, loss, backward and
    the update on one batch and returns the loss; ``predict(x)`` runs the forward pass only.
    """

    def __init__(
        self,
        sizes: tuple,
        lr: float = 0.01,
        loss: str = "cross_entropy",
        bias: bool = True,
        final_relu: bool = False,
        seed: int = 0,
    ) -> None:
        rng = np.random.default_rng(seed)
        self.sizes = tuple(int(s) for s in sizes)
        self.lr = F32(lr)
        self.loss = LOSSES[loss]
        self.bias = bias
        self.final_relu = final_relu
        pairs = list(zip(self.sizes[:-1], self.sizes[1:], strict=True))
        self.W = [torch_default_init(rng, (o, i), i) for i, o in pairs]
        self.b = [torch_default_init(rng, (o,), i) if bias else None for i, o in pairs]
        self.gW = [np.empty_like(w) for w in self.W]
        self.gb = [np.empty_like(b) if b is not None else None for b in self.b]
        self._buffers: dict[int, dict[str, list]] = {}

    def _bufs(self, n: int) -> dict[str, list]:
        bufs = self._buffers.get(n)
        if bufs is None:
            outs = self.sizes[1:]
            bufs = {
                "a": [np.empty((n, o), F32) for o in outs],  # layer outputs (after ReLU)
                "d": [np.empty((n, o), F32) for o in outs],  # δ for each layer output
            }
            self._buffers = {n: bufs}  # one batch shape at a time
        return bufs

    def load_weights(self, weights: list[np.ndarray], biases: list[Optional[np.ndarray]]) -> None:
        for i, w in enumerate(weights):
            self.W[i][...] = w
            if self.b[i] is not None:
                self.b[i][...] = biases[i]

    def forward(self, x: np.ndarray) -> np.ndarray:
        a_list = self._bufs(x.shape[0])["a"]
        a = x
        last = len(self.W) - 1
        for i, (w, b) in enumerate(zip(self.W, self.b, strict=True)):
            z = a_list[i]
            np.matmul(a, w.T, out=z)
            if b is not None:
                z += b
            if i < last or self.final_relu:
                np.maximum(z, F32(0.0), out=z)
            a = z
        return a

    predict = forward

    def step(self, x: np.ndarray, target: np.ndarray) -> float:
        bufs = self._bufs(x.shape[0])
        a_list, d_list = bufs["a"], bufs["d"]
        out = self.forward(x)
        last = len(self.W) - 1
        loss = self.loss(out, target, d_list[last])
        if self.final_relu:
            d_list[last] *= out > 0
        for i in range(last, -1, -1):
            d = d_list[i]
            a_prev = a_list[i - 1] if i > 0 else x
            np.matmul(d.T, a_prev, out=self.gW[i])
            if self.b[i] is not None:
                np.sum(d, axis=0, out=self.gb[i])
            if i > 0:  # the first layer's input δ is not needed
                d_prev = d_list[i - 1]
                np.matmul(d, self.W[i], out=d_prev)
                d_prev *= a_prev > 0  # ReLU': 1 where the output is positive
        for i in range(last + 1):
            _sgd(self.W[i], self.gW[i], self.lr)
            if self.b[i] is not None:
                _sgd(self.b[i], self.gb[i], self.lr)
        return loss


# ------------------------------------------------------------------------------------------ CNN
class _Conv3x3NHWC:
    """3×3 convolution, stride 1, padding 1, channels-last, as one im2col GEMM."""

    def __init__(self, cin: int, cout: int, rng: np.random.Generator) -> None:
        fan_in = cin * 9
        self.cin, self.cout = cin, cout
        self.W = torch_default_init(rng, (cout, fan_in), fan_in)  # rows in torch's (c, kh, kw) order
        self.b = torch_default_init(rng, (cout,), fan_in)
        self.gW = np.empty_like(self.W)
        self.gb = np.empty_like(self.b)
        self._shape: Optional[tuple] = None

    def _alloc(self, n: int, h: int, w: int) -> None:
        if self._shape == (n, h, w):
            return
        self._shape = (n, h, w)
        c = self.cin
        self.xp = np.zeros((n, h + 2, w + 2, c), F32)  # padded input, border stays 0
        self.cols = np.empty((n, h, w, c, 3, 3), F32)  # im2col, rows = output pixels
        self.out = np.empty((n * h * w, self.cout), F32)
        self.dcols = np.empty((n * h * w, c * 9), F32)
        self.dxp = np.empty((n, h + 2, w + 2, c), F32)

    def forward(self, x: np.ndarray) -> np.ndarray:
        n, h, w, _ = x.shape
        self._alloc(n, h, w)
        self.xp[:, 1:-1, 1:-1, :] = x
        np.copyto(self.cols, sliding_window_view(self.xp, (3, 3), axis=(1, 2)))
        np.matmul(self.cols.reshape(n * h * w, -1), self.W.T, out=self.out)
        self.out += self.b
        return self.out.reshape(n, h, w, self.cout)

    def backward(self, delta: np.ndarray, need_input_delta: bool) -> Optional[np.ndarray]:
        n, h, w = self._shape
        d2 = delta.reshape(n * h * w, self.cout)
        np.matmul(d2.T, self.cols.reshape(n * h * w, -1), out=self.gW)
        np.sum(d2, axis=0, out=self.gb)
        if not need_input_delta:
            return None
        np.matmul(d2, self.W, out=self.dcols)
        dc = self.dcols.reshape(n, h, w, self.cin, 3, 3)
        self.dxp.fill(0)
        for i in range(3):
            for j in range(3):
                self.dxp[:, i : i + h, j : j + w, :] += dc[..., i, j]
        return self.dxp[:, 1:-1, 1:-1, :]


def _maxpool2_forward(x: np.ndarray) -> np.ndarray:
    n, h, w, c = x.shape
    return x.reshape(n, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))


def _maxpool2_backward(x: np.ndarray, out: np.ndarray, delta: np.ndarray) -> np.ndarray:
    """Route each window's δ to its maximum (a tie can only happen between zeros after a ReLU,
    whose δ the ReLU then zeroes)."""
    n, h, w, c = x.shape
    xw = x.reshape(n, h // 2, 2, w // 2, 2, c)
    mask = xw == out[:, :, None, :, None, :]
    return (mask * delta[:, :, None, :, None, :]).reshape(n, h, w, c)


class NumpyCNN:
    """The ``cnn`` case's LeNet-like net: conv 1→16 3×3 pad 1, ReLU, max-pool 2, conv 16→32 3×3
    pad 1, ReLU, max-pool 2, linear 32·7·7 → 10. Takes NCHW batches like the others (with one
    channel at the input, NCHW and NHWC are the same memory)."""

    def __init__(
        self,
        lr: float = 0.01,
        loss: str = "cross_entropy",
        seed: int = 0,
        channels: tuple = (1, 16, 32),
        image: int = 28,
        classes: int = 10,
    ) -> None:
        rng = np.random.default_rng(seed)
        c0, c1, c2 = channels
        self.lr = F32(lr)
        self.loss = LOSSES[loss]
        self.conv1 = _Conv3x3NHWC(c0, c1, rng)
        self.conv2 = _Conv3x3NHWC(c1, c2, rng)
        self.side = image // 4
        fan_in = c2 * self.side * self.side
        self.Wfc = torch_default_init(rng, (classes, fan_in), fan_in)  # columns in (h, w, c) order
        self.bfc = torch_default_init(rng, (classes,), fan_in)
        self.gWfc = np.empty_like(self.Wfc)
        self.gbfc = np.empty_like(self.bfc)
        self.classes = classes

    def load_torch_state(self, state: dict[str, np.ndarray]) -> None:
        """Copy the weights of the PyTorch twin (``benchmarks.torch_ref.lenet``)."""
        self.conv1.W[...] = state["0.weight"].reshape(self.conv1.cout, -1)
        self.conv1.b[...] = state["0.bias"]
        self.conv2.W[...] = state["3.weight"].reshape(self.conv2.cout, -1)
        self.conv2.b[...] = state["3.bias"]
        c2, s = self.conv2.cout, self.side
        self.Wfc[...] = (
            state["7.weight"].reshape(-1, c2, s, s).transpose(0, 2, 3, 1).reshape(self.classes, -1)
        )
        self.bfc[...] = state["7.bias"]

    def _nhwc(self, x: np.ndarray) -> np.ndarray:
        n, c, h, w = x.shape
        return x.reshape(n, h, w, 1) if c == 1 else np.ascontiguousarray(x.transpose(0, 2, 3, 1))

    def forward(self, x: np.ndarray, keep: bool = False) -> np.ndarray:
        x = self._nhwc(x)
        a1 = self.conv1.forward(x)
        np.maximum(a1, F32(0.0), out=a1)
        p1 = _maxpool2_forward(a1)
        a2 = self.conv2.forward(p1)
        np.maximum(a2, F32(0.0), out=a2)
        p2 = _maxpool2_forward(a2)
        flat = p2.reshape(p2.shape[0], -1)
        out = flat @ self.Wfc.T
        out += self.bfc
        if keep:
            self._cache = (a1, p1, a2, p2, flat)
        return out

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.forward(x)

    def step(self, x: np.ndarray, target: np.ndarray) -> float:
        out = self.forward(x, keep=True)
        a1, p1, a2, p2, flat = self._cache
        delta = np.empty_like(out)
        loss = self.loss(out, target, delta)
        np.matmul(delta.T, flat, out=self.gWfc)
        np.sum(delta, axis=0, out=self.gbfc)
        d_p2 = (delta @ self.Wfc).reshape(p2.shape)
        d_a2 = _maxpool2_backward(a2, p2, d_p2)
        d_a2 *= a2 > 0
        d_p1 = self.conv2.backward(d_a2, need_input_delta=True)
        d_a1 = _maxpool2_backward(a1, p1, d_p1)
        d_a1 *= a1 > 0
        self.conv1.backward(d_a1, need_input_delta=False)
        for p, g in (
            (self.conv1.W, self.conv1.gW),
            (self.conv1.b, self.conv1.gb),
            (self.conv2.W, self.conv2.gW),
            (self.conv2.b, self.conv2.gb),
            (self.Wfc, self.gWfc),
            (self.bfc, self.gbfc),
        ):
            _sgd(p, g, self.lr)
        return loss


def build(model: str, **kwargs: Any) -> Any:
    """``build("mlp", sizes=...)``, ``build("tiny")`` or ``build("cnn")``."""
    if model == "mlp":
        return NumpyMLP(**kwargs)
    if model == "tiny":
        return NumpyMLP((3, 1), bias=False, final_relu=True, loss="squared_error", **kwargs)
    if model == "cnn":
        return NumpyCNN(**kwargs)
    raise KeyError(f"no NumPy reference for {model!r}")
