"""A model as the graph the trace talks about: layer ``L^k`` (1-based, ``model.layers[k-1]``)
computes ``o^k`` from the outputs of the layers it reads (``o^j``, or the data ``x``)."""

from __future__ import annotations

from typing import Any

from ..training.trace import article_name

__all__ = ["graph_nodes", "is_chain", "input_names"]


def graph_nodes(model: Any) -> list[dict[str, Any]]:
    """One entry per layer, in the model's (topological) order::

        {"k": 3, "layer": "Add()", "class": "Add", "inputs": [1, 2], "weights": ["w3", "b3"]}

    ``inputs`` holds the ``k`` of each layer read (``0`` for the data ``x``; ``-m`` for data
    input ``m + 1`` of a model with several); ``weights`` the article names of the layer's
    parameters."""
    plan = list(getattr(model, "_plan", [(i - 1,) for i in range(len(model.layers))]))
    nodes = []
    for i, (layer, ins) in enumerate(zip(model.layers, plan, strict=True)):
        inputs = [j + 1 if j >= 0 else (0 if j == -1 else j + 1) for j in ins]
        weights = [article_name(f"{i}.{name}") for name, _ in layer.named_parameters()]
        nodes.append(
            {
                "k": i + 1,
                "layer": layer.summary_name(),
                "class": type(layer).__name__,
                "inputs": inputs,
                "weights": weights,
            }
        )
    return nodes


def is_chain(model: Any) -> bool:
    """True when every layer reads the previous one (a ``Sequential``)."""
    plan = getattr(model, "_plan", None)
    return plan is not None and list(plan) == [(i - 1,) for i in range(len(model.layers))]


def input_names(node: dict[str, Any]) -> list[str]:
    """``["o1", "o2"]`` for the layers a node reads; ``"x"`` for the data (``"x2"`` for a
    second data input)."""
    out = []
    for j in node["inputs"]:
        if j > 0:
            out.append(f"o{j}")
        else:
            out.append("x" if j == 0 else f"x{-j + 1}")
    return out
