"""The NumPy kernel set ("numpy"): the readable reference every compiled kernel is checked against.
It runs every dtype, exact ``Fraction`` (object) arrays included."""

from .conv import conv2d_backward, conv2d_forward, conv2d_input_delta
from .dense import linear_forward, relu_backward_colsum, sub_scaled, surely_finite
from .eltwise import gelu_backward, gelu_forward, relu_backward, relu_forward
from .fused import conv2d_relu_forward
from .norm import batchnorm_backward, batchnorm_forward, batchnorm_relu_forward
from .pool import avgpool2d_backward, avgpool2d_forward, maxpool2d_backward, maxpool2d_forward

NAME = "numpy"
