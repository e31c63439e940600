"""The losses of issue 15: NLLLoss, MultiMarginLoss, CrossEntropyLoss's class weights and
ignore_index, HuberLoss, SmoothL1Loss and KLDivLoss. Each configuration: δ against central
finite differences (float64), value and δ against PyTorch (float64 within 1e-10, float32 within
1e-4), exact arithmetic where the loss is rational, and the errors."""

from __future__ import annotations

import json
from fractions import Fraction

import numpy as np
import pytest

import learnflux as lf
from tests.test_losses import _numerical_delta

# ---------------------------------------------------------------------------- samples
# (id, learnflux kwargs -> loss, torch kwargs -> loss, sample(rng) -> (output, target))


def _log_probs(x):
    x = x - x.max(axis=1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=1, keepdims=True))


def _labels(shape, classes, ignore=None, ignored=0.0, log=False):
    """Scores (or log-probabilities) of ``shape`` (classes on axis 1) and integer labels; a
    share ``ignored`` of the labels replaced by ``ignore``."""

    def sample(rng):
        out = rng.standard_normal(shape) * 2
        if log:
            out = _log_probs(out)
        y = rng.integers(0, classes, size=(shape[0], *shape[2:]))
        if ignore is not None and ignored:
            y[rng.random(y.shape) < ignored] = ignore
            y.reshape(-1)[0] = 0 if ignore != 0 else 1  # at least one label counts
        return out, y

    return sample


def _probs(shape):
    def sample(rng):
        q = rng.random(shape) + 0.1
        return rng.standard_normal(shape) * 2, q / q.sum(axis=1, keepdims=True)

    return sample


def _regression(shape, spread=2.0):
    def sample(rng):
        return rng.standard_normal(shape) * spread, rng.standard_normal(shape)

    return sample


def _kl(shape, log_target):
    def sample(rng):
        x = _log_probs(rng.standard_normal(shape))
        q = rng.random(shape) + 0.05
        if not log_target:
            q[rng.random(shape) < 0.2] = 0.0  # y = 0: contributes 0
        q /= q.sum(axis=1, keepdims=True)
        return x, (np.log(q) if log_target else q)

    return sample


W4 = [0.5, 2.0, 1.0, 3.0]
W3 = [1.0, 0.25, 4.0]

CASES = []


def case(name, cls, kwargs, sample, torch_kwargs=None):
    CASES.append((name, cls, kwargs, torch_kwargs if torch_kwargs is not None else kwargs, sample))


