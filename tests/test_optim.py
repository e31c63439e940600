"""Optimizers: step-by-step parity with torch.optim, parameter groups, state saving, phases,
float32 and exact arithmetic, gradient accumulation."""

from __future__ import annotations

from fractions import Fraction as F

import numpy as np
import pytest

import learnflux as lf
from learnflux.core.param import Param
from learnflux.errors import ConfigError, ExactnessError, PhaseError, ShapeError
from learnflux.optim.transforms import (
    Chain,
    CountSteps,
    Momentum,
    ScaleByAdam,
    ScaleByLearningRate,
    Transform,
    WeightDecay,
)

try:  # PyTorch is the parity oracle: the tests that compare with it skip without it, the rest run
    import torch
except ImportError:
    torch = None
needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch (the parity oracle) is not installed")

SHAPES = [(3, 4), (4,), (2, 3, 2)]
STEPS = 20

OURS = {"SGD": lf.SGD, "Adam": lf.Adam, "AdamW": lf.AdamW, "RMSprop": lf.RMSprop, "Adagrad": lf.Adagrad}

CONFIGS = [
    ("SGD", {"lr": 0.1}),
    ("SGD", {"lr": 0.05, "momentum": 0.9}),
    ("SGD", {"lr": 0.05, "momentum": 0.9, "dampening": 0.3}),
    ("SGD", {"lr": 0.05, "momentum": 0.8, "nesterov": True}),
    ("SGD", {"lr": 0.05, "momentum": 0.9, "weight_decay": 0.01, "nesterov": True}),
    ("SGD", {"lr": 0.1, "weight_decay": 0.1}),
    ("Adam", {}),
    ("Adam", {"lr": 0.01, "betas": (0.8, 0.99), "eps": 1e-6}),
    ("Adam", {"lr": 0.01, "weight_decay": 0.05}),
    ("Adam", {"lr": 0.01, "amsgrad": True}),
    ("Adam", {"lr": 0.01, "amsgrad": True, "weight_decay": 0.1, "betas": (0.3, 0.9)}),
    ("AdamW", {}),
    ("AdamW", {"lr": 0.01, "weight_decay": 0.2}),
    ("AdamW", {"lr": 0.01, "weight_decay": 0.2, "amsgrad": True}),
    ("RMSprop", {}),
    ("RMSprop", {"lr": 0.01, "alpha": 0.9, "eps": 1e-6}),
    ("RMSprop", {"lr": 0.01, "momentum": 0.9}),
    ("RMSprop", {"lr": 0.01, "centered": True}),
    ("RMSprop", {"lr": 0.01, "centered": True, "momentum": 0.7, "weight_decay": 0.05}),
    ("Adagrad", {}),
    ("Adagrad", {"lr": 0.1, "lr_decay": 0.05}),
    ("Adagrad", {"lr": 0.1, "weight_decay": 0.1, "initial_accumulator_value": 0.3}),
    ("Adagrad", {"lr": 0.1, "lr_decay": 0.01, "eps": 1e-6, "weight_decay": 0.02}),
]


def make_data(dtype=np.float64, seed=0, steps=STEPS):
    rng = np.random.default_rng(seed)
    init = [rng.standard_normal(s).astype(dtype) for s in SHAPES]
    grads = [[rng.standard_normal(s).astype(dtype) for s in SHAPES] for _ in range(steps)]
    return init, grads


def make_params(init):
    return [Param(v.copy(), name=f"p{i}") for i, v in enumerate(init)]


def run_ours(params, opt, grads):
    for gs in grads:
        for p, g in zip(params, gs, strict=True):
            p.grad = g.copy()
        opt.step()
    return [p.value for p in params]


def torch_opt(name, groups_or_params, kwargs):
    cls = getattr(torch.optim, name)
    extra = {"foreach": False}
    return cls(groups_or_params, **kwargs, **extra)


def run_torch(tparams, opt, grads):
    for gs in grads:
        for t, g in zip(tparams, gs, strict=True):
            t.grad = torch.from_numpy(g.copy())
        opt.step()
    return [t.detach().numpy() for t in tparams]


