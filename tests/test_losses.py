"""Losses: finite-difference checks of δ (float64), PyTorch parity (value and δ), dtypes, exact
arithmetic, stability and error messages."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

import learnflux as lf

# ---------------------------------------------------------------------------- the cases
# (id, loss factory, torch factory (nn) or None, sample(rng) -> (output, target))


def _logits(shape):
    return lambda rng: rng.standard_normal(shape) * 2


def _ce_indices(shape, classes=4):
    def sample(rng):
        out = rng.standard_normal(shape) * 2
        labels = rng.integers(0, classes, size=(shape[0], *shape[2:]))
        return out, labels

    return sample


def _ce_probs(shape):
    def sample(rng):
        out = rng.standard_normal(shape) * 2
        q = rng.random(shape) + 0.1
        q /= q.sum(axis=1, keepdims=True)
        return out, q

    return sample


def _binary(shape):
    def sample(rng):
        return rng.standard_normal(shape) * 3, rng.random(shape)

    return sample


def _regression(shape):
    def sample(rng):
        return rng.standard_normal(shape), rng.standard_normal(shape)

    return sample


CASES = []
for red in ("mean", "sum"):
    for eps in (0.0, 0.1):
        kw = {"reduction": red, "label_smoothing": eps}
        tag = f"{red}-ls{eps}"
        CASES += [
            (
                f"ce-indices-{tag}",
                lambda kw=kw: lf.CrossEntropyLoss(**kw),
                lambda nn, kw=kw: nn.CrossEntropyLoss(**kw),
                _ce_indices((5, 4)),
            ),
            (
                f"ce-indices-2d-{tag}",
                lambda kw=kw: lf.CrossEntropyLoss(**kw),
                lambda nn, kw=kw: nn.CrossEntropyLoss(**kw),
                _ce_indices((2, 3, 2, 3), classes=3),
            ),
            (
                f"ce-probs-{tag}",
                lambda kw=kw: lf.CrossEntropyLoss(**kw),
                lambda nn, kw=kw: nn.CrossEntropyLoss(**kw),
                _ce_probs((5, 4)),
            ),
            (
                f"ce-probs-2d-{tag}",
                lambda kw=kw: lf.CrossEntropyLoss(**kw),
                lambda nn, kw=kw: nn.CrossEntropyLoss(**kw),
                _ce_probs((2, 3, 2, 2)),
            ),
        ]
    rk = {"reduction": red}
    CASES += [
        (
            f"bce-{red}",
            lambda rk=rk: lf.BCEWithLogitsLoss(**rk),
            lambda nn, rk=rk: nn.BCEWithLogitsLoss(**rk),
            _binary((4, 3)),
        ),
        (
            f"bce-image-{red}",
            lambda rk=rk: lf.BCEWithLogitsLoss(**rk),
            lambda nn, rk=rk: nn.BCEWithLogitsLoss(**rk),
            _binary((2, 1, 3, 3)),
        ),
        (
            f"mse-{red}",
            lambda rk=rk: lf.MSELoss(**rk),
            lambda nn, rk=rk: nn.MSELoss(**rk),
            _regression((4, 3)),
        ),
        (
            f"mse-image-{red}",
            lambda rk=rk: lf.MSELoss(**rk),
            lambda nn, rk=rk: nn.MSELoss(**rk),
            _regression((2, 2, 3, 3)),
        ),
        (f"l1-{red}", lambda rk=rk: lf.L1Loss(**rk), lambda nn, rk=rk: nn.L1Loss(**rk), _regression((4, 3))),
    ]
CASES.append(("squared-error", lambda: lf.SquaredError(), None, _regression((4, 3))))

IDS = [c[0] for c in CASES]


def _numerical_delta(loss, out, target, h=1e-6):
    num = np.zeros_like(out)
    flat_out, flat_num = out.reshape(-1), num.reshape(-1)
    for i in range(flat_out.size):
        keep = flat_out[i]
        flat_out[i] = keep + h
        plus = loss.forward(out, target)
        flat_out[i] = keep - h
        minus = loss.forward(out, target)
        flat_out[i] = keep
        flat_num[i] = (plus - minus) / (2 * h)
    return num


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_delta_matches_finite_differences(case):
    _, make, _, sample = case
    rng = np.random.default_rng(0)
    out, target = sample(rng)
    loss = make()
    loss.forward(out, target)
    delta = loss.backward().copy()
    assert delta.shape == out.shape and delta.dtype == np.float64
    num = _numerical_delta(make(), out.copy(), target)
    np.testing.assert_allclose(delta, num, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize(
    "dtype,rtol,atol",
    [(np.float64, 1e-10, 1e-12), (np.float32, 1e-4, 1e-6)],
    ids=["float64", "float32"],
)
@pytest.mark.parametrize(
    "case", [c for c in CASES if c[2] is not None], ids=[c[0] for c in CASES if c[2] is not None]
)
def test_torch_parity(case, dtype, rtol, atol):
    torch = pytest.importorskip("torch")
    _, make, make_torch, sample = case
    rng = np.random.default_rng(1)
    out, target = sample(rng)
    out = out.astype(dtype)
    if target.dtype.kind == "f":
        target = target.astype(dtype)
    loss = make()
    value = loss.forward(out, target)
    delta = loss.backward()
    assert isinstance(value, float)
    assert delta.dtype == dtype, f"δ is {delta.dtype}, expected {np.dtype(dtype)}"
    t_out = torch.from_numpy(out.copy()).requires_grad_(True)
    t_value = make_torch(torch.nn)(t_out, torch.from_numpy(target.copy()))
    t_value.backward()
    np.testing.assert_allclose(value, t_value.item(), rtol=rtol, atol=atol)
    np.testing.assert_allclose(delta, t_out.grad.numpy(), rtol=rtol, atol=atol)


# ---------------------------------------------------------------------------- behaviour
def test_cross_entropy_is_stable_for_huge_logits():
    torch = pytest.importorskip("torch")
    out = np.array([[1e4, -1e4, 0.0], [-3e4, 3e4, 2e4]], dtype=np.float32)
    labels = np.array([1, 0])
    loss = lf.CrossEntropyLoss()
    value = loss.forward(out, labels)
    delta = loss.backward()
    assert np.isfinite(value) and np.all(np.isfinite(delta))
    t_out = torch.from_numpy(out.copy()).requires_grad_(True)
    t_value = torch.nn.functional.cross_entropy(t_out, torch.from_numpy(labels))
    t_value.backward()
    assert value == pytest.approx(t_value.item(), rel=1e-6)  # (2e4 + 6e4) / 2
    np.testing.assert_allclose(delta, t_out.grad.numpy(), atol=1e-7)


def test_bce_with_logits_is_stable_for_huge_logits():
    out = np.array([[800.0, -800.0, 40.0]])
    y = np.array([[0.0, 1.0, 1.0]])
    loss = lf.BCEWithLogitsLoss(reduction="sum")
    value = loss.forward(out, y)
    # −ln σ(−800) = 800, −ln σ(−800) = 800, −ln σ(40) = ln(1 + e^−40)
    assert value == pytest.approx(1600 + np.log1p(np.exp(-40.0)), rel=1e-15)
    np.testing.assert_allclose(loss.backward(), [[1.0, -1.0, 0.0]], rtol=0, atol=1e-16)


def test_cross_entropy_value_by_hand():
    # logits (0, ln 3): softmax (1/4, 3/4); label 1 → −ln(3/4); δ = (1/4, −1/4) / 1
    out = np.array([[0.0, np.log(3.0)]])
    loss = lf.CrossEntropyLoss()
    assert loss.forward(out, [1]) == pytest.approx(-np.log(0.75), rel=1e-14)
    np.testing.assert_allclose(loss.backward(), [[0.25, -0.25]], rtol=1e-14)
    # mean over a batch of two: δ carries the 1/n once
    out2 = np.repeat(out, 2, axis=0)
    assert loss.forward(out2, [1, 1]) == pytest.approx(-np.log(0.75), rel=1e-14)
    np.testing.assert_allclose(loss.backward(), [[0.125, -0.125]] * 2, rtol=1e-14)


def test_cross_entropy_indices_equal_one_hot_probabilities():
    rng = np.random.default_rng(2)
    out = rng.standard_normal((6, 5))
    labels = rng.integers(0, 5, 6)
    a, b = lf.CrossEntropyLoss(label_smoothing=0.2), lf.CrossEntropyLoss(label_smoothing=0.2)
    va = a.forward(out, labels)
    vb = b.forward(out, np.eye(5)[labels])
    assert va == pytest.approx(vb, rel=1e-13)
    np.testing.assert_allclose(a.backward(), b.backward(), rtol=1e-12, atol=1e-15)


def test_cross_entropy_accepts_column_labels_and_lists():
    out = np.random.default_rng(3).standard_normal((3, 4)).astype(np.float32)
    loss = lf.CrossEntropyLoss()
    v1 = loss.forward(out, np.array([[0], [3], [2]]))
    d1 = loss.backward().copy()
    v2 = loss.forward(out, [0, 3, 2])
    assert v1 == v2
    np.testing.assert_array_equal(d1, loss.backward())


def test_l1_derivative_is_zero_at_zero():
    loss = lf.L1Loss()
    out = np.array([[1.0, 2.0], [3.0, 5.0]])
    y = np.array([[1.0, 1.0], [4.0, 5.0]])
    assert loss.forward(out, y) == pytest.approx(0.5)
    np.testing.assert_array_equal(loss.backward(), [[0.0, 0.25], [-0.25, 0.0]])
    # the same in exact arithmetic: sign(0) = 0 there too, and every δ a Fraction
    exact = lf.L1Loss()
    assert exact.forward(lf.numbers.exact_array(out), lf.numbers.exact_array(y)) == Fraction(1, 2)
    d = exact.backward()
    assert d.tolist() == [[0, Fraction(1, 4)], [Fraction(-1, 4), 0]]
    assert all(isinstance(v, Fraction) for v in d.reshape(-1))


def test_mse_is_torch_mean_without_half():
    out = np.array([[1.0, 2.0], [3.0, 4.0]])
    y = np.zeros((2, 2))
    mse, se = lf.MSELoss(), lf.SquaredError()
    assert mse.forward(out, y) == pytest.approx(30 / 4)
    np.testing.assert_allclose(mse.backward(), out / 2)  # 2(o − y)/N, N = 4
    assert se.forward(out, y) == pytest.approx(30 / 4)  # ½·Σ over neurons, mean over 2 samples
    assert lf.MSELoss("sum").forward(out, y) == pytest.approx(30.0)


def _normalised(q):
    return q / q.sum(axis=1, keepdims=True)


def test_float32_in_float32_out():
    rng = np.random.default_rng(4)
    out = rng.standard_normal((8, 3)).astype(np.float32)
    for loss, target in [
        (lf.CrossEntropyLoss(label_smoothing=0.1), rng.integers(0, 3, 8)),
        (lf.CrossEntropyLoss(), _normalised(rng.random((8, 3)))),  # float64: cast, not upcast
        (lf.BCEWithLogitsLoss(), rng.integers(0, 2, (8, 3))),
        (lf.MSELoss(), rng.standard_normal((8, 3))),
        (lf.L1Loss(), rng.standard_normal((8, 3))),
    ]:
        value = loss.forward(out, target)
        assert isinstance(value, float)
        assert loss.backward().dtype == np.float32, type(loss).__name__


@pytest.mark.parametrize("cls", [lf.MSELoss, lf.L1Loss])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_exact_regression_losses_agree_with_float64(cls, reduction):
    rng = np.random.default_rng(5)
    out = np.round(rng.standard_normal((3, 2)) * 8) / 8
    y = np.round(rng.standard_normal((3, 2)) * 8) / 8
    l64 = cls(reduction=reduction)
    v64 = l64.forward(out, y)
    lex = cls(reduction=reduction)
    vex = lex.forward(lf.numbers.exact_array(out), lf.numbers.exact_array(y))
    assert isinstance(vex, Fraction) and float(vex) == pytest.approx(v64, rel=1e-15)
    dex = lex.backward()
    assert dex.dtype == object and all(isinstance(v, Fraction) for v in dex.reshape(-1))
    np.testing.assert_allclose(dex.astype(np.float64), l64.backward(), rtol=1e-15)


def test_config_round_trip_and_training_integration():
    for loss in [
        lf.CrossEntropyLoss(reduction="sum", label_smoothing=0.1),
        lf.BCEWithLogitsLoss("sum"),
        lf.MSELoss(),
        lf.L1Loss("sum"),
    ]:
        again = type(loss)(**loss.get_config())
        assert again.get_config() == loss.get_config()
        assert vars(again)["reduction"] == loss.reduction
    # a softmax classifier learns a separable problem with CrossEntropyLoss
    rng = np.random.default_rng(6)
    x = rng.standard_normal((60, 2)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int64)
    model = lf.Sequential(lf.Linear(2, 2, rng=0))
    loss, opt = lf.CrossEntropyLoss(), lf.SGD(model.parameters(), lr=0.5)
    first = None
    for _ in range(30):
        value = loss.forward(model.forward(x), y)
        first = value if first is None else first
        model.zero_grad()
        model.backward(loss.backward(), need_input_delta=False)
        opt.step()
    assert value < first / 2


# ---------------------------------------------------------------------------- errors
def test_backward_before_forward():
    with pytest.raises(lf.PhaseError, match="CrossEntropyLoss"):
        lf.CrossEntropyLoss().backward()


@pytest.mark.parametrize(
    "target,error,match",
    [
        (np.array([0, 1]), lf.ShapeError, r"CrossEntropyLoss: .*shape \(3,\).*got labels of shape"),
        (np.array([0, 1, 4]), lf.IndexRangeError, r"CrossEntropyLoss: class label 4 is out of range"),
        (np.array([0, -1, 2]), lf.IndexRangeError, r"CrossEntropyLoss: class label -1"),
        (np.array([0.0, 1.0, 2.0]), lf.DtypeError, r"CrossEntropyLoss: class labels must be int"),
        (np.array(["a", "b", "c"]), lf.DtypeError, r"CrossEntropyLoss: the target must be"),
        (np.array([True, False, True]), lf.DtypeError, r"CrossEntropyLoss"),
        (np.ones((3, 5)), lf.ShapeError, r"CrossEntropyLoss: class probabilities must have"),
    ],
    ids=["short", "too-high", "negative", "float-labels", "strings", "bools", "prob-shape"],
)
def test_cross_entropy_errors(target, error, match):
    out = np.zeros((3, 4), dtype=np.float32)
    with pytest.raises(error, match=match):
        lf.CrossEntropyLoss().forward(out, target)


def test_other_errors_name_the_loss():
    out = np.zeros((3, 2))
    with pytest.raises(lf.ShapeError, match=r"BCEWithLogitsLoss: the output has shape \(3, 2\)"):
        lf.BCEWithLogitsLoss().forward(out, np.zeros((3, 3)))
    with pytest.raises(lf.ShapeError, match="MSELoss"):
        lf.MSELoss().forward(out, np.zeros(3))
    with pytest.raises(lf.DtypeError, match="L1Loss: the target must hold real numbers"):
        lf.L1Loss().forward(out, np.full((3, 2), "x"))
    with pytest.raises(lf.DtypeError, match="MSELoss: the model output"):
        lf.MSELoss().forward(np.full((3, 2), "x"), out)
    with pytest.raises(lf.ShapeError, match=r"CrossEntropyLoss: expects logits of shape"):
        lf.CrossEntropyLoss().forward(np.zeros(3), np.zeros(3, dtype=np.int64))
    with pytest.raises(lf.ExactnessError, match="CrossEntropyLoss cannot run in exact"):
        lf.CrossEntropyLoss().forward(lf.numbers.exact_array(out), [0, 1, 1])
    with pytest.raises(lf.ConfigError, match="reduction must be 'mean' or 'sum'"):
        lf.MSELoss(reduction="none")
    with pytest.raises(lf.ConfigError, match="label_smoothing"):
        lf.CrossEntropyLoss(label_smoothing=1.5)


def test_losses_are_exported():
    from learnflux import losses

    for name in ["CrossEntropyLoss", "BCEWithLogitsLoss", "MSELoss", "L1Loss", "SquaredError"]:
        assert getattr(lf, name) is getattr(losses, name)


# ---------------------------------------------------------------------------- trust: bad values
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize(
    "loss,target",
    [
        (lf.CrossEntropyLoss(), np.array([0, 1, 1])),
        (lf.BCEWithLogitsLoss(), np.zeros((3, 2))),
        (lf.MSELoss(), np.zeros((3, 2))),
        (lf.L1Loss(), np.zeros((3, 2))),
        (lf.SquaredError(), np.zeros((3, 2))),
    ],
    ids=["ce", "bce", "mse", "l1", "squared"],
)
def test_non_finite_output_is_refused_naming_the_loss(loss, target, bad):
    out = np.zeros((3, 2), dtype=np.float32)
    out[1, 1] = bad
    name = type(loss).__name__
    with pytest.raises(
        lf.NonFiniteError, match=rf"{name}: the model output holds 1 non-finite value\(s\) .*\(1, 1\)"
    ):
        loss.forward(out, target)


@pytest.mark.parametrize("loss", [lf.MSELoss(), lf.L1Loss(), lf.SquaredError(), lf.BCEWithLogitsLoss()])
def test_non_finite_target_is_refused(loss):
    target = np.zeros((3, 2))
    target[2, 0] = np.nan
    with pytest.raises(lf.NonFiniteError, match=rf"{type(loss).__name__}: the target holds 1 non-finite"):
        loss.forward(np.zeros((3, 2)), target)


@pytest.mark.parametrize(
    "target,match",
    [
        (np.array([[0.5, 0.7], [0.5, 0.5]]), r"sample 0 sums to 1\.2"),
        (np.array([[1.5, -0.5], [0.5, 0.5]]), r"holds -0\.5; probabilities must be in \[0, 1\]"),
        (np.array([[0.2, 0.2], [0.5, 0.5]]), r"sample 0 sums to 0\.4"),
    ],
    ids=["over", "negative", "under"],
)
def test_probability_targets_are_validated(target, match):
    with pytest.raises(lf.DataError, match=rf"CrossEntropyLoss: .*{match}"):
        lf.CrossEntropyLoss().forward(np.zeros((2, 2)), target)
    ok = np.array([[0.25, 0.75], [1.0, 0.0]])
    assert np.isfinite(lf.CrossEntropyLoss().forward(np.zeros((2, 2)), ok))


def test_bce_targets_must_be_probabilities():
    with pytest.raises(lf.DataError, match=r"BCEWithLogitsLoss: the target holds 2"):
        lf.BCEWithLogitsLoss().forward(np.zeros((2, 1)), np.array([[1.0], [2.0]]))


@pytest.mark.parametrize(
    "loss", [lf.MSELoss(), lf.L1Loss(), lf.SquaredError(), lf.BCEWithLogitsLoss(), lf.CrossEntropyLoss()]
)
def test_an_empty_batch_is_refused(loss):
    target = np.zeros((0,), dtype=np.int64) if isinstance(loss, lf.CrossEntropyLoss) else np.zeros((0, 3))
    with pytest.raises(lf.ShapeError, match=rf"{type(loss).__name__}: empty batch"):
        loss.forward(np.zeros((0, 3)), target)


def test_fit_with_terminate_on_nan_reports_a_loss_refusal_as_a_non_finite_step():
    lf.seed(0)
    model = lf.Sequential(lf.Input(3), lf.Linear(3, 4), lf.ReLU(), lf.Linear(4, 2))
    w = model.layers[1].weight.value.copy()
    w[0, 0] = np.nan
    model.layers[1].weight.value = w
    x, y = np.ones((8, 3), np.float32), np.arange(8) % 2
    kw = dict(epochs=2, batch_size=4, loss=lf.CrossEntropyLoss(), verbose=0)
    with pytest.raises(lf.NonFiniteError, match=r"CrossEntropyLoss: the model output holds"):
        model.fit(x, y, **kw)
    term = lf.TerminateOnNaN(raise_error=False)
    history = model.fit(x, y, callbacks=[term], **kw)
    assert "output of Linear(3 → 4) at '1' became NaN" in term.message
    assert history.stop_reason == term.message and len(history) == 1