for red in ("mean", "sum"):
    # NLLLoss
    case(f"nll-{red}", "NLLLoss", {"reduction": red}, _labels((5, 4), 4, log=True))
    case(f"nll-weight-{red}", "NLLLoss", {"weight": W4, "reduction": red}, _labels((6, 4), 4, log=True))
    case(
        f"nll-ignore-weight-{red}",
        "NLLLoss",
        {"weight": W4, "reduction": red},
        _labels((8, 4), 4, ignore=-100, ignored=0.4, log=True),
    )
    case(
        f"nll-ignore-class-{red}",
        "NLLLoss",
        {"ignore_index": 1, "reduction": red},
        _labels((7, 3), 3, ignore=1, ignored=0.3, log=True),
    )
    case(
        f"nll-seq-{red}",
        "NLLLoss",
        {"weight": W4, "ignore_index": 0, "reduction": red},
        _labels((2, 4, 5), 4, ignore=0, ignored=0.3, log=True),
    )
    case(f"nll-image-{red}", "NLLLoss", {"weight": W3, "reduction": red}, _labels((2, 3, 2, 3), 3, log=True))
    case(f"nll-batch1-{red}", "NLLLoss", {"weight": W4, "reduction": red}, _labels((1, 4), 4, log=True))
    # CrossEntropyLoss with weight / ignore_index
    for eps in (0.0, 0.15):
        t = f"{red}-ls{eps}"
        kw = {"reduction": red, "label_smoothing": eps}
        case(f"ce-weight-{t}", "CrossEntropyLoss", {"weight": W4, **kw}, _labels((6, 4), 4))
        case(f"ce-ignore-{t}", "CrossEntropyLoss", kw, _labels((8, 4), 4, ignore=-100, ignored=0.4))
        case(
            f"ce-ignore-weight-{t}",
            "CrossEntropyLoss",
            {"weight": W4, "ignore_index": 2, **kw},
            _labels((8, 4), 4, ignore=2, ignored=0.3),
        )
        case(
            f"ce-seq-{t}",
            "CrossEntropyLoss",
            {"weight": W3, "ignore_index": -1, **kw},
            _labels((3, 3, 5), 3, ignore=-1, ignored=0.3),
        )
        case(
            f"ce-seq-noweight-{t}",
            "CrossEntropyLoss",
            {"ignore_index": 0, **kw},
            _labels((2, 4, 6), 4, 0, 0.3),
        )
        case(f"ce-image-weight-{t}", "CrossEntropyLoss", {"weight": W3, **kw}, _labels((2, 3, 2, 2), 3))
        case(f"ce-probs-weight-{t}", "CrossEntropyLoss", {"weight": W4, **kw}, _probs((5, 4)))
        case(f"ce-probs-seq-weight-{t}", "CrossEntropyLoss", {"weight": W3, **kw}, _probs((2, 3, 4)))
        case(f"ce-batch1-{t}", "CrossEntropyLoss", {"weight": W4, **kw}, _labels((1, 4), 4))
    # MultiMarginLoss
    for p in (1, 2):
        for margin in (1.0, 0.5):
            t = f"p{p}-m{margin}-{red}"
            kw = {"p": p, "margin": margin, "reduction": red}
            case(f"margin-{t}", "MultiMarginLoss", kw, _labels((6, 4), 4))
            case(f"margin-weight-{t}", "MultiMarginLoss", {"weight": W4, **kw}, _labels((6, 4), 4))
        case(
            f"margin-batch1-p{p}-{red}",
            "MultiMarginLoss",
            {"p": p, "weight": W3, "reduction": red},
            _labels((1, 3), 3),
        )
    # HuberLoss and SmoothL1Loss
    for d in (1.0, 0.5, 2.5):
        case(f"huber-d{d}-{red}", "HuberLoss", {"delta": d, "reduction": red}, _regression((5, 3)))
        case(f"smoothl1-b{d}-{red}", "SmoothL1Loss", {"beta": d, "reduction": red}, _regression((5, 3)))
    case(f"huber-image-{red}", "HuberLoss", {"reduction": red}, _regression((2, 2, 3, 3)))
    case(f"huber-batch1-{red}", "HuberLoss", {"delta": 0.7, "reduction": red}, _regression((1, 4)))
    case(f"smoothl1-b0-{red}", "SmoothL1Loss", {"beta": 0.0, "reduction": red}, _regression((4, 3)))
    case(f"smoothl1-seq-{red}", "SmoothL1Loss", {"beta": 0.3, "reduction": red}, _regression((2, 3, 5)))

# KLDivLoss
for red in ("mean", "batchmean", "sum"):
    for log_target in (False, True):
        kw = {"reduction": red, "log_target": log_target}
        case(f"kl-{red}-log{log_target}", "KLDivLoss", kw, _kl((4, 5), log_target))
        case(f"kl-seq-{red}-log{log_target}", "KLDivLoss", kw, _kl((2, 3, 4), log_target))
    case(f"kl-batch1-{red}", "KLDivLoss", {"reduction": red}, _kl((1, 6), False))

IDS = [c[0] for c in CASES]
assert len(set(IDS)) == len(IDS)


def _make(c):
    return getattr(lf, c[1])(**c[2])


def _make_torch(c, torch, dtype):
    kw = dict(c[3])
    if "weight" in kw:
        kw["weight"] = torch.tensor(kw["weight"], dtype=dtype)
    return getattr(torch.nn, c[1])(**kw)


