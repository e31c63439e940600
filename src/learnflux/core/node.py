"""The symbolic side of the functional API: nodes, and telling them from real data.

Calling a layer on a :class:`Node` (instead of an array) records an edge of a graph:
``x = Input(4); h = Linear(4, 4)(x)`` makes ``h`` the node ``Node(Linear, (x.node,))``, and
``Model(x, h)`` runs the graph so recorded. This module sits below ``layer`` (whose ``__call__``
asks :func:`symbolic_inputs` whether it was called on nodes) and imports no other part of
learnflux: a layer that stands for a node of its own (``Input``) keeps it in its ``node``
attribute, which is how it is recognised here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional, Sequence

import numpy as np

from ..errors import ShapeError

if TYPE_CHECKING:
    from .layer import Layer


class Node:
    """A symbolic tensor of the functional API: the output of ``layer`` applied to ``inbound``."""

    __slots__ = ("layer", "inbound")

    def __init__(self, layer: Layer, inbound: tuple[Node, ...]) -> None:
        self.layer = layer
        self.inbound = inbound

    @classmethod
    def create(cls, layer: Layer, inbound: Sequence[Node]) -> Node:
        if layer.n_inputs == 1 and not 1 <= len(inbound) <= layer.max_inputs:
            takes = "one input" if layer.max_inputs == 1 else f"1 to {layer.max_inputs} inputs"
            raise ShapeError(f"{layer.describe()} takes {takes}, got {len(inbound)}")
        return cls(layer, tuple(inbound))

    def __repr__(self) -> str:
        return f"Node({self.layer!r})"


def _as_node(item: Any) -> Optional[Node]:
    """``item`` as a node: itself, the node an ``Input`` stands for, or None for real data."""
    if isinstance(item, Node):
        return item
    node = getattr(item, "node", None)
    return node if isinstance(node, Node) else None


def symbolic_inputs(x: Any) -> Optional[list[Node]]:
    """The nodes a layer is being called on, or None when called on real data."""
    if isinstance(x, np.ndarray):  # real data, the common case: answer before anything else
        return None
    single = _as_node(x)
    if single is not None:
        return [single]
    if isinstance(x, (list, tuple)) and x:
        nodes = [_as_node(i) for i in x]
        if all(n is not None for n in nodes):
            return nodes
    return None