def torch_params(init):
    return [torch.tensor(v.copy(), requires_grad=True) for v in init]


def config_id(c):
    name, kw = c
    return name + "-" + "-".join(f"{k}={v}" for k, v in kw.items())


@needs_torch
@pytest.mark.parametrize("config", CONFIGS, ids=[config_id(c) for c in CONFIGS])
def test_parity_with_torch_float64(config):
    name, kwargs = config
    init, grads = make_data()
    params = make_params(init)
    ours = run_ours(params, OURS[name](params, **kwargs), grads)
    tp = torch_params(init)
    theirs = run_torch(tp, torch_opt(name, tp, kwargs), grads)
    for a, b in zip(ours, theirs, strict=True):
        assert a.dtype == np.float64
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    # the parameters really moved
    assert not np.allclose(ours[0], init[0])


@needs_torch
@pytest.mark.parametrize("name", sorted(OURS))
def test_parity_with_torch_param_groups(name):
    base = {"SGD": {"lr": 0.1}, "Adam": {}, "AdamW": {}, "RMSprop": {}, "Adagrad": {}}[name]
    group_opts = {
        "SGD": [{"momentum": 0.9, "nesterov": True}, {"lr": 0.02, "weight_decay": 0.1}],
        "Adam": [{"lr": 0.01, "amsgrad": True}, {"weight_decay": 0.1, "betas": (0.5, 0.9)}],
        "AdamW": [{"lr": 0.01, "weight_decay": 0.0}, {"weight_decay": 0.3}],
        "RMSprop": [{"centered": True, "momentum": 0.5}, {"lr": 0.003, "alpha": 0.9}],
        "Adagrad": [{"lr_decay": 0.1}, {"lr": 0.3, "weight_decay": 0.05}],
    }[name]
    init, grads = make_data(seed=3)
    params = make_params(init)
    groups = [{"params": params[:2], **group_opts[0]}, {"params": params[2:], **group_opts[1]}]
    ours = run_ours(params, OURS[name](groups, **base), grads)
    tp = torch_params(init)
    tgroups = [{"params": tp[:2], **group_opts[0]}, {"params": tp[2:], **group_opts[1]}]
    theirs = run_torch(tp, torch_opt(name, tgroups, base), grads)
    for a, b in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


@needs_torch
@pytest.mark.parametrize(
    "config", [CONFIGS[2], CONFIGS[10], CONFIGS[13], CONFIGS[18], CONFIGS[22]], ids=config_id
)
def test_float32_end_to_end(config):
    name, kwargs = config
    init, grads = make_data(np.float32, seed=1)
    params = make_params(init)
    opt = OURS[name](params, **kwargs)
    ours = run_ours(params, opt, grads)
    for p in params:
        assert p.value.dtype == np.float32
        for v in opt.state[p].values():
            if isinstance(v, np.ndarray):
                assert v.dtype == np.float32
    tp = [torch.tensor(v.copy(), requires_grad=True) for v in init]
    theirs = run_torch(tp, torch_opt(name, tp, kwargs), grads)
    for a, b in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_state_buffers_are_updated_in_place():
    init, grads = make_data(steps=3)
    params = make_params(init)
    opt = lf.Adam(params, lr=0.01, amsgrad=True)
    run_ours(params, opt, grads[:1])
    ids = {k: id(v) for k, v in opt.state[params[0]].items() if isinstance(v, np.ndarray)}
    value_id = id(params[0].value)
    run_ours(params, opt, grads[1:])
    assert ids == {k: id(v) for k, v in opt.state[params[0]].items() if isinstance(v, np.ndarray)}
    assert id(params[0].value) == value_id


def test_gradient_is_never_written_into():
    init, grads = make_data(steps=1)
    params = make_params(init)
    opt = lf.SGD(params, lr=0.1, momentum=0.9, weight_decay=0.1, nesterov=True)
    gs = [g.copy() for g in grads[0]]
    for p, g in zip(params, gs, strict=True):
        p.grad = g
    opt.step()
    opt.step()
    for g, g0 in zip(gs, grads[0], strict=True):
        np.testing.assert_array_equal(g, g0)