# ---------------------------------------------------------------------------- gradients and parity
@pytest.mark.parametrize("c", CASES, ids=IDS)
def test_delta_matches_finite_differences(c):
    out, target = c[4](np.random.default_rng(0))
    loss = _make(c)
    value = loss.forward(out, target)
    assert isinstance(value, float) and np.isfinite(value)
    delta = loss.backward().copy()
    assert delta.shape == out.shape and delta.dtype == np.float64
    num = _numerical_delta(_make(c), out.copy(), target)
    np.testing.assert_allclose(delta, num, rtol=1e-6, atol=1e-8)  # rounding: ~1e-16·|value|/h


@pytest.mark.filterwarnings("ignore:reduction. 'mean' divides:UserWarning")  # KLDivLoss's default
@pytest.mark.parametrize(
    "dtype,rtol,atol", [(np.float64, 1e-10, 1e-13), (np.float32, 1e-4, 1e-6)], ids=["float64", "float32"]
)
@pytest.mark.parametrize("c", CASES, ids=IDS)
def test_torch_parity(c, dtype, rtol, atol):
    torch = pytest.importorskip("torch")
    out, target = c[4](np.random.default_rng(1))
    out = out.astype(dtype)
    if target.dtype.kind == "f":
        target = target.astype(dtype)
    loss = _make(c)
    value = loss.forward(out, target)
    delta = loss.backward()
    assert isinstance(value, float)
    assert delta.dtype == dtype
    t_out = torch.from_numpy(out.copy()).requires_grad_(True)
    t_value = _make_torch(c, torch, t_out.dtype)(t_out, torch.from_numpy(target.copy()))
    t_value.backward()
    np.testing.assert_allclose(value, t_value.item(), rtol=rtol, atol=atol)
    np.testing.assert_allclose(delta, t_out.grad.numpy(), rtol=rtol, atol=atol)


