"""The fit loop: learning, history, determinism, accumulation, clipping, evaluate and predict."""

import io

import numpy as np
import pytest

import learnflux as lf
from learnflux.train import Evaluator, FitOptions, Trainer


def blobs(n=120, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    centres = np.array([[2.0, 0.0], [-2.0, 1.0], [0.0, -2.5]])
    x = (centres[y] + 0.6 * rng.standard_normal((n, 2))).astype(np.float32)
    return x, y


def mlp(seed=0, dtype=np.float32):
    lf.seed(seed)
    layers = (lf.Input(2), lf.Linear(2, 16), lf.ReLU(), lf.Dropout(0.1), lf.Linear(16, 3))
    return lf.Sequential(*layers).astype(dtype)


def weights(model):
    return {k: v.copy() for k, v in model.state_dict().items()}


def test_fit_learns_and_records_history():
    x, y = blobs()
    xv, yv = blobs(60, seed=1)
    model = mlp()
    hist = model.fit(
        x,
        y,
        epochs=8,
        batch_size=16,
        loss=lf.CrossEntropyLoss(),
        optimizer=lf.Adam(model.parameters(), lr=0.02),
        validation_data=(xv, yv),
        seed=0,
        verbose=0,
    )
    assert isinstance(hist, lf.History)
    assert hist.epoch == list(range(8))
    assert set(hist.history) == {"loss", "accuracy", "lr", "val_loss", "val_accuracy"}
    assert all(len(v) == 8 for v in hist.history.values())
    assert hist.history["loss"][-1] < hist.history["loss"][0] / 3
    assert hist.history["val_accuracy"][-1] > 0.9
    assert model.training  # the phase the model had is restored
    result = model.evaluate(xv, yv)  # remembers the loss and metrics of fit
    assert set(result) == {"loss", "accuracy"}
    assert result["accuracy"] == pytest.approx(hist.history["val_accuracy"][-1])
    assert result["loss"] == pytest.approx(hist.history["val_loss"][-1], rel=1e-6)
    assert "epoch,loss,accuracy,lr,val_loss,val_accuracy" in hist.to_csv()


def test_regression_targets_get_no_accuracy_by_default():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 3)).astype(np.float32)
    y = x @ np.array([[1.0], [-2.0], [0.5]], dtype=np.float32)
    model = lf.Sequential(lf.Input(3), lf.Linear(3, 1))
    hist = model.fit(
        x, y, epochs=30, batch_size=8, optimizer=lf.SGD(model.parameters(), lr=0.05), verbose=0, seed=0
    )
    assert set(hist.history) == {"loss", "lr"}
    assert hist.history["loss"][-1] < 1e-3


def test_same_seed_gives_bit_identical_weights():
    x, y = blobs()

    def train(seed):
        model = mlp(seed=0)
        model.fit(
            x,
            y,
            epochs=3,
            batch_size=10,
            loss=lf.CrossEntropyLoss(),
            optimizer=lf.Adam(model.parameters(), lr=0.01),
            seed=seed,
            verbose=0,
        )
        return weights(model)

    a, b, c = train(1), train(1), train(2)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    assert any(not np.array_equal(a[k], c[k]) for k in a)


def test_accumulation_equals_one_bigger_batch():
    x, y = blobs(48)
    x = x.astype(np.float64)
    runs = []
    for batch_size, accumulate in ((16, 1), (8, 2), (4, 4)):
        lf.seed(3)
        model = lf.Sequential(lf.Input(2), lf.Linear(2, 8), lf.Tanh(), lf.Linear(8, 3)).astype(np.float64)
        model.fit(
            x,
            y,
            epochs=2,
            batch_size=batch_size,
            accumulate=accumulate,
            shuffle=False,
            loss=lf.CrossEntropyLoss(),
            optimizer=lf.SGD(model.parameters(), lr=0.5),
            verbose=0,
        )
        runs.append(weights(model))
    for other in runs[1:]:
        for k in runs[0]:
            np.testing.assert_allclose(other[k], runs[0][k], rtol=1e-12, atol=1e-14)