# ---------------------------------------------------------------------------- state saving


def _plain(obj) -> bool:
    if isinstance(obj, dict):
        return all(isinstance(k, (int, str)) and _plain(v) for k, v in obj.items())
    if isinstance(obj, list):
        return all(_plain(v) for v in obj)
    return isinstance(obj, (int, float, bool, str, type(None), np.ndarray))


@pytest.mark.parametrize(
    "config", [CONFIGS[4], CONFIGS[10], CONFIGS[13], CONFIGS[18], CONFIGS[22]], ids=config_id
)
def test_state_dict_resumes_bit_identically(config):
    name, kwargs = config
    init, grads = make_data(np.float32, seed=7, steps=10)
    straight = make_params(init)
    run_ours(straight, OURS[name](straight, **kwargs), grads)

    first = make_params(init)
    opt = OURS[name](first, **kwargs)
    run_ours(first, opt, grads[:5])
    saved = opt.state_dict()
    assert _plain(saved)
    run_ours(first, opt, grads[5:6])  # the saved state is a copy: later steps do not change it

    # new parameters holding the weights after 5 steps (as a model checkpoint gives them)
    resumed = make_params(init)
    run_ours(resumed, OURS[name](resumed, **kwargs), grads[:5])
    opt2 = OURS[name](resumed, **kwargs)
    opt2.load_state_dict(saved)
    run_ours(resumed, opt2, grads[5:])
    for a, b in zip(resumed, straight, strict=True):
        np.testing.assert_array_equal(a.value, b.value)


def test_state_dict_keeps_group_options_and_checks_layout():
    init, grads = make_data(steps=2)
    params = make_params(init)
    opt = lf.Adam([{"params": params[:1], "lr": 0.5}, {"params": params[1:]}], betas=(0.5, 0.6))
    run_ours(params, opt, grads)
    sd = opt.state_dict()
    assert sd["param_groups"][0]["lr"] == 0.5 and sd["param_groups"][0]["params"] == [0]
    assert sd["param_groups"][1]["params"] == [1, 2]
    assert sd["param_groups"][0]["betas"] == [0.5, 0.6]
    assert sd["state"][0]["step"] == 2
    new_params = make_params(init)
    opt2 = lf.Adam([{"params": new_params[:1]}, {"params": new_params[1:]}])
    opt2.load_state_dict(sd)
    assert opt2.param_groups[0]["lr"] == 0.5 and opt2.param_groups[1]["betas"] == (0.5, 0.6)
    with pytest.raises(ConfigError, match="group"):
        lf.Adam(make_params(init)).load_state_dict(sd)
    wrong = [Param(np.zeros((5,))), Param(np.zeros((4,))), Param(np.zeros((2, 3, 2)))]
    with pytest.raises(ConfigError, match="shape"):
        lf.Adam([{"params": wrong[:1]}, {"params": wrong[1:]}]).load_state_dict(sd)


# ---------------------------------------------------------------------------- param groups


class TinyNorm(lf.Layer):
    def __init__(self) -> None:
        super().__init__()
        self.add_param("weight", np.ones(4))
        self.add_param("bias", np.zeros(4))

    def forward(self, x):
        return x

    def backward(self, delta_out, need_input_delta=True):
        return delta_out

    def get_config(self):
        return {}

    def output_shape(self, input_shape):
        return input_shape


