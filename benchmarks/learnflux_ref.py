"""The benchmark models written with learnflux's public API, as a user would write them.

Each builder raises :class:`Unavailable` (instead of an AttributeError deep in a case) when a
layer, loss or optimizer it needs has not landed in the library yet; the suite then reports that
framework as unavailable for the case and still times the others.
"""

from __future__ import annotations

from typing import Any

import learnflux as lf


class Unavailable(RuntimeError):
    """learnflux lacks something this model needs (the message names it)."""


def need(*names: str) -> list[Any]:
    missing = [n for n in names if not hasattr(lf, n)]
    if missing:
        raise Unavailable(f"learnflux has no {', '.join('lf.' + n for n in missing)} yet")
    return [getattr(lf, n) for n in names]


def has_cross_entropy() -> bool:
    return hasattr(lf, "CrossEntropyLoss")


def mlp(sizes: tuple) -> Any:
    pairs = list(zip(sizes[:-1], sizes[1:], strict=True))
    layers: list[Any] = []
    for k, (i, o) in enumerate(pairs):
        layers.append(lf.Linear(i, o))
        if k < len(pairs) - 1:
            layers.append(lf.ReLU())
    return lf.Sequential(*layers)


def tiny() -> Any:
    return lf.Sequential(lf.Linear(3, 1, bias=False), lf.ReLU())


def lenet(channels: tuple = (1, 16, 32), image: int = 28, classes: int = 10) -> Any:
    Conv2d, MaxPool2d, Flatten = need("Conv2d", "MaxPool2d", "Flatten")
    c0, c1, c2 = channels
    side = image // 4
    return lf.Sequential(
        Conv2d(c0, c1, 3, padding=1),
        lf.ReLU(),
        MaxPool2d(2),
        Conv2d(c1, c2, 3, padding=1),
        lf.ReLU(),
        MaxPool2d(2),
        Flatten(),
        lf.Linear(c2 * side * side, classes),
    )


def vgg(plan: tuple, in_channels: int = 3, image: int = 32, classes: int = 10) -> Any:
    Conv2d, BatchNorm2d, MaxPool2d, Flatten = need("Conv2d", "BatchNorm2d", "MaxPool2d", "Flatten")
    layers: list[Any] = []
    c, side = in_channels, image
    for item in plan:
        if item == "M":
            layers.append(MaxPool2d(2))
            side //= 2
        else:
            layers += [Conv2d(c, item, 3, padding=1), BatchNorm2d(item), lf.ReLU()]
            c = item
    layers += [Flatten(), lf.Linear(c * side * side, classes)]
    return lf.Sequential(*layers)


def transformer(d_model: int, nhead: int, dim_feedforward: int) -> Any:
    """One causal pre-norm block, as those of examples/charlm.toml (no dropout)."""
    (block,) = need("TransformerEncoderLayer")
    return lf.Sequential(
        block(
            d_model, nhead, dim_feedforward, dropout=0.0, activation="gelu", norm_first=True, is_causal=True
        )
    )


def lstm(input_size: int, hidden_size: int) -> Any:
    """One LSTM layer, batch first; its value is the output sequence (N, T, hidden)."""
    (LSTM,) = need("LSTM")
    return lf.Sequential(LSTM(input_size, hidden_size, batch_first=True))


def build(model: str, **kwargs: Any) -> Any:
    builders = {"mlp": mlp, "tiny": tiny, "cnn": lenet, "vgg": vgg, "transformer": transformer, "lstm": lstm}
    return builders[model](**kwargs)


def loss(kind: str) -> Any:
    if kind == "cross_entropy":
        (CrossEntropyLoss,) = need("CrossEntropyLoss")
        return CrossEntropyLoss()
    return lf.SquaredError()
