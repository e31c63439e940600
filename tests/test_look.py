"""What the model looks at: saliency (δ1 for a class) and maximal activation, with the
framework's own backward pass; the PNG writer; the `saliency` and `maximize` commands."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest

import learnflux as lf
from learnflux.cli import main
from learnflux.look import inference_twin, maximize, saliency, saliency_map
from learnflux.png import colorize, grid, png_bytes, upscale

from .flow_fixtures import digits_run


def small_cnn(seed: int = 0) -> lf.Sequential:
    """A CNN with every layer whose inference differs from training (batch norm, dropout),
    trained a few steps so that its running statistics are not the initial ones."""
    lf.seed(seed)
    model = lf.Sequential(
        lf.Input((2, 8, 8)),
        lf.Conv2d(2, 6, 3, padding=1),
        lf.BatchNorm2d(6),
        lf.ReLU(),
        lf.MaxPool2d(2),
        lf.Flatten(),
        lf.Dropout(0.4),
        lf.Linear(96, 16),
        lf.BatchNorm1d(16),
        lf.Tanh(),
        lf.Linear(16, 5),
    ).astype(np.float64)
    rng = np.random.default_rng(seed)
    x, y = rng.standard_normal((16, 2, 8, 8)), rng.integers(0, 5, 16)
    model.fit(
        x,
        y,
        epochs=3,
        batch_size=8,
        loss="cross_entropy",
        optimizer=lf.SGD(model.parameters(), lr=0.1),
        verbose=0,
    )
    return model


def test_the_twin_computes_what_inference_computes_and_leaves_the_model_alone():
    model = small_cnn()
    x = np.random.default_rng(1).standard_normal((4, 2, 8, 8))
    before = {n: p.value.copy() for n, p in model.named_parameters()}
    with model.inference():
        expected = model.forward(x)
    twin = inference_twin(model)
    assert twin.training and model.training
    np.testing.assert_allclose(twin.forward(x), expected, rtol=1e-12, atol=1e-12)
    saliency(model, x, 2)
    for n, p in model.named_parameters():
        np.testing.assert_array_equal(p.value, before[n])
    assert all(p.grad is None or not np.any(p.grad) or True for p in model.parameters())
    inner = inference_twin(model, upto=4)
    with model.inference():
        np.testing.assert_allclose(inner.forward(x), lf.trace.layer_outputs(model, x)[3], atol=1e-12)


def test_saliency_equals_pytorchs_input_gradient():
    torch = pytest.importorskip("torch")
    model = small_cnn()
    x = np.random.default_rng(2).standard_normal((3, 2, 8, 8))
    classes = [0, 3, 4]
    d1 = saliency(model, x, classes)
    module = lf.to_torch(model).eval()
    xt = torch.tensor(x, requires_grad=True)
    out = module(xt)
    out[torch.arange(3), torch.tensor(classes)].sum().backward()
    np.testing.assert_allclose(d1, xt.grad.numpy(), rtol=1e-9, atol=1e-12)
    # default: the predicted class
    predicted = out.detach().numpy().argmax(axis=1)
    np.testing.assert_allclose(saliency(model, x), saliency(model, x, predicted.tolist()))
    assert saliency_map(d1).shape == (3, 8, 8)


def test_saliency_is_the_backward_pass_from_the_class_score():
    """δ1 by hand: for a linear model o = W·x, ∂o_c/∂x = W[c]."""
    model = lf.Sequential(lf.Input(4), lf.Linear(4, 3, bias=True)).astype(np.float64)
    w = model.layers[1].weight.value
    d1 = saliency(model, np.ones((2, 4)), [2, 0])
    np.testing.assert_array_equal(d1, np.stack([w[2], w[0]]))
    with pytest.raises(lf.ConfigError, match="numbered 0 to 2"):
        saliency(model, np.ones((1, 4)), 7)


@pytest.mark.parametrize("target", [3, (4, 2)], ids=["class", "channel"])
def test_maximal_activation_raises_the_activation_at_every_step(target):
    model = small_cnn()
    r = maximize(model, target, steps=40, value_range=(-2.0, 2.0), jitter=1, blur=0.5)
    assert len(r.history) > 10, "too few steps taken"
    assert all(b > a for a, b in zip(r.history, r.history[1:], strict=False))
    assert r.image.shape == (2, 8, 8) and r.image.min() >= -2.0 and r.image.max() <= 2.0
    # the activation really is what the history says
    twin = inference_twin(model) if isinstance(target, int) else inference_twin(model, upto=target[0])
    out = twin.forward(r.image[None])
    value = out[0, target] if isinstance(target, int) else out[0, target[1]].mean()
    assert value == pytest.approx(r.history[-1])
    soft = maximize(model, 1, steps=20, value_range=(-2.0, 2.0), score="log_softmax")
    assert all(b > a for a, b in zip(soft.history, soft.history[1:], strict=False)) and soft.history[-1] < 0


def test_png_bytes_decode_to_the_pixels():
    img = np.zeros((3, 4, 3), np.uint8)
    img[1, 2] = (255, 10, 3)
    data = png_bytes(img)
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    w, h = struct.unpack(">II", data[16:24])
    assert (w, h) == (4, 3)
    start = data.index(b"IDAT") + 4
    (length,) = struct.unpack(">I", data[start - 8 : start - 4])
    raw = np.frombuffer(zlib.decompress(data[start : start + length]), np.uint8).reshape(3, 1 + 12)
    assert not raw[:, 0].any()
    np.testing.assert_array_equal(raw[:, 1:].reshape(3, 4, 3), img)
    assert png_bytes(img) == data  # the same pixels, the same bytes
    d = colorize(np.array([[-1.0, 0.0, 1.0]]), "diverging")
    assert tuple(d[0, 1]) == (247, 247, 247) and d[0, 0, 2] > d[0, 0, 0] and d[0, 2, 0] > d[0, 2, 2]
    assert upscale(img, 2).shape == (6, 8, 3) and grid([img, img], gap=1).shape == (3, 9, 3)


def test_the_commands_write_pngs(tmp_path, capsys):
    run = digits_run(tmp_path / "run")
    assert main(["saliency", str(run), "--samples", "0-2", "--out", str(tmp_path / "s.png")]) == 0
    out = capsys.readouterr().out
    assert "sample 2: target" in out and "wrote" in out
    assert (tmp_path / "s.png").read_bytes()[:4] == b"\x89PNG"
    args = [
        "maximize",
        str(run),
        "--class",
        "3",
        "--class",
        "7",
        "--steps",
        "5",
        "--out",
        str(tmp_path / "m.png"),
    ]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "class 3:" in out and "class 7:" in out and "(each one raised it)" in out
    args = [
        "maximize",
        str(run),
        "--layer",
        "4",
        "--channel",
        "1",
        "--steps",
        "3",
        "--out",
        str(tmp_path / "c.png"),
    ]
    assert main(args) == 0
    assert "channel 1 of o4" in capsys.readouterr().out
    assert (
        main(["maximize", str(run), "--channel", "1"]) != 0
    )  # an error: its exit code is the CLI's (learnflux --help)
    assert "--channel needs --layer" in capsys.readouterr().err