def test_param_groups_helper_no_decay_on_biases_and_norms():
    model = lf.Sequential(lf.Input(3), lf.Linear(3, 4), TinyNorm(), lf.ReLU(), lf.Linear(4, 2))
    groups = lf.optim.param_groups(model, weight_decay=0.05, lr=0.3)
    names = {id(p): n for n, p in model.named_parameters()}
    decay = [names[id(p)] for p in groups[0]["params"]]
    keep = [names[id(p)] for p in groups[1]["params"]]
    assert decay == ["1.weight", "4.weight"]
    assert keep == ["1.bias", "2.weight", "2.bias", "4.bias"]
    assert groups[0]["weight_decay"] == 0.05 and groups[1]["weight_decay"] == 0.0
    assert groups[0]["lr"] == groups[1]["lr"] == 0.3
    opt = lf.AdamW(groups)
    assert opt.param_groups[1]["weight_decay"] == 0.0
    # wildcards on full names, and the no-decay parameters really are not decayed
    groups = lf.optim.param_groups(model, weight_decay=0.5, no_decay=("4.*",))
    assert [names[id(p)] for p in groups[1]["params"]] == ["4.weight", "4.bias"]
    opt = lf.SGD(groups, lr=1.0)
    for p in model.parameters():
        p.grad = np.zeros_like(p.value)
    before = {n: p.value.copy() for n, p in model.named_parameters()}
    opt.step()
    after = dict(model.named_parameters())
    np.testing.assert_array_equal(after["4.weight"].value, before["4.weight"])
    np.testing.assert_allclose(after["1.weight"].value, 0.5 * before["1.weight"])


def test_optimizer_accepts_a_model_and_checks_its_arguments():
    model = lf.Sequential(lf.Input(2), lf.Linear(2, 2))
    assert len(list(lf.SGD(model, lr=0.1).params())) == 2
    p = model.parameters()
    with pytest.raises(ConfigError, match="lr"):
        lf.SGD(p, lr=-1.0)
    with pytest.raises(ConfigError, match="Nesterov"):
        lf.SGD(p, lr=0.1, nesterov=True)
    with pytest.raises(ConfigError, match="betas"):
        lf.Adam(p, betas=(1.0, 0.9))
    with pytest.raises(ConfigError, match="more than one"):
        lf.SGD([{"params": p}, {"params": p[:1]}], lr=0.1)
    with pytest.raises(ConfigError, match="unknown option"):
        lf.SGD([{"params": p, "momentun": 0.9}], lr=0.1)
    with pytest.raises(ConfigError, match="empty"):
        lf.Adam([])


# ---------------------------------------------------------------------------- phases, skips


@pytest.mark.parametrize("name", sorted(OURS))
def test_skips_params_without_grad_and_refuses_inference_phase(name):
    a, b = Param(np.ones(3)), Param(np.ones(2))
    opt = OURS[name]([a, b], lr=0.1)
    a.grad = np.full(3, 0.5)
    opt.step()
    np.testing.assert_array_equal(b.value, np.ones(2))
    assert b not in opt.state or not opt.state[b]
    assert not np.array_equal(a.value, np.ones(3))
    a.training = False
    with pytest.raises(PhaseError, match="inference phase"):
        opt.step()
    a.training = True
    a.grad = np.ones(4)
    with pytest.raises(ShapeError):
        opt.step()


def test_model_in_inference_phase_is_refused():
    model = lf.Sequential(lf.Input(2), lf.Linear(2, 1))
    opt = lf.Adam(model.parameters())
    for p in model.parameters():
        p.grad = np.ones_like(p.value)
    model.eval()
    with pytest.raises(PhaseError):
        opt.step()


# ---------------------------------------------------------------------------- exact arithmetic


def test_sgd_momentum_in_exact_arithmetic():
    p = Param(np.array([F(1), F(2)], dtype=object))
    opt = lf.SGD([p], lr=0.1, momentum=0.5, dampening=0.5, weight_decay=0.25)
    w = [F(1), F(2)]
    buf = None
    for g in ([F(1), F(-1)], [F(3), F(1, 3)], [F(0), F(2)]):
        p.grad = np.array(g, dtype=object)
        opt.step()
        d = [gi + F(1, 4) * wi for gi, wi in zip(g, w, strict=True)]
        buf = d if buf is None else [F(1, 2) * b + F(1, 2) * di for b, di in zip(buf, d, strict=True)]
        w = [wi - F(1, 10) * b for wi, b in zip(w, buf, strict=True)]
    assert list(p.value) == w
    assert all(isinstance(v, F) for v in p.value)


@pytest.mark.parametrize("name", ["Adam", "AdamW", "RMSprop", "Adagrad"])
def test_adaptive_optimizers_refuse_exact_arithmetic(name):
    p = Param(np.array([F(1)], dtype=object))
    p.grad = np.array([F(1)], dtype=object)
    with pytest.raises(ExactnessError, match="exact"):
        OURS[name]([p]).step()