def test_accumulation_with_a_partial_last_group():
    # 5 batches with accumulate=2: updates after batches 2, 4 and 5 (the last one alone)
    x, y = blobs(10)
    lf.seed(0)
    model = lf.Sequential(lf.Input(2), lf.Linear(2, 3)).astype(np.float64)
    ref = lf.Sequential(lf.Input(2), lf.Linear(2, 3)).astype(np.float64)
    ref.load_state_dict(weights(model))
    trainer = Trainer(
        model,
        loss=lf.CrossEntropyLoss(),
        optimizer=lf.SGD(model.parameters(), lr=0.1),
        accumulate=2,
        verbose=0,
    )
    trainer.fit(x.astype(np.float64), y, epochs=1, batch_size=2, shuffle=False)
    assert trainer.global_step == 3
    loss, opt = lf.CrossEntropyLoss(), lf.SGD(ref.parameters(), lr=0.1)
    for sl in (slice(0, 4), slice(4, 8), slice(8, 10)):
        loss(ref(x[sl].astype(np.float64)), y[sl])
        ref.backward(loss.backward(), need_input_delta=False)
        opt.step()
    for k, v in weights(ref).items():
        np.testing.assert_allclose(model.state_dict()[k], v, rtol=1e-12)


def test_clip_norm_limits_the_update():
    x, y = blobs(16)
    lf.seed(0)
    model = lf.Sequential(lf.Input(2), lf.Linear(2, 3))
    before = weights(model)
    model.fit(
        x * 1000,
        y,
        epochs=1,
        batch_size=16,
        clip_norm=0.5,
        loss=lf.CrossEntropyLoss(),
        optimizer=lf.SGD(model.parameters(), lr=1.0),
        verbose=0,
    )
    change = np.sqrt(sum(((model.state_dict()[k] - before[k]) ** 2).sum() for k in before))
    assert change == pytest.approx(0.5, rel=1e-4)


def test_scheduler_argument_changes_the_learning_rate():
    x, y = blobs(32)
    model = mlp()
    opt = lf.SGD(model.parameters(), lr=0.1)
    hist = model.fit(
        x,
        y,
        epochs=4,
        batch_size=16,
        loss=lf.CrossEntropyLoss(),
        optimizer=opt,
        scheduler=lf.optim.StepLR(opt, step_size=1, gamma=0.5),
        verbose=0,
    )
    assert hist.history["lr"] == pytest.approx([0.1, 0.05, 0.025, 0.0125])


def test_fit_accepts_an_array_loader():
    x, y = blobs(40)
    model = mlp()
    loader = lf.data.ArrayLoader(x, y, batch_size=8, seed=0)
    hist = model.fit(
        loader,
        epochs=2,
        loss=lf.CrossEntropyLoss(),
        optimizer=lf.Adam(model.parameters(), lr=0.01),
        verbose=0,
    )
    assert hist.epoch == [0, 1] and set(hist.history) == {"loss", "accuracy", "lr"}
    assert loader.epoch == 2  # the loader's own epochs 0 and 1, in its seeded orders
    # the same steps by hand, over a twin loader (same seed, same orders) and a twin model
    twin = mlp()
    loss, opt = lf.CrossEntropyLoss(), lf.Adam(twin.parameters(), lr=0.01)
    by_hand = lf.data.ArrayLoader(x, y, batch_size=8, seed=0)
    for epoch in range(2):
        values = []
        for xb, yb in by_hand:
            values.append(loss(twin(xb), yb))
            twin.backward(loss.backward(), need_input_delta=False)
            opt.step()
        assert hist.history["loss"][epoch] == pytest.approx(np.mean(values), rel=1e-6)
    for k, v in weights(twin).items():
        np.testing.assert_array_equal(model.state_dict()[k], v, err_msg=k)


def test_predict_is_batched_and_in_the_inference_phase():
    x, _ = blobs(50)
    model = mlp()
    full = model.predict(x, batch_size=None)
    np.testing.assert_allclose(model.predict(x, batch_size=7), full, rtol=1e-6)
    assert model.training
    np.testing.assert_array_equal(model.predict(x), full)  # dropout is off in inference


def test_verbose_output_and_quiet_mode(capsys):
    x, y = blobs(20)
    model = mlp()
    model.fit(x, y, epochs=2, loss=lf.CrossEntropyLoss(), verbose=0)
    assert capsys.readouterr().out == ""
    model.fit(x, y, epochs=2, loss=lf.CrossEntropyLoss(), verbose=2)
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("epoch 1/2 · loss ")
    model.fit(x, y, epochs=1, loss=lf.CrossEntropyLoss(), verbose="auto")  # stdout is not a tty here
    assert capsys.readouterr().out == ""


