"""Learning-rate schedules: the same values as torch.optim.lr_scheduler, step after step."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import learnflux as lf
from learnflux.core.param import Param
from learnflux.errors import ConfigError
from learnflux.optim import schedules

try:  # PyTorch is the parity oracle: the tests that compare with it skip without it, the rest run
    import torch
except ImportError:
    torch = None
needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch (the parity oracle) is not installed")

LR = [0.1, 0.02]

CASES = [
    ("StepLR", {"step_size": 3, "gamma": 0.5}),
    ("MultiStepLR", {"milestones": [2, 5, 5, 11], "gamma": 0.3}),
    ("ExponentialLR", {"gamma": 0.93}),
    ("CosineAnnealingLR", {"T_max": 10}),
    ("CosineAnnealingLR", {"T_max": 7, "eta_min": 0.001}),  # stepped past T_max: back up
    ("CosineAnnealingWarmRestarts", {"T_0": 5}),
    ("CosineAnnealingWarmRestarts", {"T_0": 3, "T_mult": 2, "eta_min": 0.002}),
    ("LinearLR", {}),
    ("LinearLR", {"start_factor": 0.1, "end_factor": 0.5, "total_iters": 8}),
    ("OneCycleLR", {"max_lr": 0.5, "total_steps": 40}),
    ("OneCycleLR", {"max_lr": [0.5, 0.2], "total_steps": 40, "anneal_strategy": "linear", "pct_start": 0.25}),
    (
        "OneCycleLR",
        {
            "max_lr": 0.5,
            "epochs": 4,
            "steps_per_epoch": 10,
            "three_phase": True,
            "div_factor": 10.0,
            "final_div_factor": 100.0,
        },
    ),
]


def ours_and_theirs(opt_name="SGD", opt_kwargs=None):
    opt_kwargs = {"momentum": 0.9} if opt_kwargs is None and opt_name == "SGD" else (opt_kwargs or {})
    a, b = Param(np.zeros(2)), Param(np.zeros(3))
    ours = getattr(lf, opt_name)([{"params": [a], "lr": LR[0]}, {"params": [b], "lr": LR[1]}], **opt_kwargs)
    if torch is None:  # the tests of our schedules alone
        return ours, None
    ta, tb = torch.zeros(2, requires_grad=True), torch.zeros(3, requires_grad=True)
    theirs = getattr(torch.optim, opt_name)(
        [{"params": [ta], "lr": LR[0]}, {"params": [tb], "lr": LR[1]}], **opt_kwargs
    )
    return ours, theirs


def case_id(c):
    return c[0] + "-" + "-".join(f"{k}={v}" for k, v in c[1].items())


@needs_torch
@pytest.mark.parametrize("case", CASES, ids=[case_id(c) for c in CASES])
def test_same_values_as_torch(case):
    name, kwargs = case
    ours, theirs = ours_and_theirs()
    sched = getattr(schedules, name)(ours, **kwargs)
    tsched = getattr(torch.optim.lr_scheduler, name)(theirs, **kwargs)
    n = 40 if name == "OneCycleLR" else 30
    seen = set()
    np.testing.assert_allclose(sched.get_last_lr(), tsched.get_last_lr(), rtol=1e-12)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch warns that optimizer.step() was not called
        for i in range(n - 1 if name == "OneCycleLR" else n):
            ours.step()
            theirs.step()
            sched.step()
            tsched.step()
            mine, ref = sched.get_last_lr(), tsched.get_last_lr()
            np.testing.assert_allclose(mine, ref, rtol=1e-12, atol=1e-15, err_msg=f"step {i}")
            assert [g["lr"] for g in ours.param_groups] == mine
            if name == "OneCycleLR":
                np.testing.assert_allclose(
                    [g["momentum"] for g in ours.param_groups],
                    [g["momentum"] for g in theirs.param_groups],
                    rtol=1e-12,
                )
            seen.add(round(mine[0], 12))
    assert len(seen) > 2  # the schedule really changed the rate


@needs_torch
@pytest.mark.parametrize(
    "name,kwargs",
    [
        ("CosineAnnealingLR", {"T_max": 10, "eta_min": 0.001}),
        ("StepLR", {"step_size": 3, "gamma": 0.5}),
        ("ExponentialLR", {"gamma": 0.9}),
    ],
)
def test_resumed_schedule_matches_torch(name, kwargs):
    # built with last_epoch=k (resuming a run): the first rate is PyTorch's closed form at k + 1
    ours, theirs = ours_and_theirs()
    for opt in (ours, theirs):
        for group, lr in zip(opt.param_groups, LR, strict=True):
            group["initial_lr"] = lr
    sched = getattr(schedules, name)(ours, last_epoch=4, **kwargs)
    tsched = getattr(torch.optim.lr_scheduler, name)(theirs, last_epoch=4, **kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch warns that optimizer.step() was not called
        for i in range(8):
            np.testing.assert_allclose(sched.get_last_lr(), tsched.get_last_lr(), rtol=1e-12, err_msg=f"{i}")
            sched.step()
            tsched.step()


@needs_torch
def test_onecycle_cycles_adam_beta1():
    ours, theirs = ours_and_theirs("Adam")
    sched = schedules.OneCycleLR(ours, max_lr=0.01, total_steps=20)
    tsched = torch.optim.lr_scheduler.OneCycleLR(theirs, max_lr=0.01, total_steps=20)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(19):
            sched.step()
            tsched.step()
            assert ours.param_groups[0]["betas"][1] == 0.999
            np.testing.assert_allclose(
                ours.param_groups[0]["betas"][0], theirs.param_groups[0]["betas"][0], rtol=1e-12
            )
            np.testing.assert_allclose(sched.get_last_lr(), tsched.get_last_lr(), rtol=1e-12)
    with pytest.raises(ConfigError, match="total_steps"):
        for _ in range(5):
            sched.step()


@needs_torch
def test_chained_schedules_match_torch():
    ours, theirs = ours_and_theirs()
    mine = [
        schedules.LinearLR(ours, start_factor=0.2, total_iters=4),
        schedules.ExponentialLR(ours, gamma=0.9),
    ]
    ref = [
        torch.optim.lr_scheduler.LinearLR(theirs, start_factor=0.2, total_iters=4),
        torch.optim.lr_scheduler.ExponentialLR(theirs, gamma=0.9),
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(12):
            for s in mine + ref:
                s.step()
            np.testing.assert_allclose(mine[1].get_last_lr(), ref[1].get_last_lr(), rtol=1e-12)


@needs_torch
@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"mode": "max", "factor": 0.5, "patience": 2, "cooldown": 1, "min_lr": [0.01, 0.005]},
        {"threshold_mode": "abs", "threshold": 0.05, "patience": 1, "factor": 0.3, "min_lr": 0.004},
    ],
)
def test_reduce_on_plateau_matches_torch(kwargs):
    ours, theirs = ours_and_theirs()
    sched = schedules.ReduceLROnPlateau(ours, **kwargs)
    tsched = torch.optim.lr_scheduler.ReduceLROnPlateau(theirs, **kwargs)
    rng = np.random.default_rng(0)
    metrics = np.concatenate([np.linspace(1.0, 0.5, 5), 0.5 + 0.02 * rng.standard_normal(40)])
    changed = False
    for m in metrics:
        sched.step(float(m))
        tsched.step(float(m))
        assert sched.get_last_lr() == pytest.approx(tsched.get_last_lr(), rel=1e-12)
        assert sched.num_bad_epochs == tsched.num_bad_epochs
        changed |= sched.get_last_lr()[0] != LR[0]
    assert changed


def test_state_dict_round_trip_resumes_the_schedule():
    ours, _ = ours_and_theirs()
    sched = schedules.MultiStepLR(ours, milestones=[3, 6], gamma=0.5)
    for _ in range(4):
        sched.step()
    saved = sched.state_dict()
    assert "optimizer" not in saved and isinstance(saved["milestones"], dict)
    opt_state = ours.state_dict()
    rest = []
    for _ in range(5):
        sched.step()
        rest.append(sched.get_last_lr())

    ours2, _ = ours_and_theirs()
    ours2.load_state_dict(opt_state)
    sched2 = schedules.MultiStepLR(ours2, milestones=[1], gamma=0.9, last_epoch=saved["last_epoch"])
    sched2.load_state_dict(saved)
    for r in rest:
        sched2.step()
        assert sched2.get_last_lr() == r

    plateau = schedules.ReduceLROnPlateau(ours2, patience=0)
    plateau.step(1.0)
    assert isinstance(plateau, schedules.LRScheduler)
    state = plateau.state_dict()
    assert "optimizer" not in state and state["best"] == 1.0


def test_lr_scheduler_alias_and_errors():
    assert lf.optim.lr_scheduler is schedules
    import learnflux.optim.lr_scheduler as alias

    assert alias.StepLR is schedules.StepLR
    ours, _ = ours_and_theirs()
    with pytest.raises(ConfigError):
        schedules.StepLR(ours, step_size=0)
    with pytest.raises(ConfigError, match="initial_lr"):
        schedules.StepLR(lf.SGD([Param(np.zeros(1))], lr=0.1), step_size=2, last_epoch=3)
    with pytest.raises(ConfigError, match="optimizer"):
        schedules.ExponentialLR(object(), gamma=0.9)
    with pytest.raises(ConfigError, match="momentum"):
        schedules.OneCycleLR(lf.Adagrad([Param(np.zeros(1))]), max_lr=0.1, total_steps=10)
    with pytest.raises(ConfigError, match="max_lr"):
        schedules.OneCycleLR(ours, max_lr=[0.1], total_steps=10)