# ---------------------------------------------------------------------------- accumulation


def _step_on_batches(dtype, batches, k_scale):
    rng = np.random.default_rng(11)
    model = lf.Sequential(lf.Input(3), lf.Linear(3, 2)).astype(dtype)
    w = rng.integers(-3, 4, size=(2, 3))
    model.layers[1].weight.value = w
    model.layers[1].bias.value = np.array([1, -1])
    loss = lf.SquaredError()
    opt = lf.SGD(model.parameters(), lr=0.5)
    opt.zero_grad()
    for xb, yb in batches:
        out = model.forward(lf.numbers.cast(xb, model.dtype))
        loss.forward(out, lf.numbers.cast(yb, model.dtype))
        delta = loss.backward()
        if k_scale != 1:
            delta = delta * lf.numbers.scalar_like(F(1, k_scale), model.dtype)
        model.backward(delta, accumulate=True)
    opt.step()
    return [p.value.copy() for p in model.parameters()]


@pytest.mark.parametrize("dtype", ["exact", np.float64])
def test_gradient_accumulation_equals_one_big_batch(dtype):
    rng = np.random.default_rng(2)
    x = rng.integers(-5, 6, size=(12, 3))
    y = rng.integers(-5, 6, size=(12, 2))
    k = 3
    small = [(x[i * 4 : (i + 1) * 4], y[i * 4 : (i + 1) * 4]) for i in range(k)]
    accumulated = _step_on_batches(dtype, small, k)
    big = _step_on_batches(dtype, [(x, y)], 1)
    for a, b in zip(accumulated, big, strict=True):
        if dtype == "exact":
            assert list(a.reshape(-1)) == list(b.reshape(-1))
        else:
            np.testing.assert_allclose(a, b, rtol=1e-13)
    # without accumulate, only the last batch would count: a different step
    assert not np.allclose(
        np.asarray(accumulated[0], float), np.asarray(_step_on_batches(dtype, small[-1:], 1)[0], float)
    )


# ---------------------------------------------------------------------------- transforms


@pytest.mark.parametrize("config", CONFIGS, ids=[config_id(c) for c in CONFIGS])
def test_each_optimizer_is_the_chain_of_its_transforms(config):
    name, kwargs = config
    init, grads = make_data(seed=4, steps=6)
    builtin, chained = make_params(init), make_params(init)
    opt = OURS[name](builtin, **kwargs)
    run_ours(builtin, opt, grads)
    chain = Chain(chained, OURS[name].transforms, **opt.defaults)
    run_ours(chained, chain, grads)
    for p, q in zip(builtin, chained, strict=True):
        np.testing.assert_array_equal(p.value, q.value)
        assert opt.state[p].keys() == chain.state[q].keys()
        for key, value in opt.state[p].items():
            np.testing.assert_array_equal(value, chain.state[q][key])


@pytest.mark.parametrize("name", sorted(OURS))
def test_optimizer_options_are_those_its_transforms_read(name):
    cls = OURS[name]
    read = {}
    for t in cls.transforms:
        read.update(t.options)
    opt = cls([Param(np.ones(2))], lr=0.1)
    assert set(opt.defaults) <= set(read)
    # an option the optimizer lacks is read at a neutral value (RMSprop: no dampening, nesterov)
    assert {k: read[k] for k in set(read) - set(opt.defaults)} in ({}, {"dampening": 0, "nesterov": False})
    assert cls.supports_exact == (name == "SGD")


def test_adamw_is_adam_with_decoupled_decay_and_its_default():
    import inspect

    adam, adamw = inspect.signature(lf.Adam), inspect.signature(lf.AdamW)
    assert list(adam.parameters) == list(adamw.parameters)
    assert adamw.parameters["weight_decay"].default == 1e-2 and adam.parameters["weight_decay"].default == 0
    assert lf.AdamW([Param(np.ones(2))], lr=0.5).defaults["weight_decay"] == 1e-2
    assert lf.AdamW([Param(np.ones(2))], 0.5, (0.5, 0.6), 1e-6, 0.3, True).defaults == {
        "lr": 0.5,
        "betas": (0.5, 0.6),
        "eps": 1e-6,
        "weight_decay": 0.3,
        "amsgrad": True,
    }
    assert [repr(t) for t in lf.AdamW.transforms] == [
        "CountSteps()",
        "WeightDecay(decoupled=True)",
        "ScaleByAdam()",
        "ScaleByLearningRate()",
    ]


