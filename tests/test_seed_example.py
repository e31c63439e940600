"""The seed article's worked example ("The Weights"), replayed through the Python API.

Exact arithmetic must give every δ and every ŵ2 of the article; float64 and float32 behave as
docs/numbers.md explains (a rounding residue where the exact o2 is 0 decides what ReLU lets
through); a batch of n gives the mean of the per-sample gradients, exactly.
"""

from __future__ import annotations

from fractions import Fraction as F

import numpy as np
import pytest

import learnflux as lf

X = np.array([[100, 2000, 100], [200, 0, 0], [0, 2000, 3000]])
Y = np.array([[0], [1], [1]])
W2 = [F(1, 200), F(-3000, 11_600_000), F(1, 5800)]
#: the article's final weights: (1/200, 2000 − 3000/11600000, 3000 + 1/5800)
W2_FINAL = [F(1, 200), 2000 - F(3000, 11_600_000), 3000 + F(1, 5800)]


def seed_model(dtype="exact") -> lf.Sequential:
    model = lf.Sequential(lf.Input(3), lf.Linear(3, 1, bias=False), lf.ReLU()).astype(dtype)
    model.layers[1].weight.value = np.array([W2], dtype=object)
    return model


def run(dtype="exact", lr=1, batch_size=1, epochs=1, x=X, y=Y) -> lf.Trace:
    model = seed_model(dtype)
    return lf.trace.record(
        model,
        lf.SquaredError(),
        lf.SGD(model.parameters(), lr=lr),
        x,
        y,
        batch_size=batch_size,
        epochs=epochs,
    )


def flat(a) -> list:
    return list(np.asarray(a).reshape(-1))


# ---------------------------------------------------------------------------------- exact
def test_forward_table_before_training_is_the_articles():
    trace = run()
    snap = trace.initial
    assert [flat(o) for o in snap.outputs[:1]] == [flat(X)]
    assert flat(snap.outputs[1]) == [0, 1, 0]  # o2
    assert flat(snap.outputs[2]) == [0, 1, 0]  # o3
    assert snap.losses == [0, 0, F(1, 2)]
    assert all(isinstance(v, F) for v in flat(snap.outputs[1]))


def test_every_delta_and_every_update_of_the_article_exactly():
    trace = run()
    assert len(trace.steps) == 3
    s1, s2, s3 = trace.steps
    # samples 1 and 2: loss 0, nothing to learn
    for step, sample in ((s1, 0), (s2, 1)):
        assert step.samples == [sample]
        assert step.loss == 0
        assert flat(step.delta(4)) == [0] and flat(step.delta(3)) == [0]
        assert flat(step.delta(2)) == [0, 0, 0] and flat(step.delta(1)) == [0, 0, 0]
        assert flat(step.grads["w2"]) == [0, 0, 0]
        assert flat(step.weights_after["w2"]) == W2
    # sample 3: o2 = 0 exactly, ReLU'(0) = 1 lets δ4 = −1 through
    assert flat(s3.output(2)) == [0]
    assert s3.loss == F(1, 2)
    assert flat(s3.delta(4)) == [-1]  # δ4 = o3 − y
    assert flat(s3.delta(3)) == [-1]  # δ3 = δ4 if o2 ≥ 0 else 0
    assert flat(s3.delta(2)) == [-w for w in W2]  # δ2 = δ3 · w2
    assert flat(s3.delta(1)) == flat(s3.delta(2))  # δ1 = δ2
    assert flat(s3.grads["w2"]) == [0, -2000, -3000]  # δw2 = δ3 · o1
    assert flat(s3.weights_after["w2"]) == W2_FINAL  # ŵ2 = w2 − α·δw2


def test_final_weights_are_exactly_the_articles():
    trace = run()
    final = flat(trace.final.weights["w2"])
    assert final == W2_FINAL
    assert final == [F(1, 200), F(23199997, 11600), F(17400001, 5800)]
    assert all(isinstance(v, F) for v in final)


def test_learning_rate_1e_7_is_exactly_one_ten_millionth_in_exact_mode():
    trace = run(lr="1e-7")
    expected = [W2[0], W2[1] + F(2000, 10**7), W2[2] + F(3000, 10**7)]
    assert flat(trace.final.weights["w2"]) == expected
    assert expected == [F(1, 200), F(-17, 290000), F(137, 290000)]


# ---------------------------------------------------------------------------------- batches
def test_a_batch_gives_exactly_the_mean_of_the_per_sample_gradients():
    batch = run(batch_size=3).steps[0]
    per_sample = []
    for i in range(3):  # each sample alone, from the same start weights, no update
        model = seed_model()
        rec = lf.Recorder(model, lf.SquaredError(), None)
        per_sample.append(rec.step(X[i : i + 1], Y[i : i + 1]).grads["w2"])
    mean = sum(per_sample[1:], per_sample[0]) / 3
    assert flat(batch.grads["w2"]) == flat(mean) == [0, F(-2000, 3), -1000]
    assert flat(batch.delta(4)) == [0, 0, F(-1, 3)]  # the 1/n enters once, in the loss δ
    assert batch.loss == F(1, 6)  # the reported loss is the batch mean


