"""RNN, LSTM and GRU beyond the shared harness (tests/layer_cases/recurrent.py): the final states
and the δ they carry back against PyTorch, from_torch / to_torch of the plain modules, the errors,
graphs with initial states, and the learning flow through time in the trace."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

import learnflux as lf

torch = pytest.importorskip("torch")

KINDS = ["RNN", "LSTM", "GRU"]


def _pair(kind, batch_first=True, seed=0, **kwargs):
    """A learnflux layer and the PyTorch module with the same weights (float64)."""
    torch.manual_seed(seed)
    module = getattr(torch.nn, kind)(3, 4, batch_first=batch_first, **kwargs).double()
    return lf.from_torch(module), module


def _to_torch_layout(state, batch_first):
    return state.transpose(1, 0, 2) if batch_first else state


@pytest.mark.parametrize("batch_first", [True, False], ids=["batch_first", "time_major"])
@pytest.mark.parametrize(
    "options", [{}, {"num_layers": 2, "bidirectional": True}], ids=["one-layer", "2-layers-bidirectional"]
)
@pytest.mark.parametrize("kind", KINDS)
def test_states_in_and_out_match_pytorch(kind, options, batch_first):
    """Output, h_n, c_n and the δ of x, h0, c0 and of every weight when the loss reads the output
    *and* the final states: Σ output⊙u + Σ h_n⊙u_h (+ Σ c_n⊙u_c)."""
    layer, module = _pair(kind, batch_first, **options)
    rng = np.random.default_rng(0)
    n, t = 3, 4
    ld = options.get("num_layers", 1) * (2 if options.get("bidirectional") else 1)
    x = rng.standard_normal((n, t, 3) if batch_first else (t, n, 3))
    states = [rng.standard_normal((n, ld, 4) if batch_first else (ld, n, 4))]
    if kind == "LSTM":
        states.append(rng.standard_normal(states[0].shape))
    out = layer([x, *states])
    tx = [torch.from_numpy(a.copy()).requires_grad_(True) for a in [x, *states]]
    t_states = [s.transpose(0, 1) if batch_first else s for s in tx[1:]]
    t_out, t_final = module(tx[0], tuple(t_states) if kind == "LSTM" else t_states[0])
    t_final = list(t_final) if kind == "LSTM" else [t_final]
    ours_final = [layer.h_n] + ([layer.c_n] if kind == "LSTM" else [])
    np.testing.assert_allclose(out, t_out.detach().numpy(), rtol=1e-10, atol=1e-12)
    for ours, theirs in zip(ours_final, t_final, strict=True):
        np.testing.assert_allclose(
            _to_torch_layout(ours, batch_first), theirs.detach().numpy(), rtol=1e-10, atol=1e-12
        )
    ups = [rng.standard_normal(out.shape)] + [rng.standard_normal(s.shape) for s in ours_final]
    structure = (ups[0], (ups[1], ups[2])) if kind == "LSTM" else (ups[0], ups[1])
    deltas = layer.backward(structure)
    total = (t_out * torch.from_numpy(ups[0])).sum()
    for theirs, up in zip(t_final, ups[1:], strict=True):
        total = total + (theirs * torch.from_numpy(_to_torch_layout(up, batch_first))).sum()
    total.backward()
    assert len(deltas) == len(tx)
    for k, (d, tt) in enumerate(zip(deltas, tx, strict=True)):
        np.testing.assert_allclose(d, tt.grad.numpy(), rtol=1e-10, atol=1e-12, err_msg=f"δ of input {k}")
    params = dict(module.named_parameters())
    for name, p in layer.named_parameters():
        np.testing.assert_allclose(p.grad, params[name].grad.numpy(), rtol=1e-10, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("kind", KINDS)
def test_from_torch_and_to_torch(kind):
    layer, module = _pair(kind, batch_first=False, num_layers=2, bidirectional=True, dropout=0.25)
    assert type(layer).__name__ == kind and type(layer) is getattr(lf, kind)
    assert layer.get_config() == {
        "input_size": 3,
        "hidden_size": 4,
        "num_layers": 2,
        "batch_first": False,
        "dropout": 0.25,
        "bidirectional": True,
    }
    assert list(layer.state_dict()) == list(module.state_dict())  # PyTorch's names, in its order
    x = np.random.default_rng(1).standard_normal((5, 2, 3))
    layer.eval()
    module.eval()
    with torch.no_grad():
        expected = module(torch.from_numpy(x))[0].numpy()
    np.testing.assert_allclose(layer(x), expected, rtol=1e-12, atol=1e-14)
    back = lf.to_torch(layer)
    assert type(back) is getattr(torch.nn, kind) and back.batch_first is False and back.dropout == 0.25
    with torch.no_grad():
        np.testing.assert_allclose(back(torch.from_numpy(x))[0].numpy(), expected, rtol=1e-12, atol=1e-14)
    # learnflux's default is batch first: to_torch says so explicitly
    assert lf.to_torch(getattr(lf, kind)(3, 4)).batch_first is True


def test_rnn_relu_from_torch():
    layer, module = _pair("RNN", nonlinearity="relu")
    assert layer.nonlinearity == "relu" and layer.get_config()["nonlinearity"] == "relu"
    assert lf.to_torch(layer).nonlinearity == "relu"


def test_refused_options_say_what_and_why():
    with pytest.raises(lf.ConfigError, match="proj_size=2"):
        lf.from_torch(torch.nn.LSTM(3, 4, proj_size=2))
    with pytest.raises(lf.ConfigError, match="proj_size=2 .*not supported"):
        lf.LSTM(3, 4, proj_size=2)
    with pytest.raises(lf.ConfigError, match="nonlinearity must be 'tanh' or 'relu'"):
        lf.RNN(3, 4, nonlinearity="sigmoid")
    with pytest.raises(lf.ConfigError, match="dropout must be a probability"):
        lf.GRU(3, 4, dropout=1.5)
    with pytest.raises(lf.ConfigError, match="hidden_size must be a positive int"):
        lf.LSTM(3, 0)
    with pytest.warns(UserWarning, match="num_layers=1"):
        lf.LSTM(3, 4, dropout=0.2)


def test_bad_inputs_name_the_layer_and_the_shapes():
    lstm = lf.LSTM(3, 4, num_layers=2)
    with pytest.raises(
        lf.ShapeError, match=r"LSTM.*\(batch, T, features\) with 3 features, got shape \(5, 3\).*x\[None\]"
    ):
        lstm(np.zeros((5, 3)))
    with pytest.raises(lf.ShapeError, match=r"with 3 features, got shape \(2, 5, 4\)"):
        lstm(np.zeros((2, 5, 4)))
    with pytest.raises(lf.ShapeError, match=r"\[x, h0, c0\] \(both initial states\), got 2 inputs"):
        lstm([np.zeros((2, 5, 3)), np.zeros((2, 2, 4))])
    with pytest.raises(
        lf.ShapeError, match=r"h0 must have shape \(batch, num_layers·D, H\) = \(2, 2, 4\), got \(2, 4\)"
    ):
        lstm([np.zeros((2, 5, 3)), np.zeros((2, 4)), np.zeros((2, 2, 4))])
    gru = lf.GRU(3, 4, batch_first=False)
    with pytest.raises(lf.ShapeError, match=r"h0 must have shape \(num_layers·D, batch, H\) = \(1, 2, 4\)"):
        gru([np.zeros((5, 2, 3)), np.zeros((2, 1, 4))])
    out = gru(np.zeros((5, 2, 3)))
    with pytest.raises(lf.ShapeError, match=r"δ has shape \(2, 5, 4\), expected the output's \(5, 2, 4\)"):
        gru.backward(np.zeros((2, 5, 4)))
    assert out.shape == (5, 2, 4)


def test_a_graph_with_initial_states_trains_saves_and_loads(tmp_path):
    """[x, h0, c0] as model inputs (batch first, as every graph value): fit, predict, save, load."""
    lf.seed(0)
    x_in, h_in, c_in = lf.Input((4, 2)), lf.Input((1, 3)), lf.Input((1, 3))
    seq = lf.LSTM(2, 3)([x_in, h_in, c_in])
    y = lf.Linear(12, 1)(lf.Flatten()(seq))
    model = lf.Model([x_in, h_in, c_in], y)
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal((16, 4, 2)), rng.standard_normal((16, 1, 3)), rng.standard_normal((16, 1, 3))]
    target = xs[0].sum(axis=(1, 2))[:, None] + xs[1][:, 0, :1]
    history = model.fit(
        xs,
        target,
        epochs=30,
        batch_size=8,
        loss=lf.MSELoss(),
        optimizer=lf.Adam(model.parameters(), lr=0.02),
        verbose=0,
    )
    assert history.history["loss"][-1] < 0.5 * history.history["loss"][0]
    assert "1.weight_ih_l0" not in model.state_dict() and "3.weight_ih_l0" in model.state_dict()
    path = tmp_path / "lstm.lf"
    lf.save(model, path)
    np.testing.assert_array_equal(lf.load(path).predict(xs), model.predict(xs))


def test_a_config_builds_a_recurrent_model_and_infers_input_size():
    from learnflux.config import build_model, parse_config

    text = "[model]\ninput_shape = [6, 3]\n" + "".join(
        f"[[model.layers]]\n{body}\n"
        for body in (
            'type = "LSTM"\nhidden_size = 8\nnum_layers = 2\nbidirectional = true',
            'type = "GRU"\nhidden_size = 4',
            'type = "RNN"\nhidden_size = 5\nnonlinearity = "relu"',
            'type = "Flatten"',
            'type = "Linear"\nout_features = 2',
        )
    )
    model = build_model(parse_config(text))
    assert [layer.input_size for layer in model.layers[1:4]] == [3, 16, 4]
    assert model.layers[3].nonlinearity == "relu"
    assert lf.summary(model).rows[-1].output_shape == (2,)
    with pytest.raises(
        lf.ConfigError, match=r"input_size.*is 4 but the input arriving here has shape \[6, 3\]"
    ):
        build_model(parse_config(text.replace("hidden_size = 8", "hidden_size = 8\ninput_size = 4")))


def test_dropout_between_layers():
    layer = lf.GRU(3, 4, num_layers=3, dropout=0.5, rng=0).astype(np.float64)
    plain = lf.GRU(3, 4, num_layers=3).astype(np.float64)
    plain.load_state_dict(layer.state_dict())
    x = np.random.default_rng(2).standard_normal((4, 5, 3))
    trained = layer(x)
    assert [m is not None for m in layer._cache.masks] == [True, True, False]  # not after the last
    assert not np.allclose(trained, plain(x))
    layer.eval()
    plain.eval()
    np.testing.assert_array_equal(layer(x), plain(x))  # inference: no dropout


# ---------------------------------------------------------------------------- the trace
def _rnn_model():
    lf.seed(3)
    return lf.Sequential(lf.Input((4, 2)), lf.RNN(2, 3), lf.Flatten(), lf.Linear(12, 1)).astype(np.float64)


def test_the_trace_shows_the_learning_flow_through_time(tmp_path):
    model = _rnn_model()
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((2, 4, 2)), rng.standard_normal((2, 1))
    assert model.layers[1].flow_through_time() is None  # nothing kept outside a recording
    step = lf.Recorder(model, lf.SquaredError()).step(x, y)
    assert model.layers[1].record_time_steps is False  # the recorder restores the switch
    time = step.through_time[2]
    assert sorted(time) == ["dh_l0", "h_l0"]
    h, dh = time["h_l0"], time["dh_l0"]
    d_out = step.delta(3)  # δ^3 = ∂Loss/∂o^2, the δ of the RNN's output sequence
    np.testing.assert_array_equal(h, step.output(2))
    # backpropagation through time: δh_T is the output's δ at T; going back,
    # δh_t = δout_t + (δh_(t+1) ⊙ (1 − h_(t+1)²))·W_hh
    w_hh = step.weights_before["weight_hh_l02"]
    np.testing.assert_allclose(dh[:, -1], d_out[:, -1], rtol=1e-14)
    for t in range(3):
        through = (dh[:, t + 1] * (1 - h[:, t + 1] ** 2)) @ w_hh
        np.testing.assert_allclose(dh[:, t], d_out[:, t] + through, rtol=1e-12, atol=1e-15)
    assert [(k, n, t) for k, n, t, _ in step.time_steps()] == [(2, "dh_l0", t) for t in (4, 3, 2, 1)]
    # the seed's table layout (a small model) lists them with the other δ
    trace = lf.trace.record(_rnn_model(), lf.SquaredError(), None, x, y, batch_size=2, steps=1)
    text = trace.to_text()
    assert "Forward pass before training (inference phase):\n\n  sample │" in text  # the table layout
    assert re.search(r"L2 δh_l0\[t=1\] +∂Loss/∂h_t \(from o_t and from step t \+ 1\) += sample 1", text)


def test_every_output_of_a_trace_carries_the_time_steps(tmp_path):
    model = lf.Sequential(lf.Input((3, 2)), lf.LSTM(2, 3, bidirectional=True), lf.Flatten(), lf.Linear(18, 1))
    model.astype(np.float64)
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((2, 3, 2)), rng.standard_normal((2, 1))
    trace = lf.trace.record(
        model, lf.SquaredError(), lf.SGD(model.parameters(), lr=0.1), x, y, batch_size=2, steps=2
    )
    step = trace.steps[1]
    names = {
        "h_l0",
        "c_l0",
        "dh_l0",
        "dc_l0",
        "h_l0_reverse",
        "c_l0_reverse",
        "dh_l0_reverse",
        "dc_l0_reverse",
    }
    assert set(step.through_time[2]) == names
    order = [(n, t) for _, n, t, _ in step.time_steps()]
    assert order[:4] == [("dh_l0", 3), ("dc_l0", 3), ("dh_l0", 2), ("dc_l0", 2)]
    assert order[6:8] == [("dh_l0_reverse", 1), ("dc_l0_reverse", 1)]  # the reverse direction goes forward
    text = trace.to_text()
    assert "through time: δh_t = ∂Loss/∂h_t" in text  # the long layout: a section of its own
    assert "Through time: δh_t = ∂Loss/∂h_t" in trace.to_markdown()
    for quantity in ("L2 δh_l0[t=3]", "L2 δc_l0[t=1]", "L2 δh_l0_reverse[t=3]"):
        assert quantity in text and quantity in trace.to_markdown()
    doc = json.loads(trace.to_json())
    np.testing.assert_array_equal(
        doc["steps"][1]["through_time"]["L2"]["dc_l0"], step.through_time[2]["dc_l0"]
    )
    trace.to_npz(tmp_path / "trace.npz")
    with np.load(tmp_path / "trace.npz") as archive:
        np.testing.assert_array_equal(
            archive["step2/time/L2/dh_l0_reverse"], step.through_time[2]["dh_l0_reverse"]
        )
    data = lf.flow.page_data(trace)
    assert set(data["steps"][1]["time"]["2"]) == names
    ids = data["steps"][1]["time"]["2"]
    assert data["tensors"][ids["dh_l0"]]["shape"] == [2, 3, 3]
    # a model without time steps keeps its JSON as it was
    plain = lf.Sequential(lf.Input(2), lf.Linear(2, 1)).astype(np.float64)
    flat = lf.trace.record(plain, lf.SquaredError(), None, x[:, 0], y, batch_size=2, steps=1)
    assert "through_time" not in json.loads(flat.to_json())["steps"][0]


def test_the_page_shows_the_time_steps_in_a_browser(tmp_path):
    from .test_flow_browser import _browser_or_skip, console_errors, open_page, shown

    model = _rnn_model()
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((2, 4, 2)), rng.standard_normal((2, 1))
    trace = lf.trace.record(
        model, lf.SquaredError(), lf.SGD(model.parameters(), lr=0.1), x, y, batch_size=2, steps=1
    )
    page = tmp_path / "rnn.html"
    lf.flow.write_page(trace, page)
    driver, _ = _browser_or_skip()
    try:
        open_page(driver, page)
        assert console_errors(driver) == []
        blocks = {b["name"]: b for b in shown(driver) if b["panel"] == "2"}
        assert {"h_l0[t]", "δh_l0[t]"} <= set(blocks)
        dh = trace.steps[0].through_time[2]["dh_l0"][0]  # sample 1: (T, H), one row per time step
        assert blocks["δh_l0[t]"]["shape"] == "4,3"
        assert float(blocks["δh_l0[t]"]["stat"]["max"]) == dh.max()
        assert float(blocks["δh_l0[t]"]["stat"]["min"]) == dh.min()
    finally:
        driver.quit()
