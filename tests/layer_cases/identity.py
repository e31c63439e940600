"""Cases for Identity (PyTorch's nn.Identity)."""

import learnflux as lf

from ..harness import LayerCase, torch_twin

CASES = [
    LayerCase(
        "identity", lambda: lf.Identity(), (2, 3), exact=True, torch=torch_twin(lambda nn: nn.Identity())
    ),
]
