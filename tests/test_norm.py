"""Batch norm and layer norm beyond the shared harness: several training steps against PyTorch
(running statistics, then outputs in eval mode), the phases, and clear errors."""

from __future__ import annotations

import numpy as np
import pytest

import learnflux as lf


def _copy_params_to_torch(layer, module, torch):
    state = module.state_dict()
    for name, value in layer.state_dict().items():
        state[name] = torch.from_numpy(np.array(value)).to(state[name].dtype)
    module.load_state_dict(state)


@pytest.mark.parametrize(
    "make,make_torch,shape",
    [
        (lambda: lf.BatchNorm1d(4), lambda nn: nn.BatchNorm1d(4), (8, 4)),
        (lambda: lf.BatchNorm1d(3, momentum=0.25), lambda nn: nn.BatchNorm1d(3, momentum=0.25), (5, 3, 6)),
        (lambda: lf.BatchNorm1d(3, momentum=None), lambda nn: nn.BatchNorm1d(3, momentum=None), (6, 3)),
        (lambda: lf.BatchNorm2d(3), lambda nn: nn.BatchNorm2d(3), (4, 3, 5, 5)),
        (
            lambda: lf.BatchNorm2d(2, affine=False, eps=1e-3),
            lambda nn: nn.BatchNorm2d(2, affine=False, eps=1e-3),
            (3, 2, 4, 4),
        ),
    ],
    ids=["bn1d", "bn1d-ncl-momentum", "bn1d-cumulative", "bn2d", "bn2d-noaffine"],
)
@pytest.mark.parametrize(
    "dtype,rtol,atol", [(np.float64, 1e-10, 1e-12), (np.float32, 1e-4, 1e-5)], ids=["float64", "float32"]
)
def test_batchnorm_training_steps_match_torch(make, make_torch, shape, dtype, rtol, atol):
    """Five SGD steps on random batches (shifted and scaled, so the statistics move): the running
    statistics, the parameters and then the eval-mode outputs agree with PyTorch."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    layer = make().astype(dtype)
    module = make_torch(torch.nn)
    module = module.double() if dtype == np.float64 else module.float()
    _copy_params_to_torch(layer, module, torch)
    opt = lf.SGD(layer.parameters(), lr=0.1) if layer.parameters() else None
    t_opt = torch.optim.SGD(module.parameters(), lr=0.1) if layer.parameters() else None
    for step in range(5):
        x = (rng.standard_normal(shape) * (1 + step) + 2.0 - step).astype(dtype)
        up = rng.standard_normal(shape).astype(dtype)
        out = layer.forward(x)
        d_in = layer.backward(up)
        tx = torch.from_numpy(x.copy()).requires_grad_(True)
        t_out = module(tx)
        t_out.backward(torch.from_numpy(up))
        np.testing.assert_allclose(out, t_out.detach().numpy(), rtol=rtol, atol=atol)
        np.testing.assert_allclose(d_in, tx.grad.numpy(), rtol=rtol, atol=atol)
        if opt is not None:
            opt.step()
            t_opt.step()
            t_opt.zero_grad()
    buffers = dict(module.named_buffers())
    np.testing.assert_allclose(layer.running_mean, buffers["running_mean"].numpy(), rtol=rtol, atol=atol)
    np.testing.assert_allclose(layer.running_var, buffers["running_var"].numpy(), rtol=rtol, atol=atol)
    assert int(layer.num_batches_tracked) == int(buffers["num_batches_tracked"]) == 5
    for name, p in dict(module.named_parameters()).items():
        np.testing.assert_allclose(
            dict(layer.named_parameters())[name].value, p.detach().numpy(), rtol=rtol, atol=atol
        )
    layer.eval()
    module.eval()
    x = (rng.standard_normal(shape) * 3 + 1).astype(dtype)
    with torch.no_grad():
        expected = module(torch.from_numpy(x.copy())).numpy()
    np.testing.assert_allclose(layer.forward(x), expected, rtol=rtol, atol=atol)


def test_batchnorm_standardises_per_channel_as_spec_convention_9():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, 3, 5, 5)) * np.array([1.0, 5.0, 0.1]).reshape(1, 3, 1, 1) + 7
    bn = lf.BatchNorm2d(3).astype(np.float64)
    bn.weight.value = np.array([2.0, 1.0, 0.5])
    bn.bias.value = np.array([0.0, -1.0, 3.0])
    out = bn(x)
    mu = x.mean(axis=(0, 2, 3), keepdims=True)
    sigma = np.sqrt(x.var(axis=(0, 2, 3), keepdims=True) + 1e-5)  # biased variance
    expected = bn.bias.value.reshape(1, 3, 1, 1) + bn.weight.value.reshape(1, 3, 1, 1) * ((x - mu) / sigma)
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12)
    # per channel, the normalised output has mean β and standard deviation ≈ γ
    np.testing.assert_allclose(out.mean(axis=(0, 2, 3)), bn.bias.value, atol=1e-12)


def test_batchnorm_inference_uses_running_statistics_and_updates_nothing():
    bn = lf.BatchNorm1d(2).astype(np.float64)
    bn.set_buffer("running_mean", np.array([1.0, -2.0]))
    bn.set_buffer("running_var", np.array([4.0, 0.25]))
    bn.eval()
    x = np.array([[3.0, -2.0], [1.0, -1.0]])
    out = bn(x)
    np.testing.assert_allclose(out, (x - [1.0, -2.0]) / np.sqrt(np.array([4.0, 0.25]) + 1e-5))
    np.testing.assert_array_equal(bn.running_mean, [1.0, -2.0])
    assert int(bn.num_batches_tracked) == 0
    with pytest.raises(lf.PhaseError, match="inference phase"):
        bn.backward(np.ones_like(out))


def test_batchnorm_running_var_is_unbiased():
    bn = lf.BatchNorm1d(1, momentum=1.0).astype(np.float64)
    x = np.array([[1.0], [2.0], [6.0]])
    bn(x)
    np.testing.assert_allclose(bn.running_mean, [3.0])
    np.testing.assert_allclose(bn.running_var, [np.var(x, ddof=1)])


def test_batchnorm_state_dict_names_follow_pytorch():
    bn = lf.BatchNorm2d(3)
    assert list(bn.state_dict()) == ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
    assert list(lf.BatchNorm2d(3, affine=False, track_running_stats=False).state_dict()) == []
    model = lf.Sequential(lf.Linear(2, 3), lf.BatchNorm1d(3))
    assert "1.running_var" in model.state_dict()


def test_batchnorm_float32_stays_float32():
    bn = lf.BatchNorm2d(2)
    x = np.random.default_rng(0).standard_normal((2, 2, 3, 3)).astype(np.float32)
    out = bn(x)
    assert out.dtype == np.float32
    assert bn.running_mean.dtype == bn.running_var.dtype == np.float32
    assert bn.backward(np.ones_like(out)).dtype == np.float32
    bn.eval()
    assert bn(x).dtype == np.float32


def test_batchnorm_errors_are_clear():
    with pytest.raises(lf.ShapeError, match=r"BatchNorm2d.*expected input of shape \(batch, 3"):
        lf.BatchNorm2d(3)(np.zeros((2, 4, 5, 5), dtype=np.float32))
    with pytest.raises(lf.ShapeError, match="BatchNorm1d"):
        lf.BatchNorm1d(3)(np.zeros((2, 3, 4, 4), dtype=np.float32))
    with pytest.raises(lf.ShapeError, match="more than 1 value per channel"):
        lf.BatchNorm1d(3)(np.zeros((1, 3), dtype=np.float32))
    with pytest.raises(lf.ConfigError, match="momentum"):
        lf.BatchNorm1d(3, momentum=2.0)
    with pytest.raises(lf.ExactnessError):
        lf.BatchNorm1d(3).astype("exact")
    with pytest.raises(lf.PhaseError, match="before forward"):
        lf.BatchNorm1d(3).backward(np.zeros((2, 3), dtype=np.float32))


def test_batchnorm_in_a_model_trains_and_round_trips(tmp_path):
    lf.seed(0)
    model = lf.Sequential(lf.Linear(4, 3), lf.BatchNorm1d(3), lf.ReLU(), lf.Linear(3, 1))
    x = np.random.default_rng(0).standard_normal((16, 4)).astype(np.float32)
    for _ in range(3):
        model(x)
        model.backward(np.ones((16, 1), dtype=np.float32) / 16)
    assert int(model.layers[1].num_batches_tracked) == 3
    lf.save(model, tmp_path / "m.lf")
    loaded = lf.load(tmp_path / "m.lf")
    np.testing.assert_array_equal(loaded.state_dict()["1.running_mean"], model.state_dict()["1.running_mean"])
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))


def test_layernorm_matches_the_formula_and_is_phase_independent():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 2, 4)) * 4 + 1
    ln = lf.LayerNorm(4).astype(np.float64)
    out = ln(x)
    expected = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-5)
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12)
    ln.eval()
    np.testing.assert_array_equal(ln(x), out)


def test_layernorm_errors():
    with pytest.raises(lf.ShapeError, match=r"LayerNorm.*\(batch, \.\.\., 4, 5\)"):
        lf.LayerNorm((4, 5))(np.zeros((2, 5, 4), dtype=np.float32))
    with pytest.raises(lf.ConfigError):
        lf.LayerNorm(0)
    assert lf.LayerNorm((4, 5)).output_shape((3, 4, 5)) == (3, 4, 5)
    rebuilt = lf.LayerNorm.from_config(lf.LayerNorm((4, 5), bias=False).get_config())
    assert rebuilt.parameters()[0].shape == (4, 5)