def test_batch_convention_with_bias_and_random_exact_data():
    rng = np.random.default_rng(3)
    x = lf.numbers.exact_array(rng.integers(-5, 6, size=(4, 3)))
    y = lf.numbers.exact_array(rng.integers(-5, 6, size=(4, 2)))
    w = lf.numbers.exact_array(rng.integers(-3, 4, size=(2, 3)))

    def model():
        m = lf.Sequential(lf.Input(3), lf.Linear(3, 2), lf.LeakyReLU()).astype("exact")
        m.layers[1].weight.value = w
        m.layers[1].bias.value = [F(1, 3), F(-1, 2)]
        return m

    batch = lf.Recorder(model(), lf.SquaredError(), None).step(x, y)
    singles = [
        lf.Recorder(model(), lf.SquaredError(), None).step(x[i : i + 1], y[i : i + 1]) for i in range(4)
    ]
    for name in ("w2", "b2"):
        mean = sum((s.grads[name] for s in singles[1:]), singles[0].grads[name]) / 4
        assert flat(batch.grads[name]) == flat(mean)
    assert batch.loss == sum(s.loss for s in singles) / 4


def test_two_epochs_continue_from_the_weights_of_the_first():
    one = run()
    two = run(epochs=2)
    assert [s.epoch for s in two.steps] == [1, 1, 1, 2, 2, 2]
    assert [s.samples for s in two.steps] == [[0], [1], [2]] * 2
    # the second epoch starts from the first epoch's final weights ("after training" table)
    assert flat(two.steps[3].output(2)) == [one.final.outputs[1][0, 0]] == [4300000]
    # and every step sees the weights the previous step left: o2 = w2 · x, exactly
    for prev, step in zip(two.steps, two.steps[1:], strict=False):
        assert flat(step.weights_before["w2"]) == flat(prev.weights_after["w2"])
        w = prev.weights_after["w2"].reshape(-1)
        assert flat(step.output(2)) == [sum(wi * int(xi) for wi, xi in zip(w, step.x[0], strict=True))]


# ---------------------------------------------------------------------------------- floats
def test_float64_rounding_makes_o2_slightly_negative_so_nothing_is_learned():
    """docs/conventions.md, 'Numbers and dtypes': in float64 the third sample's o2 is a tiny
    negative residue (−1.1e−16 with left-to-right sums, −7.4e−17 with the fused multiply-adds of a
    BLAS dot), so ReLU blocks δ (δ3 = 0) and nothing is learned."""
    trace = run(np.float64)
    s3 = trace.steps[2]
    o2 = float(s3.output(2)[0, 0])
    assert -1e-15 < o2 < 0
    assert float(s3.delta(4)[0, 0]) == -1.0
    assert float(s3.delta(3)[0, 0]) == 0.0
    assert not np.any(s3.grads["w2"])
    start = np.array([float(w) for w in W2])
    np.testing.assert_array_equal(trace.final.weights["w2"].reshape(-1), start)


def test_float32_forward_table_is_the_articles_to_within_1e_7():
    trace = run(np.float32)
    assert trace.final.weights["w2"].dtype == np.float32
    np.testing.assert_allclose(
        trace.initial.outputs[1].reshape(-1).astype(np.float64), [0, 1, 0], rtol=0, atol=1e-7
    )


def test_float32_reproduces_the_articles_update_on_the_third_sample():
    """docs/conventions.md, 'Numbers and dtypes': from the article's weights, float32 gives
    o2 = +6e−8 for the third sample, so ReLU lets δ through and the article's update is reproduced
    to float32 rounding."""
    trace = run(np.float32, x=X[2:], y=Y[2:])
    step = trace.steps[0]
    o2 = float(step.output(2)[0, 0])
    assert 0 < o2 < 1e-7
    np.testing.assert_allclose(step.grads["w2"].reshape(-1), [0, -2000, -3000], rtol=1e-6)
    np.testing.assert_allclose(trace.final.weights["w2"].reshape(-1), [float(w) for w in W2_FINAL], rtol=1e-6)


def test_float32_with_a_small_learning_rate_stays_within_1e_6_of_exact():
    exact = run(lr="1e-7")
    f32 = run(np.float32, lr=1e-7)
    np.testing.assert_allclose(
        f32.final.weights["w2"].reshape(-1),
        [float(w) for w in exact.final.weights["w2"].reshape(-1)],
        rtol=1e-6,
    )


def test_float32_full_run_is_decided_by_the_first_samples_rounding_residue():
    """With α = 1 the first sample decides: its exact o2 is 0; in float32 it is a residue
    below 1e-7. A positive residue passes ReLU and, times o1 = (100, 2000, 100), moves w2 a lot
    (sample 3 then ends below 0 and learns nothing); zero or a negative one keeps w2 and the run
    reproduces the article approximately (docs/numbers.md)."""
    trace = run(np.float32)
    o2_first = float(trace.steps[0].output(2)[0, 0])
    assert abs(o2_first) < 1e-7
    final = trace.final.weights["w2"].reshape(-1).astype(np.float64)
    article = np.array([float(w) for w in W2_FINAL])
    if o2_first > 0:
        assert np.any(trace.steps[0].grads["w2"])
        assert float(trace.steps[2].delta(3)[0, 0]) == 0.0
        assert np.max(np.abs(final - article)) > 1
    else:
        np.testing.assert_allclose(final, article, rtol=1e-6)


@pytest.mark.parametrize("dtype", ["exact", np.float32, np.float64])
def test_the_readme_quickstart_loop_matches_the_trace(dtype):
    model = seed_model(dtype)
    loss, opt = lf.SquaredError(), lf.SGD(model.parameters(), lr=1)
    for i in range(3):
        loss(model(X[i : i + 1]), Y[i : i + 1])
        model.backward(loss.backward())
        opt.step()
    trace = run(dtype)
    assert flat(model.layers[1].weight.value) == flat(trace.final.weights["w2"])