# ---------------------------------------------------------------------------- behaviour
@pytest.mark.parametrize("name", ["NLLLoss", "CrossEntropyLoss"])
@pytest.mark.parametrize("weight", [None, W4], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_all_ignored_batch_is_pytorchs(name, weight, reduction):
    """Every label ignored: the mean is 0/0 = NaN and the sum 0, as PyTorch; δ is 0 (no update)."""
    torch = pytest.importorskip("torch")
    out = np.random.default_rng(2).standard_normal((3, 4, 2))
    y = np.full((3, 2), -100)
    kw = {"weight": weight, "reduction": reduction}
    loss = getattr(lf, name)(**kw)
    value = loss.forward(out, y)
    t_out = torch.from_numpy(out.copy()).requires_grad_(True)
    t_kw = dict(kw, weight=None if weight is None else torch.tensor(weight, dtype=torch.float64))
    t_value = getattr(torch.nn, name)(**t_kw)(t_out, torch.from_numpy(y))
    t_value.backward()
    if reduction == "mean":
        assert np.isnan(value) and np.isnan(t_value.item())
    else:
        assert value == 0.0 == t_value.item()
    np.testing.assert_array_equal(loss.backward(), np.zeros_like(out))
    np.testing.assert_array_equal(t_out.grad.numpy(), np.zeros_like(out))


def test_weighted_mean_divides_by_the_weights_of_the_counted_targets():
    # log-probabilities by hand: −(w_y·x_y) summed / Σ w_y over the labels that count
    x = np.log(np.array([[0.5, 0.25, 0.25], [0.1, 0.6, 0.3], [0.2, 0.2, 0.6]]))
    y = np.array([0, 2, -100])
    w = [2.0, 1.0, 3.0]
    loss = lf.NLLLoss(weight=w)
    expected = -(2.0 * np.log(0.5) + 3.0 * np.log(0.3)) / 5.0
    assert loss.forward(x, y) == pytest.approx(expected, rel=1e-15)
    np.testing.assert_allclose(loss.backward(), [[-0.4, 0, 0], [0, 0, -0.6], [0, 0, 0]], rtol=1e-15)
    # CrossEntropyLoss on the logits x gives the same (x are already log-probabilities)
    assert lf.CrossEntropyLoss(weight=w).forward(x, y) == pytest.approx(expected, rel=1e-14)


def test_log_softmax_then_nll_is_cross_entropy():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((6, 5, 3))
    y = rng.integers(0, 5, (6, 3))
    y[0, 0] = 7  # ignored
    ce = lf.CrossEntropyLoss(weight=[1, 2, 3, 4, 5], ignore_index=7)
    nll = lf.NLLLoss(weight=[1, 2, 3, 4, 5], ignore_index=7)
    layer = lf.LogSoftmax(dim=1)
    v_ce = ce.forward(x, y)
    v_nll = nll.forward(layer.forward(x), y)
    assert v_nll == pytest.approx(v_ce, rel=1e-14)
    np.testing.assert_allclose(layer.backward(nll.backward()), ce.backward(), rtol=1e-12, atol=1e-16)


def test_unweighted_cross_entropy_without_ignored_labels_is_unchanged():
    """The default arguments (and ignore_index=-100 with no label -100) give the former values."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((7, 4))
    y = rng.integers(0, 4, 7)
    loss = lf.CrossEntropyLoss(label_smoothing=0.1)
    value = loss.forward(x, y)
    log_p = _log_probs(x)
    q = np.full((7, 4), 0.1 / 4)
    q[np.arange(7), y] += 0.9
    assert value == pytest.approx(-(q * log_p).sum() / 7, rel=1e-14)
    np.testing.assert_allclose(loss.backward(), (np.exp(log_p) - q) / 7, rtol=1e-12, atol=1e-16)
    # ignoring a label that no position holds changes nothing; weights of 1 neither
    again = lf.CrossEntropyLoss(weight=[1.0] * 4, ignore_index=3, label_smoothing=0.1)
    y2 = np.where(y == 3, 0, y)
    assert again.forward(x, y2) == pytest.approx(
        lf.CrossEntropyLoss(label_smoothing=0.1).forward(x, y2), rel=1e-14
    )


def test_multi_margin_by_hand():
    # scores (1, 0.5, 0.9), label 1, margin 1: z = (1.5, ·, 1.4), both on; weight 2 after the power
    x = np.array([[1.0, 0.5, 0.9]])
    loss = lf.MultiMarginLoss(p=2, weight=[1.0, 2.0, 3.0])
    assert loss.forward(x, [1]) == pytest.approx(2 * (1.5**2 + 1.4**2) / 3, rel=1e-15)
    np.testing.assert_allclose(loss.backward(), [[2 * 2 * 1.5 / 3, -2 * 2 * 2.9 / 3, 2 * 2 * 1.4 / 3]])
    # the hinge is off at z = 0 exactly (PyTorch too): only class 2 pulls
    loss = lf.MultiMarginLoss()
    assert loss.forward(np.array([[1.0, 0.0, 0.5]]), [0]) == pytest.approx(0.5 / 3)
    np.testing.assert_allclose(loss.backward(), [[-1 / 3, 0.0, 1 / 3]])


def test_huber_and_smooth_l1_at_the_threshold_and_beta_zero():
    z = np.array([[1.0, 0.0, -1.0, 3.0]])
    h = lf.HuberLoss(reduction="sum")
    assert h.forward(z, np.zeros_like(z)) == 0.5 + 0 + 0.5 + (3 - 0.5)
    np.testing.assert_array_equal(h.backward(), [[1.0, 0.0, -1.0, 1.0]])
    s = lf.SmoothL1Loss(reduction="sum", beta=2.0)
    assert s.forward(z, np.zeros_like(z)) == 0.25 + 0 + 0.25 + (3 - 1)  # = HuberLoss(delta=2)/2
    np.testing.assert_array_equal(s.backward(), [[0.5, 0.0, -0.5, 1.0]])
    # β = 0 is the L1 loss, with sign(0) = 0 (PyTorch too)
    s0, l1 = lf.SmoothL1Loss(beta=0), lf.L1Loss()
    assert s0.forward(z, np.zeros_like(z)) == l1.forward(z, np.zeros_like(z))
    np.testing.assert_array_equal(s0.backward(), l1.backward())


def test_kl_divergence_batchmean_is_the_divergence():
    p = np.array([[0.5, 0.5], [0.9, 0.1]])
    q = np.array([[0.25, 0.75], [1.0, 0.0]])
    loss = lf.KLDivLoss(reduction="batchmean")
    value = loss.forward(np.log(p), q)
    kl = (0.25 * np.log(0.25 / 0.5) + 0.75 * np.log(0.75 / 0.5) + 1.0 * np.log(1 / 0.9)) / 2
    assert value == pytest.approx(kl, rel=1e-14)
    np.testing.assert_array_equal(loss.backward(), -q / 2)
    log_t = lf.KLDivLoss(reduction="batchmean", log_target=True)
    assert log_t.forward(np.log(p), np.log(np.array([[0.25, 0.75], [0.5, 0.5]]))) == pytest.approx(
        (0.25 * np.log(0.5) + 0.75 * np.log(1.5) + 0.5 * np.log(0.5 / 0.9) + 0.5 * np.log(5)) / 2, rel=1e-14
    )


def test_float32_in_float32_out():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((6, 3)).astype(np.float32)
    y = rng.integers(0, 3, 6)
    for loss, target in [
        (lf.NLLLoss(weight=W3, ignore_index=1), y),
        (lf.CrossEntropyLoss(weight=W3, ignore_index=1, label_smoothing=0.1), y),
        (lf.MultiMarginLoss(p=2, weight=W3), y),
        (lf.HuberLoss(delta=0.5), rng.standard_normal((6, 3))),
        (lf.SmoothL1Loss(beta=0.5), rng.standard_normal((6, 3))),
        (lf.KLDivLoss(reduction="batchmean"), np.full((6, 3), 1 / 3)),
    ]:
        assert isinstance(loss.forward(x, target), float)
        assert loss.backward().dtype == np.float32, type(loss).__name__


# ---------------------------------------------------------------------------- exact arithmetic
def _dyadic(rng, shape):
    return np.round(rng.standard_normal(shape) * 8) / 8


@pytest.mark.parametrize(
    "make,kind",
    [
        (lambda: lf.HuberLoss(), "reg"),
        (lambda: lf.HuberLoss(reduction="sum", delta=0.75), "reg"),
        (lambda: lf.SmoothL1Loss(beta=0.5), "reg"),
        (lambda: lf.SmoothL1Loss(beta=0.0, reduction="sum"), "reg"),
        (lambda: lf.MultiMarginLoss(), "cls"),
        (lambda: lf.MultiMarginLoss(p=2, margin=0.5, weight=[1, 0.5, 2], reduction="sum"), "cls"),
        (lambda: lf.NLLLoss(weight=[1, 0.5, 2], ignore_index=1), "cls"),
        (lambda: lf.NLLLoss(reduction="sum"), "cls"),
    ],
    ids=[
        "huber",
        "huber-sum",
        "smoothl1",
        "smoothl1-b0",
        "margin",
        "margin-p2-weight",
        "nll-weight",
        "nll-sum",
    ],
)
def test_exact_agrees_with_float64(make, kind):
    rng = np.random.default_rng(6)
    out = _dyadic(rng, (4, 3)) * 2
    target = _dyadic(rng, (4, 3)) if kind == "reg" else np.array([0, 2, 1, 2])
    l64, lex = make(), make()
    assert lex.supports_exact
    v64 = l64.forward(out, target)
    ex_target = lf.numbers.exact_array(target) if kind == "reg" else target
    vex = lex.forward(lf.numbers.exact_array(out), ex_target)
    assert isinstance(vex, Fraction) and float(vex) == pytest.approx(v64, rel=1e-15)
    dex = lex.backward()
    assert dex.dtype == object and all(isinstance(v, Fraction) for v in dex.reshape(-1))
    np.testing.assert_allclose(dex.astype(np.float64), l64.backward(), rtol=1e-15)


def test_exact_huber_by_hand():
    loss = lf.HuberLoss(delta=0.5)
    out = lf.numbers.exact_array([[Fraction(1, 4), Fraction(2)]])
    value = loss.forward(out, lf.numbers.exact_array([[0, 0]]))
    assert value == (Fraction(1, 32) + Fraction(1, 2) * (2 - Fraction(1, 4))) / 2
    assert loss.backward().tolist() == [[Fraction(1, 8), Fraction(1, 4)]]


@pytest.mark.parametrize("loss", [lf.CrossEntropyLoss(weight=W3), lf.KLDivLoss()], ids=["ce", "kl"])
def test_not_exact(loss):
    out = lf.numbers.exact_array(np.zeros((2, 3)))
    target = np.array([0, 1]) if isinstance(loss, lf.CrossEntropyLoss) else np.full((2, 3), 1 / 3)
    with pytest.raises(lf.ExactnessError, match=f"{type(loss).__name__} cannot run in exact"):
        loss.forward(out, target)


# ---------------------------------------------------------------------------- config and training
ALL = [
    lf.NLLLoss(),
    lf.NLLLoss(W4, ignore_index=0, reduction="sum"),
    lf.CrossEntropyLoss(W4, ignore_index=-1, reduction="sum", label_smoothing=0.1),
    lf.MultiMarginLoss(2, 0.5, W4, reduction="sum"),
    lf.MultiMarginLoss(),
    lf.HuberLoss("sum", 0.5),
    lf.SmoothL1Loss(reduction="sum", beta=0.0),
    lf.KLDivLoss(reduction="batchmean", log_target=True),
]


@pytest.mark.parametrize("loss", ALL, ids=[f"{type(x).__name__}-{i}" for i, x in enumerate(ALL)])
def test_config_round_trip(loss):
    config = json.loads(json.dumps(loss.get_config()))  # plain JSON: weights as lists
    again = type(loss)(**config)
    assert again.get_config() == loss.get_config()
    assert lf.losses.registry[type(loss).__name__] is type(loss)
    assert getattr(lf, type(loss).__name__) is type(loss)
    rng = np.random.default_rng(7)
    x = rng.standard_normal((4, 4))
    y = np.abs(rng.standard_normal((4, 4))) if isinstance(loss, (lf.HuberLoss, lf.SmoothL1Loss)) else None
    if isinstance(loss, lf.KLDivLoss):
        x, y = _log_probs(x), _log_probs(rng.standard_normal((4, 4)))
    if y is None:
        y = np.array([0, 1, 2, 3])
    assert loss.forward(x, y) == again.forward(x, y)


def test_defaults_are_pytorchs():
    torch = pytest.importorskip("torch")
    pairs = [
        (lf.NLLLoss(), torch.nn.NLLLoss(), ["ignore_index", "reduction"]),
        (
            lf.CrossEntropyLoss(),
            torch.nn.CrossEntropyLoss(),
            ["ignore_index", "reduction", "label_smoothing"],
        ),
        (lf.MultiMarginLoss(), torch.nn.MultiMarginLoss(), ["p", "margin", "reduction"]),
        (lf.HuberLoss(), torch.nn.HuberLoss(), ["delta", "reduction"]),
        (lf.SmoothL1Loss(), torch.nn.SmoothL1Loss(), ["beta", "reduction"]),
        (lf.KLDivLoss(), torch.nn.KLDivLoss(), ["log_target", "reduction"]),
    ]
    for ours, theirs, names in pairs:
        for name in names:
            assert getattr(ours, name) == getattr(theirs, name), (type(ours).__name__, name)
        if hasattr(theirs, "weight"):
            assert ours.weight is None and theirs.weight is None


def test_a_log_softmax_classifier_learns_with_nll_and_class_weights():
    rng = np.random.default_rng(8)
    x = rng.standard_normal((60, 2)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int64)
    model = lf.Sequential(lf.Linear(2, 2, rng=0), lf.LogSoftmax(dim=1))
    loss = lf.NLLLoss(weight=[1.0, 3.0])
    values = []
    for _ in range(30):
        values.append(loss.forward(model.forward(x), y))
        model.zero_grad()
        model.backward(loss.backward(), need_input_delta=False)
        for param in model.parameters():  # plain gradient descent, lr 0.5
            param.value -= 0.5 * param.grad
    assert values[-1] < values[0] / 2


@pytest.mark.parametrize(
    "name,alias",
    [("NLLLoss", "nll"), ("HuberLoss", "huber"), ("SmoothL1Loss", "smooth_l1"), ("KLDivLoss", "kl_div")],
)
def test_fit_takes_the_names(name, alias):
    from learnflux.training.train import _resolve_loss

    assert type(_resolve_loss(alias)) is getattr(lf, name)
    assert type(_resolve_loss(name.lower())) is getattr(lf, name)


# ---------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    "make,target,error,match",
    [
        (
            lambda: lf.NLLLoss(),
            np.array([0, 1]),
            lf.ShapeError,
            r"NLLLoss: log-probabilities of shape \(3, 4\) need",
        ),
        (
            lambda: lf.NLLLoss(),
            np.array([0, 4, 1]),
            lf.IndexRangeError,
            r"NLLLoss: class label 4 .*ignore_index=-100",
        ),
        (lambda: lf.NLLLoss(ignore_index=4), np.array([0, 4, -1]), lf.IndexRangeError, "class label -1"),
        (
            lambda: lf.NLLLoss(),
            np.array([0.0, 1.0, 2.0]),
            lf.DtypeError,
            "NLLLoss: class labels must be integers",
        ),
        (lambda: lf.NLLLoss(), np.zeros((3, 4)), lf.DtypeError, "NLLLoss: class labels must be integers"),
        (
            lambda: lf.NLLLoss(weight=W3),
            np.array([0, 1, 2]),
            lf.ShapeError,
            "NLLLoss: weight has 3 values but",
        ),
        (lambda: lf.CrossEntropyLoss(weight=W3), np.array([0, 1, 2]), lf.ShapeError, "weight has 3 values"),
        (
            lambda: lf.CrossEntropyLoss(ignore_index=0),
            np.full((3, 4), 0.25),
            lf.DataError,
            "ignore_index=0 applies to class labels",
        ),
        (lambda: lf.CrossEntropyLoss(), np.array([0, -100, 9]), lf.IndexRangeError, "class label 9"),
        (
            lambda: lf.MultiMarginLoss(),
            np.array([0, 1, 4]),
            lf.IndexRangeError,
            r"MultiMarginLoss: class label 4 .*\]\)",
        ),
        (lambda: lf.MultiMarginLoss(), np.array([[0, 1]]), lf.ShapeError, "MultiMarginLoss: scores of shape"),
        (
            lambda: lf.MultiMarginLoss(),
            np.array([0.0, 1.0, 1.0]),
            lf.DtypeError,
            "MultiMarginLoss: class labels",
        ),
        (
            lambda: lf.HuberLoss(),
            np.zeros((3, 5)),
            lf.ShapeError,
            r"HuberLoss: the output has shape \(3, 4\)",
        ),
        (lambda: lf.KLDivLoss(), np.full((3, 4), 2.0), lf.DataError, "KLDivLoss: the target holds 2"),
        (
            lambda: lf.KLDivLoss(),
            np.full((3, 4), np.nan),
            lf.NonFiniteError,
            "KLDivLoss: the target holds 12",
        ),
        (
            lambda: lf.KLDivLoss(log_target=True),
            np.full((3, 4), 0.5),
            lf.DataError,
            r"log-probabilities \(<= 0\)",
        ),
        (lambda: lf.KLDivLoss(), np.zeros((3, 3)), lf.ShapeError, "KLDivLoss: the output has shape"),
    ],
)
def test_bad_targets(make, target, error, match):
    with pytest.raises(error, match=match):
        make().forward(np.zeros((3, 4)), target)


def test_bad_outputs():
    with pytest.raises(lf.ShapeError, match=r"MultiMarginLoss: expects scores of shape \(batch, classes\)"):
        lf.MultiMarginLoss().forward(np.zeros((2, 3, 4)), np.zeros((2, 4), np.int64))
    with pytest.raises(lf.ShapeError, match=r"NLLLoss: expects log-probabilities of shape"):
        lf.NLLLoss().forward(np.zeros(3), np.zeros((), np.int64))
    for loss in [lf.NLLLoss(), lf.MultiMarginLoss(), lf.HuberLoss(), lf.SmoothL1Loss(), lf.KLDivLoss()]:
        name = type(loss).__name__
        target = np.zeros((0,), np.int64) if name in ("NLLLoss", "MultiMarginLoss") else np.zeros((0, 3))
        with pytest.raises(lf.ShapeError, match=f"{name}: empty batch"):
            loss.forward(np.zeros((0, 3)), target)
        out = np.zeros((2, 3))
        out[1, 2] = np.nan
        target = np.array([0, 1]) if name in ("NLLLoss", "MultiMarginLoss") else np.zeros((2, 3))
        with pytest.raises(lf.NonFiniteError, match=f"{name}: the model output holds 1 non-finite"):
            loss.forward(out, target)
        with pytest.raises(lf.PhaseError, match=name):
            type(loss)().backward()


@pytest.mark.parametrize(
    "make,match",
    [
        (
            lambda: lf.NLLLoss(weight=[1.0, -0.5]),
            "NLLLoss: class weights must be >= 0 .*got -0.5 for class 1",
        ),
        (
            lambda: lf.CrossEntropyLoss(weight=[[1.0, 2.0]]),
            "CrossEntropyLoss: weight must be a list with one number",
        ),
        (lambda: lf.CrossEntropyLoss(weight=[]), "weight must be a list"),
        (lambda: lf.CrossEntropyLoss(weight=[1.0, np.inf]), "weight must hold finite numbers"),
        (lambda: lf.CrossEntropyLoss(weight=["a", "b"]), "weight must be a list"),
        (
            lambda: lf.CrossEntropyLoss("sum"),
            r"reduction is a keyword argument: CrossEntropyLoss\(reduction='sum'\)",
        ),
        (lambda: lf.NLLLoss(ignore_index=1.5), "NLLLoss: ignore_index must be an integer"),
        (lambda: lf.CrossEntropyLoss(ignore_index=True), "CrossEntropyLoss: ignore_index must be an integer"),
        (lambda: lf.NLLLoss(reduction="none"), "NLLLoss: reduction must be 'mean' or 'sum'"),
        (lambda: lf.MultiMarginLoss(p=3), "MultiMarginLoss: p must be 1 or 2"),
        (lambda: lf.MultiMarginLoss(margin="1"), "MultiMarginLoss: margin must be a number"),
        (lambda: lf.MultiMarginLoss(margin=np.nan), "MultiMarginLoss: margin must be finite"),
        (lambda: lf.MultiMarginLoss(weight=[1, -1]), "MultiMarginLoss: class weights must be >= 0"),
        (lambda: lf.HuberLoss(delta=0.0), r"HuberLoss: delta must be a finite number > 0, got 0.0"),
        (lambda: lf.HuberLoss(delta=-1), "HuberLoss: delta must be a finite number > 0"),
        (lambda: lf.SmoothL1Loss(beta=-0.5), "SmoothL1Loss: beta must be a finite number >= 0"),
        (lambda: lf.SmoothL1Loss(beta="x"), "SmoothL1Loss: beta must be a number"),
        (lambda: lf.KLDivLoss(reduction="none"), "KLDivLoss: reduction must be 'mean', 'batchmean' or 'sum'"),
        (lambda: lf.KLDivLoss(log_target=1), "KLDivLoss: log_target must be true or false"),
    ],
)
def test_bad_arguments(make, match):
    with pytest.raises(lf.ConfigError, match=match):
        make()