def test_sgd_with_decoupled_weight_decay_in_exact_arithmetic():
    p = Param(np.array([F(1), F(-2)], dtype=object))
    opt = Chain(
        [p],
        [WeightDecay(decoupled=True), Momentum(), ScaleByLearningRate()],
        lr=0.1,
        momentum=0.5,
        weight_decay=0.2,
    )
    w, buf = [F(1), F(-2)], None
    for g in ([F(1), F(3)], [F(-2), F(1, 3)], [F(1, 2), F(0)]):
        p.grad = np.array(g, dtype=object)
        opt.step()
        w = [wi * (1 - F(1, 10) * F(1, 5)) for wi in w]  # w ← w(1 − αλ), before the gradient step
        buf = list(g) if buf is None else [F(1, 2) * b + gi for b, gi in zip(buf, g, strict=True)]
        w = [wi - F(1, 10) * b for wi, b in zip(w, buf, strict=True)]
    assert list(p.value) == w and all(isinstance(v, F) for v in p.value)


def test_a_deferred_learning_rate_is_applied_before_a_transform_that_reads_the_update():
    """Learning rate first, then momentum: the buffer holds b ← μ·b + α·g with the rate of each
    step (not SGD's α·(μ·b + g) once the rate changes)."""
    p = Param(np.array([F(1), F(2), F(-1, 3)], dtype=object))
    opt = Chain([p], [ScaleByLearningRate(), Momentum()], lr=0.5, momentum=0.75)
    w, buf = list(p.value), None
    for lr, g in (
        (F(1, 2), [F(1), F(-2), F(5)]),
        (F(1, 4), [F(1, 7), F(0), F(3)]),
        (F(1, 3), [F(2), F(2), F(-1)]),
    ):
        opt.param_groups[0]["lr"] = lr
        p.grad = np.array(g, dtype=object)
        opt.step()
        scaled = [lr * gi for gi in g]
        buf = scaled if buf is None else [F(3, 4) * b + si for b, si in zip(buf, scaled, strict=True)]
        w = [wi - b for wi, b in zip(w, buf, strict=True)]
        assert list(p.value) == w


@needs_torch
@pytest.mark.parametrize("amsgrad", [False, True])
def test_optax_order_adamw_equals_torch_adamw(amsgrad):
    """optax's adamw = chain(scale_by_adam, add_decayed_weights, scale_by_learning_rate): the decay
    added to Adam's (bias-corrected) direction, then α; PyTorch shrinks w first: the same rule."""
    init, grads = make_data(seed=9)
    params = make_params(init)
    kwargs = {"lr": 0.01, "weight_decay": 0.2, "amsgrad": amsgrad}
    opt = Chain(params, [CountSteps(), ScaleByAdam(), WeightDecay(), ScaleByLearningRate()], **kwargs)
    ours = run_ours(params, opt, grads)
    tp = torch_params(init)
    theirs = run_torch(tp, torch_opt("AdamW", tp, kwargs), grads)
    for a, b in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


def test_chain_checks_its_transforms_and_options():
    p = [Param(np.ones(3))]
    with pytest.raises(ConfigError, match="momentun"):
        Chain(p, [Momentum(), ScaleByLearningRate()], lr=0.1, momentun=0.9)
    with pytest.raises(ConfigError, match="lr"):
        Chain(p, [Momentum(), ScaleByLearningRate()], momentum=0.9)
    with pytest.raises(ConfigError, match="CountSteps"):
        Chain(p, [ScaleByAdam(), ScaleByLearningRate()], lr=0.1)
    with pytest.raises(ConfigError, match="expected transforms"):
        Chain(p, [ScaleByLearningRate(), lambda step: None], lr=0.1)
    with pytest.raises(ConfigError, match="Nesterov"):
        Chain(p, [Momentum(), ScaleByLearningRate()], lr=0.1, nesterov=True)
    with pytest.raises(ConfigError, match="betas"):
        Chain(p, [CountSteps(), ScaleByAdam()], betas=(0.9, 1.5))
    exact = [Param(np.array([F(1)], dtype=object))]
    exact[0].grad = np.array([F(1)], dtype=object)
    with pytest.raises(ExactnessError, match="exact"):
        Chain(exact, [CountSteps(), ScaleByAdam(), ScaleByLearningRate()], lr=0.1).step()
    assert isinstance(WeightDecay(), Transform)


