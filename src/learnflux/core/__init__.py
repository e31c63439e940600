"""The core floor: what a network is made of, and nothing of how it is trained.

- :mod:`~learnflux.core.param`: ``Param``, a tensor and its gradient;
- :mod:`~learnflux.core.node`: ``Node``, the symbolic tensor of the functional API;
- :mod:`~learnflux.core.layer`: ``Layer``, the contract every layer keeps (forward, backward, the
  phases, parameters and buffers, configs), and the layer registry;
- :mod:`~learnflux.core.model`: ``Model`` and ``Sequential``, graphs of layers.

These import only the ground floor (``errors``, ``numbers``, ``seeding``). The layer catalogue,
losses, optimizers and kernels sit on the floor above; ``model.fit`` and ``model.summary`` call
up into the training floor from inside those methods (tests/test_floors.py lists them).
"""
