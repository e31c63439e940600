"""The PyTorch eager twins of the benchmark models (float32, CPU, default modules and SGD).

Layer positions match learnflux's ``Sequential`` numbering, so ``state_dict`` names match too
(``"0.weight"``, ``"3.bias"``...). Imported only by the processes that time or measure PyTorch.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


def mlp(sizes: tuple) -> nn.Sequential:
    layers: list[nn.Module] = []
    pairs = list(zip(sizes[:-1], sizes[1:], strict=True))
    for k, (i, o) in enumerate(pairs):
        layers.append(nn.Linear(i, o))
        if k < len(pairs) - 1:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def tiny() -> nn.Sequential:
    return nn.Sequential(nn.Linear(3, 1, bias=False), nn.ReLU())


def lenet(channels: tuple = (1, 16, 32), image: int = 28, classes: int = 10) -> nn.Sequential:
    c0, c1, c2 = channels
    side = image // 4
    return nn.Sequential(
        nn.Conv2d(c0, c1, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(c1, c2, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(c2 * side * side, classes),
    )


def vgg(plan: tuple, in_channels: int = 3, image: int = 32, classes: int = 10) -> nn.Sequential:
    """VGG-style: for each int ``c`` in ``plan`` conv 3×3 pad 1 → BatchNorm2d → ReLU; ``"M"`` is
    a 2×2 max-pool; then Flatten and one Linear."""
    layers: list[nn.Module] = []
    c, side = in_channels, image
    for item in plan:
        if item == "M":
            layers.append(nn.MaxPool2d(2))
            side //= 2
        else:
            layers += [nn.Conv2d(c, item, 3, padding=1), nn.BatchNorm2d(item), nn.ReLU()]
            c = item
    layers += [nn.Flatten(), nn.Linear(c * side * side, classes)]
    return nn.Sequential(*layers)


class CausalBlock(nn.Module):
    """``nn.TransformerEncoderLayer`` (batch first, pre-norm, GELU, no dropout) called with the
    causal mask, as learnflux's ``TransformerEncoderLayer(..., is_causal=True)``."""

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int) -> None:
        super().__init__()
        self.block = nn.TransformerEncoderLayer(
            d_model,
            nhead,
            dim_feedforward,
            dropout=0.0,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        self.masks: dict[int, torch.Tensor] = {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = x.shape[1]
        if t not in self.masks:
            self.masks[t] = nn.Transformer.generate_square_subsequent_mask(t, dtype=x.dtype)
        return self.block(x, src_mask=self.masks[t], is_causal=True)


class LSTMOutput(nn.Module):
    """``nn.LSTM`` (batch first) whose value is its output sequence, as learnflux's ``LSTM``."""

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.lstm = nn.LSTM(input_size, hidden_size, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lstm(x)[0]


def build(model: str, **kwargs: Any) -> nn.Module:
    builders = {
        "mlp": mlp,
        "tiny": tiny,
        "cnn": lenet,
        "vgg": vgg,
        "transformer": CausalBlock,
        "lstm": LSTMOutput,
    }
    return builders[model](**kwargs)


def loss_fn(kind: str) -> Any:
    """The loss as learnflux defines it: cross-entropy (mean) or ½(o−y)² summed per sample, mean
    over the batch."""
    if kind == "cross_entropy":
        return nn.functional.cross_entropy

    def squared_error(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return 0.5 * ((out - target) ** 2).sum() / out.shape[0]

    return squared_error
