"""PyTorch interop: lf.from_torch / lf.to_torch, and the issue's "done means": a LeNet-style CNN
and an MLP converted from PyTorch train one step in both frameworks (float64) with the same loss,
input δ, parameter gradients and updated weights."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import learnflux as lf

try:  # PyTorch is needed by every test here but the two about running without it
    import torch
except ImportError:
    torch = None
nn = None if torch is None else torch.nn
needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch is not installed")


def test_import_learnflux_does_not_import_torch():
    code = (
        "import sys, learnflux as lf\n"
        "assert callable(lf.from_torch) and callable(lf.to_torch)\n"
        "print('torch' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert result.stdout.strip() == "False"


def test_without_torch_the_interop_says_what_is_missing(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch now raises ImportError
    with pytest.raises(lf.ConfigError, match="needs torch, which is not installed"):
        lf.to_torch(lf.Sequential(lf.Linear(2, 2)))
    with pytest.raises(lf.ConfigError, match="needs torch, which is not installed"):
        lf.from_torch(object())


# ---------------------------------------------------------------------------- models
def lenet(p_dropout: float = 0.0) -> nn.Module:
    """LeNet-style: conv + batch norm + ReLU + max pool, strided conv + avg pool, then an MLP head
    with dropout (nested Sequentials, as people write them). Input (N, 1, 20, 20)."""
    return nn.Sequential(
        nn.Sequential(
            nn.Conv2d(1, 6, 5, padding=2),
            nn.BatchNorm2d(6),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 3, stride=2),
            nn.ReLU(),
            nn.AvgPool2d(2),
        ),
        nn.Flatten(),
        nn.Sequential(
            nn.Linear(16 * 2 * 2, 32),
            nn.ReLU(),
            nn.Dropout(p_dropout),
            nn.Linear(32, 10),
        ),
    )


def mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 16), nn.Tanh(), nn.Linear(16, 3))


def _step_both(module, x, y, lf_loss, t_loss, lr=0.1, momentum=0.9):
    """One training step (forward, loss, backward, SGD update) in torch and in learnflux, from
    the same weights. Returns what each side computed."""
    model = lf.from_torch(module)
    assert model.dtype == np.float64 and model.training
    # torch
    tx = torch.from_numpy(x.copy()).requires_grad_(True)
    t_opt = torch.optim.SGD(module.parameters(), lr=lr, momentum=momentum)
    t_opt.zero_grad()
    t_out = module(tx)
    t_value = t_loss(t_out, torch.from_numpy(y))
    t_value.backward()
    t_grads = {k: p.grad.numpy().copy() for k, p in module.named_parameters()}
    t_opt.step()
    # learnflux
    opt = lf.SGD(model.parameters(), lr=lr, momentum=momentum)
    out = model.forward(x)
    value = lf_loss.forward(out, y)
    d_in = model.backward(lf_loss.backward())
    grads = {k: p.grad.copy() for k, p in model.named_parameters()}
    opt.step()
    return dict(
        model=model,
        out=out,
        value=value,
        d_in=d_in,
        grads=grads,
        t_out=t_out.detach().numpy(),
        t_value=t_value.item(),
        t_d_in=tx.grad.numpy(),
        t_grads=t_grads,
    )


def _assert_same_step(r, module, rtol=1e-10, atol=1e-12):
    model = r["model"]
    np.testing.assert_allclose(r["out"], r["t_out"], rtol=rtol, atol=atol, err_msg="output")
    assert r["value"] == pytest.approx(r["t_value"], rel=rtol)
    np.testing.assert_allclose(r["d_in"], r["t_d_in"], rtol=rtol, atol=atol, err_msg="input δ")
    assert set(r["grads"]) == set(r["t_grads"])
    for name, g in r["grads"].items():
        np.testing.assert_allclose(g, r["t_grads"][name], rtol=rtol, atol=atol, err_msg=f"gradient of {name}")
    # after the SGD step: same weights and the same batch-norm running statistics
    t_state = module.state_dict()
    for name, value in model.state_dict().items():
        np.testing.assert_allclose(
            np.asarray(value, dtype=np.float64),
            t_state[name].numpy().astype(np.float64),
            rtol=rtol,
            atol=atol,
            err_msg=f"{name} after the step",
        )


@needs_torch
def test_lenet_one_training_step_matches_torch():
    torch.manual_seed(0)
    module = lenet(p_dropout=0.0).double().train()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 1, 20, 20))
    y = rng.integers(0, 10, 4)
    r = _step_both(module, x, y, lf.CrossEntropyLoss(), nn.CrossEntropyLoss())
    _assert_same_step(r, module)
    # every parameter was compared (conv, batch norm, linear; nested keys such as "0.1.weight")
    assert set(r["grads"]) == {
        "0.0.weight",
        "0.0.bias",
        "0.1.weight",
        "0.1.bias",
        "0.4.weight",
        "0.4.bias",
        "2.0.weight",
        "2.0.bias",
        "2.3.weight",
        "2.3.bias",
    }
    # and the inference phase (running statistics) agrees after the step
    model = r["model"]
    module.eval()
    x2 = rng.standard_normal((3, 1, 20, 20))
    with torch.no_grad():
        expected = module(torch.from_numpy(x2)).numpy()
    np.testing.assert_allclose(model.predict(x2), expected, rtol=1e-10, atol=1e-12)


@needs_torch
def test_lenet_with_active_dropout_and_the_same_mask():
    """With p > 0 the two frameworks draw different random masks. learnflux draws its own; the
    *same* mask (read from learnflux's Dropout after its forward pass) is then fed to the torch
    model through a forward hook that replaces nn.Dropout's output by ``input ⊙ mask``. So this
    compares learnflux's whole step with dropout active against torch's maths with an identical
    mask; it does not (cannot) compare the random draws themselves."""
    torch.manual_seed(1)
    p = 0.5
    module = lenet(p_dropout=p).double().train()
    model = lf.from_torch(module)
    dropout = model.layers[2].layers[2]
    assert isinstance(dropout, lf.Dropout) and dropout.p == p
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, 1, 20, 20))
    y = rng.integers(0, 10, 4)
    loss = lf.CrossEntropyLoss()
    out = model.forward(x)
    value = loss.forward(out, y)
    d_in = model.backward(loss.backward())
    mask = np.asarray(dropout._mask, dtype=np.float64)
    assert mask.shape == (4, 32)
    assert set(np.unique(mask)) <= {0.0, 1.0 / (1 - p)}
    assert 0 < np.count_nonzero(mask) < mask.size  # really active

    t_mask = torch.from_numpy(mask)
    module[2][2].register_forward_hook(lambda mod, inp, outp: inp[0] * t_mask)
    tx = torch.from_numpy(x.copy()).requires_grad_(True)
    t_out = module(tx)
    t_value = nn.CrossEntropyLoss()(t_out, torch.from_numpy(y))
    t_value.backward()
    np.testing.assert_allclose(out, t_out.detach().numpy(), rtol=1e-10, atol=1e-12)
    assert value == pytest.approx(t_value.item(), rel=1e-10)
    np.testing.assert_allclose(d_in, tx.grad.numpy(), rtol=1e-10, atol=1e-12)
    for name, prm in module.named_parameters():
        np.testing.assert_allclose(
            dict(model.named_parameters())[name].grad, prm.grad.numpy(), rtol=1e-10, atol=1e-12, err_msg=name
        )


@needs_torch
@pytest.mark.parametrize("loss_name", ["cross_entropy", "mse"])
def test_mlp_one_training_step_matches_torch(loss_name):
    torch.manual_seed(2)
    module = mlp().double()
    rng = np.random.default_rng(2)
    x = rng.standard_normal((8, 10))
    if loss_name == "cross_entropy":
        y = rng.integers(0, 3, 8)
        losses = (lf.CrossEntropyLoss(label_smoothing=0.1), nn.CrossEntropyLoss(label_smoothing=0.1))
    else:
        y = rng.standard_normal((8, 3))
        losses = (lf.MSELoss(), nn.MSELoss())
    r = _step_both(module, x, y, *losses)
    _assert_same_step(r, module)
    assert set(r["grads"]) == {f"{i}.{w}" for i in (0, 2, 4) for w in ("weight", "bias")}


# ---------------------------------------------------------------------------- conversion
@needs_torch
def test_names_dtype_and_values_line_up():
    module = lenet().double()
    model = lf.from_torch(module)
    assert isinstance(model, lf.Sequential)
    assert isinstance(model.layers[0], lf.Sequential) and isinstance(model.layers[2], lf.Sequential)
    assert list(dict(model.named_parameters())) == list(dict(module.named_parameters()))
    assert set(model.state_dict()) == set(module.state_dict())
    for name, value in module.state_dict().items():
        np.testing.assert_array_equal(model.state_dict()[name], value.numpy())
    assert model.dtype == np.float64
    assert all(p.dtype == np.float64 for p in model.parameters())
    assert lf.from_torch(lenet().float()).dtype == np.float32
    assert lf.from_torch(nn.Sequential(nn.ReLU())).dtype == np.float32


@needs_torch
def test_weights_are_copied_not_shared():
    module = mlp().double()
    before = module[0].weight.detach().numpy().copy()
    model = lf.from_torch(module)
    model.layers[0].weight.value -= 1.0  # in place, as optimizers update
    np.testing.assert_array_equal(module[0].weight.detach().numpy(), before)
    back = lf.to_torch(model)
    with torch.no_grad():
        back[0].weight += 1.0
    np.testing.assert_array_equal(model.layers[0].weight.value, before - 1.0)


@needs_torch
def test_phase_follows_the_module():
    module = lenet().eval()
    model = lf.from_torch(module)
    assert not model.training and not model.layers[0].layers[1].training
    assert not lf.to_torch(model).training
    assert lf.to_torch(model.train()).training


@needs_torch
def test_load_state_dict_accepts_torch_tensors_and_numpy_arrays():
    module = mlp().double()
    model = lf.from_torch(mlp().double())  # other weights
    model.load_state_dict(module.state_dict())
    x = np.random.default_rng(3).standard_normal((2, 10))
    expected = module(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(model.predict(x), expected, rtol=1e-12)
    model2 = lf.from_torch(mlp().double())
    model2.load_state_dict({k: v.numpy() for k, v in module.state_dict().items()})
    np.testing.assert_allclose(model2.predict(x), expected, rtol=1e-12)
    with pytest.raises(lf.ConfigError, match="missing keys"):
        model.load_state_dict({"0.weight": module.state_dict()["0.weight"]})


@needs_torch
def test_single_module_converts_to_a_layer():
    lin = nn.Linear(3, 2).double()
    layer = lf.from_torch(lin)
    assert isinstance(layer, lf.Linear) and set(layer.state_dict()) == {"weight", "bias"}
    back = lf.to_torch(layer)
    assert isinstance(back, nn.Linear)
    np.testing.assert_array_equal(back.weight.detach().numpy(), lin.weight.detach().numpy())


def _outputs(module, model, x, training):
    module.train(training)
    model.set_phase(training)
    with torch.no_grad():
        t = module(torch.from_numpy(x.copy())).numpy()
    return model.forward(x), t


@needs_torch
def test_round_trip_to_torch_from_torch_gives_the_same_outputs():
    torch.manual_seed(4)
    module = lenet().double()
    back = lf.to_torch(lf.from_torch(module))
    assert list(back.state_dict()) == list(module.state_dict())
    x = np.random.default_rng(4).standard_normal((3, 1, 20, 20))
    module.eval()
    back.eval()
    with torch.no_grad():
        np.testing.assert_array_equal(back(torch.from_numpy(x)).numpy(), module(torch.from_numpy(x)).numpy())


def _wide_model():
    """Every convertible learnflux layer (float64)."""
    return lf.Sequential(
        lf.Input((2, 9, 9)),
        lf.Conv2d(2, 4, 3, padding="same", bias=False),
        lf.BatchNorm2d(4, momentum=None),
        lf.GELU(),
        lf.MaxPool2d(2, ceil_mode=True),  # 9 → 5
        lf.Conv2d(4, 4, 3, padding=1, dilation=1, groups=2),
        lf.AvgPool2d(3, stride=1, padding=1, count_include_pad=False),
        lf.Sequential(lf.SiLU(), lf.AdaptiveAvgPool2d(1), lf.Flatten()),
        lf.Reshape((2, 2)),
        lf.Flatten(),
        lf.Linear(4, 6),
        lf.BatchNorm1d(6),
        lf.LayerNorm(6),
        lf.LeakyReLU(0.2),
        lf.Dropout(0.3),
        lf.Linear(6, 5),
        lf.Tanh(),
        lf.Sigmoid(),
        lf.LogSoftmax(dim=1),
        lf.Softmax(dim=-1),
    ).astype(np.float64)


@needs_torch
def test_round_trip_from_learnflux_with_every_layer():
    model = _wide_model()
    module = lf.to_torch(model)
    assert module[0].__class__ is nn.Identity
    assert set(module.state_dict()) == set(model.state_dict())
    x = np.random.default_rng(5).standard_normal((4, 2, 9, 9))
    out, t = _outputs(module, model, x, training=False)
    np.testing.assert_allclose(out, t, rtol=1e-10, atol=1e-12)
    again = lf.from_torch(module)
    again.set_phase(False)
    np.testing.assert_allclose(again.forward(x), out, rtol=1e-12, atol=1e-14)


@needs_torch
def test_embedding_and_global_pool_convert():
    model = lf.Sequential(lf.Embedding(10, 4), lf.Flatten(), lf.Linear(12, 3)).astype("float64")
    module = lf.to_torch(model)
    idx = np.random.default_rng(6).integers(0, 10, (5, 3))
    with torch.no_grad():
        np.testing.assert_allclose(model.predict(idx), module(torch.from_numpy(idx)).numpy(), rtol=1e-12)
    assert isinstance(lf.from_torch(module).layers[0], lf.Embedding)
    gap = lf.Sequential(lf.Conv2d(1, 2, 3), lf.GlobalAvgPool2d())
    t_gap = lf.to_torch(gap)
    x = np.random.default_rng(7).standard_normal((2, 1, 5, 5)).astype(np.float32)
    with torch.no_grad():
        np.testing.assert_allclose(gap.predict(x), t_gap(torch.from_numpy(x)).numpy(), rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------- errors
@needs_torch
@pytest.mark.parametrize(
    "module,match",
    [
        (
            lambda: nn.Sequential(nn.Linear(2, 2), nn.Sequential(nn.ReLU(), nn.Conv3d(1, 1, 1))),
            r"unsupported module Conv3d at '1\.1'",
        ),
        (lambda: nn.Sequential(nn.Softmax()), r"Softmax at '0' is not supported with dim=None"),
        (lambda: nn.Sequential(nn.Conv2d(1, 1, 3, padding_mode="reflect")), r"padding_mode='reflect'"),
        (lambda: nn.Sequential(nn.MaxPool2d(2, dilation=2)), r"MaxPool2d at '0'.*dilation"),
        (lambda: nn.Sequential(nn.Embedding(5, 2, padding_idx=0)), r"Embedding at '0'.*padding_idx=0"),
        (lambda: nn.Sequential(nn.Upsample(scale_factor=2, mode="bicubic")), r"Upsample at '0'.*'bicubic'"),
        (lambda: nn.Sequential(), r"nn.Sequential at the top level is empty"),
        (lambda: nn.LSTM(2, 2, proj_size=1), r"LSTM at the top level is not supported with proj_size=1"),
    ],
    ids=[
        "nested-path",
        "softmax-dim",
        "padding-mode",
        "dilated-pool",
        "padding-idx",
        "upsample-mode",
        "empty",
        "lstm-proj-size",
    ],
)
def test_from_torch_errors_name_the_module_and_path(module, match):
    with pytest.raises(lf.ConfigError, match=match):
        lf.from_torch(module())


@needs_torch
def test_from_torch_refuses_other_dtypes_and_named_children():
    from collections import OrderedDict

    with pytest.raises(lf.DtypeError, match="float16"):
        lf.from_torch(nn.Sequential(nn.Linear(2, 2)).half())
    with pytest.raises(lf.ConfigError, match="names its child 0 'fc'"):
        lf.from_torch(nn.Sequential(OrderedDict(fc=nn.Linear(2, 2))))
    with pytest.raises(lf.ConfigError, match="expects a torch.nn.Module"):
        lf.from_torch([nn.Linear(2, 2)])

    class Twice(nn.Linear):
        def forward(self, x):
            return 2 * super().forward(x)

    with pytest.raises(lf.ConfigError, match="unsupported module Twice"):
        lf.from_torch(Twice(2, 2))


@needs_torch
def test_to_torch_errors():
    x = lf.Input(3)
    graph = lf.Model(x, lf.Add()([x, lf.Linear(3, 3)(x)]))
    with pytest.raises(lf.ConfigError, match="graph model"):
        lf.to_torch(graph)
    with pytest.raises(lf.ConfigError, match=r"Concat at the top level has no PyTorch"):
        lf.to_torch(lf.Concat())
    with pytest.raises(lf.DtypeError, match="exact arithmetic"):
        lf.to_torch(lf.Sequential(lf.Linear(2, 2)).astype("exact"))