def test_progress_bar_on_a_terminal():
    from learnflux.training.progress import Progress

    class Tty(io.StringIO):
        def isatty(self):
            return True

    stream = Tty()
    p = Progress(1, stream=stream)
    assert p.use_bar
    p.epoch_begin(0, 1, 3)
    for _ in range(3):
        p.batch_end({"loss": 0.5, "accuracy": 0.75})
    p.epoch_end({"loss": 0.5, "accuracy": 0.75})
    text = stream.getvalue()
    assert "epoch 1/1" in text and "3/3" in text and "accuracy 0.7500" in text


def test_bad_arguments_are_clear_errors():
    x, y = blobs(20)
    model = mlp()
    with pytest.raises(lf.ConfigError, match="batch_size"):
        model.fit(x, y, batch_size=0, verbose=0)
    with pytest.raises(lf.ConfigError, match="accumulate"):
        model.fit(x, y, accumulate=0, verbose=0)
    with pytest.raises(lf.ShapeError, match="20 samples but y has 19"):
        model.fit(x, y[:19], verbose=0)
    with pytest.raises(lf.ConfigError, match="unknown loss") as info:
        model.fit(x, y, loss="hinge", verbose=0)
    # the message lists the public losses and the aliases, nothing private or abstract
    assert "MultiMarginLoss" in str(info.value) and "multi_margin" in str(info.value)
    assert "_" + "MappingProxyType" not in str(info.value) and " Loss," not in str(info.value)
    with pytest.raises(lf.ConfigError, match="validation_data"):
        model.fit(x, y, validation_data=x, verbose=0)


def test_validation_split_holds_out_the_last_samples_like_keras():
    x, y = blobs(100)
    kw = dict(epochs=2, batch_size=16, loss=lf.CrossEntropyLoss(), seed=3, verbose=0)
    model = mlp()  # (built just before its fit: Dropout draws from the global generator)
    hist = model.fit(x, y, optimizer=lf.SGD(model.parameters(), lr=0.1), validation_split=0.2, **kw)
    twin = mlp()
    same = twin.fit(
        x[:80], y[:80], optimizer=lf.SGD(twin.parameters(), lr=0.1), validation_data=(x[80:], y[80:]), **kw
    )
    assert hist.history["val_loss"] == same.history["val_loss"]
    assert hist.history["loss"] == same.history["loss"]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"validation_split": 1.5}, "fraction in"),
        ({"validation_split": 0.99}, "both need at least one"),
        ({"validation_split": 0.2, "validation_data": "given"}, "not both"),
    ],
)
def test_validation_split_errors(kwargs, message):
    x, y = blobs(20)
    if kwargs.get("validation_data") == "given":
        kwargs["validation_data"] = (x, y)
    model = mlp()
    with pytest.raises(lf.ConfigError, match=message):
        model.fit(
            x,
            y,
            loss=lf.CrossEntropyLoss(),
            optimizer=lf.SGD(model.parameters(), lr=0.1),
            verbose=0,
            **kwargs,
        )


def test_evaluate_verbose_prints_the_result_line(capsys):
    x, y = blobs(30)
    model = mlp()
    quiet = model.evaluate(x, y, loss=lf.CrossEntropyLoss())
    assert capsys.readouterr().out == ""
    loud = model.evaluate(x, y, loss=lf.CrossEntropyLoss(), verbose=1)
    out = capsys.readouterr().out
    assert loud == quiet and out.startswith("evaluate: loss ") and "accuracy" in out


# ---------------------------------------------------------------------------- the options object
@pytest.mark.parametrize(
    "field, value, message",
    [
        ("epochs", -1, "epochs must be a non-negative integer, got -1"),
        ("batch_size", 2.0, "batch_size must be a positive integer, got 2.0"),
        ("accumulate", True, "accumulate must be a positive integer, got True"),
        ("initial_epoch", -2, "initial_epoch must be a non-negative integer"),
        ("clip_norm", 0.0, "clip_norm must be positive"),
        ("clip_value", -1, "clip_value must be positive"),
        ("scheduler_interval", "batch", "scheduler_interval must be 'epoch' or 'step', got 'batch'"),
        ("verbose", 3, "verbose must be 0, 1, 2 or 'auto', got 3"),
        ("validation_split", 1.0, r"validation_split must be a fraction in \(0, 1\)"),
    ],
)
def test_fit_options_are_checked_once_when_built(field, value, message):
    with pytest.raises(lf.ConfigError, match=message):
        FitOptions(**{field: value})
    options = FitOptions()
    with pytest.raises(lf.ConfigError, match=message):  # a copy is checked too
        options.replace(**{field: value})
    with pytest.raises(lf.ConfigError, match=message):  # and fit builds one before any work
        mlp().fit(*blobs(10), **{field: value})