@needs_torch
@pytest.mark.parametrize(
    "config",
    [CONFIGS[2], CONFIGS[4], CONFIGS[10], CONFIGS[13], CONFIGS[17], CONFIGS[18], CONFIGS[22]],
    ids=config_id,
)
def test_state_dict_is_torchs_format_and_a_torch_state_resumes(config):
    """The state holds PyTorch's names and meanings: a torch.optim state, loaded after 5 steps,
    continues as torch continues (the format older files were written in)."""
    name, kwargs = config
    init, grads = make_data(seed=6, steps=10)
    tp = torch_params(init)
    topt = torch_opt(name, tp, kwargs)
    run_torch(tp, topt, grads[:5])
    params = make_params(init)
    ours = OURS[name](params, **kwargs)
    run_ours(params, ours, grads[:1])
    tsd = topt.state_dict()
    assert set(ours.state_dict()["param_groups"][0]) <= set(tsd["param_groups"][0])
    for i in range(len(params)):
        assert ours.state_dict()["state"][i].keys() == tsd["state"][i].keys()
    loaded = {
        "state": {
            i: {k: (int(v.item()) if k == "step" else v.numpy().copy()) for k, v in st.items()}
            for i, st in tsd["state"].items()
        },
        "param_groups": [{k: g[k] for k in (*ours.defaults, "params")} for g in tsd["param_groups"]],
    }
    params = [Param(t.detach().numpy().copy()) for t in tp]
    ours = OURS[name](params, **kwargs)
    ours.load_state_dict(loaded)
    mine = run_ours(params, ours, grads[5:])
    theirs = run_torch(tp, topt, grads[5:])
    for a, b in zip(mine, theirs, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


@needs_torch
@pytest.mark.parametrize("name", sorted(OURS))
def test_options_are_read_at_every_step(name):
    """A schedule changes lr (and momentum or β₁) between steps: both libraries follow."""
    init, grads = make_data(seed=8, steps=8)
    kwargs = {"SGD": {"lr": 0.1, "momentum": 0.9}, "RMSprop": {"momentum": 0.5}}.get(name, {})
    params, tp = make_params(init), torch_params(init)
    opts = [OURS[name](params, **kwargs), torch_opt(name, tp, kwargs)]
    for k, gs in enumerate(grads):
        if k == 4:
            for opt in opts:
                group = opt.param_groups[0]
                group["lr"] = group["lr"] * 0.3
                if "betas" in group:
                    group["betas"] = (0.5, group["betas"][1])
                elif "momentum" in group:
                    group["momentum"] = 0.2
        run_ours(params, opts[0], [gs])
        run_torch(tp, opts[1], [gs])
    for p, t in zip(params, tp, strict=True):
        np.testing.assert_allclose(p.value, t.detach().numpy(), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("config", CONFIGS, ids=[config_id(c) for c in CONFIGS])
def test_a_step_allocates_no_array(config):
    """After the first step (state and scratch allocated), a step writes only into the weights,
    the state and the shared scratch arrays: NumPy allocates no temporary."""
    import tracemalloc

    name, kwargs = config
    rng = np.random.default_rng(0)
    params = [Param(rng.standard_normal((100, 50))), Param(rng.standard_normal(50))]
    for p in params:
        p.grad = rng.standard_normal(p.shape)
    opt = OURS[name](params, **kwargs)
    opt.step()
    tracemalloc.start()
    try:
        opt.step()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 * 50 * 10, f"{peak} bytes allocated during a step"  # one small array: 4000 B
