"""Cases for PReLU (PyTorch's nn.PReLU): one shared slope, one per channel of vectors and of
images. The slopes are set apart from PyTorch's 0.25 start so that a swapped channel shows."""

import numpy as np

import learnflux as lf

from ..harness import LayerCase, torch_twin


def _prelu(num_parameters=1, init=0.25):
    def make():
        layer = lf.PReLU(num_parameters, init=init)
        layer.weight.value = np.linspace(-0.5, 0.75, num_parameters) if num_parameters > 1 else [init]
        return layer

    return make


CASES = [
    LayerCase("prelu", _prelu(), (6,), exact=True, torch=torch_twin(lambda nn: nn.PReLU())),
    LayerCase(
        "prelu-init", _prelu(init=-0.3), (2, 3), exact=True, torch=torch_twin(lambda nn: nn.PReLU(init=-0.3))
    ),
    LayerCase("prelu-channels", _prelu(4), (4,), exact=True, torch=torch_twin(lambda nn: nn.PReLU(4))),
    LayerCase("prelu-image", _prelu(3), (3, 2, 2), exact=True, torch=torch_twin(lambda nn: nn.PReLU(3))),
]
