"""Cases for the recurrent layers: RNN (tanh, ReLU), LSTM and GRU, stacked, bidirectional, without
bias, time-major, with initial states given as inputs, with dropout between layers.

Short sequences and small states (T = 4 or 5, H ≤ 4) keep the float64 gradient checks fast. Every
bias is drawn at random (PyTorch's initialisation already does: U(−1/√H, 1/√H)). PyTorch's modules
take ``(x, hx)`` and return ``output, h_n`` (``output, (h_n, c_n)``): the twin here is a subclass
taking the inputs the harness gives (``x``, or ``x, h0[, c0]`` with the states laid out as the
layer's, batch first when ``batch_first``) and returning the output alone; same state_dict names.
The final states, δh_n and δc_n, and from_torch / to_torch of the plain modules are tested in
tests/test_recurrent.py.
"""

import learnflux as lf

from ..harness import LayerCase


def _twin(kind, *args, **kwargs):
    def build():
        import torch

        base = getattr(torch.nn, kind)

        class Twin(base):
            def forward(self, x, *states):
                if self.batch_first:
                    states = tuple(s.transpose(0, 1) for s in states)
                hx = None
                if states:
                    hx = states if kind == "LSTM" else states[0]
                return super().forward(x, hx)[0]

        # learnflux's default is batch_first=True, PyTorch's False: say it
        return Twin(*args, **{"batch_first": True, **kwargs}).double()

    return build


def _case(case_id, kind, args, kwargs, shape, states=0, **extra):
    layers = kwargs.get("num_layers", 1) * (2 if kwargs.get("bidirectional") else 1)
    hidden = args[1]
    input_shape = shape if not states else [shape] + [(layers, hidden)] * states
    return LayerCase(
        case_id,
        lambda: getattr(lf, kind)(*args, **kwargs),
        input_shape,
        torch=None if kwargs.get("dropout") else _twin(kind, *args, **kwargs),
        **extra,
    )


CASES = [
    _case("rnn-tanh", "RNN", (3, 4), {}, (5, 3)),
    _case("rnn-relu-2layers", "RNN", (3, 4), {"num_layers": 2, "nonlinearity": "relu"}, (4, 3)),
    _case("rnn-bidirectional-h0", "RNN", (3, 3), {"bidirectional": True}, (4, 3), states=1),
    _case("lstm", "LSTM", (3, 4), {}, (5, 3)),
    _case("lstm-2layers-bidirectional", "LSTM", (3, 3), {"num_layers": 2, "bidirectional": True}, (4, 3)),
    _case("lstm-h0-c0", "LSTM", (3, 4), {"num_layers": 2}, (4, 3), states=2),
    _case("lstm-no-bias", "LSTM", (2, 3), {"bias": False}, (4, 2)),
    _case("lstm-time-major", "LSTM", (3, 4), {"batch_first": False}, (4, 3)),
    _case(
        "lstm-dropout",
        "LSTM",
        (3, 3),
        {"num_layers": 2, "dropout": 0.5, "rng": 0},
        (4, 3),
        deterministic=False,
    ),
    _case("gru", "GRU", (3, 4), {}, (5, 3)),
    _case(
        "gru-2layers-bidirectional-h0",
        "GRU",
        (3, 3),
        {"num_layers": 2, "bidirectional": True},
        (4, 3),
        states=1,
    ),
    _case("gru-no-bias", "GRU", (2, 3), {"bias": False}, (4, 2)),
]