def test_the_argument_lists_cover_the_options_exactly():
    import dataclasses

    fields = {f.name for f in dataclasses.fields(FitOptions)}
    assert set(lf.train.FIT_ARGUMENTS) == fields | {"validation_data"}
    assert set(lf.train.TRAINER_ARGUMENTS) | set(lf.train.CALL_ARGUMENTS) == set(lf.train.FIT_ARGUMENTS)
    assert not set(lf.train.TRAINER_ARGUMENTS) & set(lf.train.CALL_ARGUMENTS)


def test_fit_arguments_by_position_name_or_options_object_train_the_same():
    x, y = blobs(40)
    kw = dict(loss=lf.CrossEntropyLoss(), seed=4, verbose=0)

    def run(how):
        model = mlp()
        opt = lf.SGD(model.parameters(), lr=0.1, momentum=0.9)
        if how == "keywords":
            model.fit(x, y, epochs=2, batch_size=8, optimizer=opt, accumulate=2, **kw)
        elif how == "positions":  # fit(model, x, y, epochs, batch_size, loss, optimizer, ...)
            lf.train.fit(model, x, y, 2, 8, kw["loss"], opt, None, True, (), None, 4, 0, 2)
        elif how == "trainer":
            Trainer(model, optimizer=opt, accumulate=2, **kw).fit(x, y, 2, 8)
        else:
            options = FitOptions(epochs=2, batch_size=8, optimizer=opt, accumulate=2, **kw)
            Trainer(model, options=options).fit(x, y)
        return weights(model)

    ref = run("keywords")
    for how in ("positions", "trainer", "options"):
        other = run(how)
        assert all(np.array_equal(other[k], ref[k]) for k in ref), how


def test_unknown_or_misplaced_arguments_are_type_errors_that_suggest_the_name():
    x, y = blobs(10)
    model = mlp()
    with pytest.raises(TypeError, match="unexpected keyword argument 'epoch'; did you mean 'epochs'"):
        model.fit(x, y, epoch=3)
    with pytest.raises(TypeError, match="multiple values for argument 'epochs'"):
        model.fit(x, y, 3, epochs=3)
    trainer = Trainer(model, loss=lf.CrossEntropyLoss(), verbose=0)
    # the trainer resolved its loss once: a fit call may change the loop, not the components
    with pytest.raises(TypeError, match=r"Trainer.fit\(\) got an unexpected keyword argument 'loss'"):
        trainer.fit(x, y, loss="mse")
    with pytest.raises(TypeError, match="did you mean 'accumulate'"):
        Trainer(model, acumulate=3)


def test_evaluation_has_no_optimizer_and_leaves_the_model_as_it_was():
    x, y = blobs(30)
    model = mlp()
    before = weights(model)
    evaluator = Evaluator(model, lf.CrossEntropyLoss())
    assert not hasattr(evaluator, "optimizer")
    result = evaluator.evaluate(x, y, batch_size=7)
    assert set(result) == {"loss", "accuracy"}  # accuracy chosen from the class labels
    assert result == model.evaluate(x, y, loss=lf.CrossEntropyLoss())
    assert model.training and all(np.array_equal(v, before[k]) for k, v in weights(model).items())


def test_gradients_pass_the_reduce_seam_once_per_update_before_the_callbacks():
    """The place a data-parallel trainer averages gradients: once per update (the last, shorter
    group included), after the group's backward passes and before on_after_backward."""
    events = []

    class Counting(Trainer):
        def _reduce_gradients(self):
            events.append("reduce")

    class Watch(lf.Callback):
        def on_after_backward(self, batch, logs):
            events.append("after_backward")

    x, y = blobs(10)
    model = mlp()
    trainer = Counting(model, loss=lf.CrossEntropyLoss(), callbacks=[Watch()], accumulate=2, verbose=0)
    trainer.fit(x, y, epochs=1, batch_size=2, shuffle=False)  # 5 batches: groups of 2, 2, 1
    assert trainer.global_step == 3
    assert events == ["reduce", "after_backward"] * 3


def test_every_function_of_the_trainer_and_the_config_is_short():
    """The fit loop and the config code read top to bottom: no function of train.py or of the
    config package reaches 60 lines."""
    import ast
    from pathlib import Path

    import learnflux.config

    files = [Path(lf.train.__file__), *Path(learnflux.config.__file__).parent.glob("*.py")]
    long = [
        (path.name, node.name, node.end_lineno - node.lineno + 1)
        for path in files
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno >= 59
    ]
    assert len(files) > 4 and not long
