"""The learning-flow page in a real browser: headless Chromium (Debian's ``chromium`` and
``chromium-driver``), driven by Selenium. The page must load from disk without a console error,
draw every layer panel, and show the numbers of the trace's JSON (for every step and sample the
test moves to). Skipped, with the reason, where Chromium, its driver or Selenium is missing;
.ci/run installs them and sets LEARNFLUX_REQUIRE_BROWSER=1, which turns that skip into a failure.

Screenshots go to ``$LEARNFLUX_SCREENSHOTS`` when set (else the test's temporary folder).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from learnflux.cli.explain import run as seed_run
from learnflux.flow import explain_model, write_page

from .flow_fixtures import digits_run

CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
DRIVER = shutil.which("chromedriver")


def _skip(reason: str) -> None:
    """Skip, unless LEARNFLUX_REQUIRE_BROWSER=1 (set by .ci/run once Chromium is installed)."""
    if os.environ.get("LEARNFLUX_REQUIRE_BROWSER") == "1":
        pytest.fail(f"LEARNFLUX_REQUIRE_BROWSER=1 but {reason}")
    pytest.skip(reason)


def _browser_or_skip() -> Any:
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _skip("selenium is not installed (pip install -e '.[test]')")
    if CHROMIUM is None or DRIVER is None:
        _skip("Chromium or its driver is missing (apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    profile = tempfile.mkdtemp(prefix="lf-chromium-")
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        "--window-size=1300,1000",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    driver.set_page_load_timeout(60)
    return driver, profile


@pytest.fixture(scope="module")
def browser():
    driver, profile = _browser_or_skip()
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    where = os.environ.get("LEARNFLUX_SCREENSHOTS")
    path = Path(where) if where else tmp_path_factory.mktemp("screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


def open_page(driver: Any, path: Path) -> None:
    driver.get(path.resolve().as_uri())
    deadline = time.monotonic() + 30
    while driver.execute_script("return document.body.getAttribute('data-ready')") is None:
        assert time.monotonic() < deadline, "the page never finished drawing"
        time.sleep(0.05)
    assert driver.execute_script("return document.body.getAttribute('data-ready')") == "1", page_error(driver)


def page_error(driver: Any) -> str:
    return driver.execute_script("var e = document.querySelector('.error'); return e ? e.textContent : ''")


def console_errors(driver: Any) -> list[str]:
    return [e["message"] for e in driver.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]


def shown(driver: Any) -> list[dict[str, Any]]:
    """Every tensor block the page shows: name, shape, the statistics and the values it prints."""
    return driver.execute_script(
        """
        return Array.from(document.querySelectorAll('.tensor')).map(function (b) {
          var stat = {};
          b.querySelectorAll('[data-stat]').forEach(function (s) { stat[s.dataset.stat] = s.textContent; });
          var values = Array.from(b.querySelectorAll('.values .v')).map(function (v) {
            return v.textContent;
          });
          var panel = b.closest('.layer-panel');
          return {name: b.dataset.name, shape: b.dataset.shape, stat: stat, values: values,
                  panel: panel.dataset.k, canvases: b.querySelectorAll('canvas').length};
        });
        """
    )


def select(driver: Any, step: int, sample: int) -> None:
    """Move the step slider (1-based) and click a sample's button (position in the data)."""
    driver.execute_script(
        "var s = document.getElementById('step'); s.value = arguments[0];"
        "s.dispatchEvent(new Event('input'));",
        step,
    )
    driver.find_element("css selector", f"#samples button[data-pos='{sample}']").click()
    assert driver.execute_script("return document.body.getAttribute('data-state')") == f"{step - 1}:{sample}"


# ------------------------------------------------------------------------------ expectations
def expected(doc: dict[str, Any], step: int, sample: int, name: str) -> np.ndarray:
    """What block ``name`` must show at ``step`` (1-based) for the sample at position
    ``sample``: read from the trace's JSON (exact values as Fractions)."""
    s = doc["steps"][step - 1]
    j = s["samples"].index(sample)
    exact = doc["dtype"] == "exact"

    def arr(v: Any) -> np.ndarray:
        if exact:
            return np.vectorize(Fraction, otypes=[object])(np.array(v, dtype=object))
        return np.array(v, dtype=np.float64)

    before = doc["initial"]["weights"] if step == 1 else doc["steps"][step - 2]["weights_after"]
    if name.startswith("o"):
        return arr(s["outputs"][name])[j]
    if name.startswith("δw") or name.startswith("δb"):
        return arr(s["grads"][name[1:]])
    if name.startswith("δ"):
        return arr(s["deltas"]["d" + name[1:]])[j]
    if " − " in name:  # ŵ − w of the float32 values, exactly (in float64)
        w = name.split(" − ")[1]
        after, prior = arr(s["weights_after"][w]), arr(before[w])
        if doc["dtype"] == "float32":
            after, prior = (
                after.astype(np.float32).astype(np.float64),
                prior.astype(np.float32).astype(np.float64),
            )
        return after - prior
    return arr(before[name])


def same_number(text: str, value: Any, dtype: str, f64: bool = False) -> bool:
    if dtype == "exact":
        return Fraction(text) == value
    if dtype == "float32" and not f64:
        return np.float32(float(text)) == np.float32(value)
    return float(text) == float(value)


def check_numbers(driver: Any, doc: dict[str, Any], step: int, sample: int) -> int:
    """Every block's min, max, largest value, mean and norm against the JSON. Returns how many
    blocks were checked."""
    blocks = shown(driver)
    dtype = doc["dtype"]
    for b in blocks:
        want = expected(doc, step, sample, b["name"])
        flat = want.reshape(-1)
        f64 = " − " in b["name"]  # the page keeps ŵ − w exactly, in float64
        where = f"step {step}, sample {sample + 1}, {b['name']}"
        assert same_number(b["stat"]["min"], min(flat), dtype, f64), (where, b["stat"]["min"], min(flat))
        assert same_number(b["stat"]["max"], max(flat), dtype, f64), (where, b["stat"]["max"], max(flat))
        big = max(flat, key=abs)
        assert same_number(b["stat"]["at"], big, dtype, f64) or same_number(b["stat"]["at"], -big, dtype, f64)
        values = np.array([float(v) for v in flat])
        if dtype == "float32" and not f64:
            values = values.astype(np.float32).astype(np.float64)
        mean = b["stat"]["mean"].lstrip("≈ ")  # 6 digits; a mean near 0 is a cancellation
        assert float(mean) == pytest.approx(values.mean(), rel=1e-5, abs=1e-9 * np.abs(values).max()), where
        assert float(b["stat"]["norm"]) == pytest.approx(np.sqrt((values**2).sum()), rel=1e-5), where
        if b["values"]:  # small tensors: every value, as the JSON has it
            assert len(b["values"]) == flat.size, where
            assert all(same_number(t, v, dtype, f64) for t, v in zip(b["values"], flat, strict=True)), where
        if flat.size > 1:
            assert b["canvases"] >= 2, f"{where}: no image"  # the map and its scale
    return len(blocks)


def check_page(driver: Any, doc: dict[str, Any], n_layers: int) -> None:
    assert driver.execute_script("return document.querySelectorAll('.layer-panel').length") == n_layers + 1
    assert driver.execute_script("return document.body.getAttribute('data-panels')") == str(n_layers + 1)
    assert driver.execute_script("return document.querySelectorAll('#graph .node').length") == n_layers
    loss = driver.find_element("css selector", "[data-stat='loss']").text
    step = int(driver.execute_script("return document.getElementById('step').value"))
    want = doc["steps"][step - 1]["loss"]
    assert loss.split(" ≈ ")[0] == str(want) if doc["dtype"] == "exact" else float(loss) == want


# ------------------------------------------------------------------------------ the tests
def test_digits_cnn_page_in_chromium(browser, shots, tmp_path):
    run = digits_run(tmp_path / "run")
    trace = explain_model(str(run.parent), samples="0,1", steps=3)
    page = tmp_path / "digits.html"
    size = write_page(trace, page, title="Learning flow · digits CNN")
    assert size < 5_000_000
    doc = json.loads(trace.to_json())
    open_page(browser, page)
    assert console_errors(browser) == []
    n = len(trace.model.layers)
    check_page(browser, doc, n)
    assert check_numbers(browser, doc, 1, 0) >= 2 * n
    browser.save_screenshot(str(shots / "digits-step1-sample1.png"))
    for step, sample in ((3, 1), (2, 0)):
        select(browser, step, sample)
        check_page(browser, doc, n)
        check_numbers(browser, doc, step, sample)
    browser.save_screenshot(str(shots / "digits-step2-sample1.png"))
    # the graph: a click scrolls to the layer's panel
    browser.find_element("css selector", "#graph .node[data-k='6']").click()
    deadline = time.monotonic() + 10  # a smooth scroll: it takes a moment on a busy machine
    while True:
        top = browser.execute_script("return document.getElementById('L6').getBoundingClientRect().top")
        if abs(top) < 50 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert abs(top) < 50
    browser.save_screenshot(str(shots / "digits-L6.png"))
    assert console_errors(browser) == []


def test_seed_page_shows_exact_fractions(browser, shots, tmp_path):
    trace = seed_run()
    page = tmp_path / "seed.html"
    write_page(trace, page, title="The seed's worked example")
    doc = json.loads(trace.to_json())
    open_page(browser, page)
    assert console_errors(browser) == []
    check_page(browser, doc, 3)
    check_numbers(browser, doc, 1, 0)
    select(browser, 3, 2)  # the step where w2 learns
    check_numbers(browser, doc, 3, 2)
    blocks = {b["name"]: b for b in shown(browser)}
    assert blocks["δw2"]["values"] == ["0", "-2000", "-3000"]
    assert blocks["ŵ2 − w2"]["values"] == ["0", "2000", "3000"]
    assert blocks["δ4"]["values"] == ["-1"] and blocks["δ2"]["values"] == ["-1/200", "3/11600", "-1/5800"]
    assert "1/2" in browser.find_element("css selector", "[data-stat='loss']").text
    browser.save_screenshot(str(shots / "seed-step3.png"))
    assert console_errors(browser) == []


def test_graph_model_page_draws_the_graph(browser, shots, tmp_path):
    import learnflux as lf

    lf.seed(0)
    x = lf.Input((1, 6, 6))
    a = lf.Conv2d(1, 4, 3, padding=1)(x)
    r = lf.ReLU()(a)
    b = lf.Conv2d(4, 4, 3, padding=1)(r)
    s = lf.Add()([r, b])  # a residual connection
    c = lf.Concat()([s, a])  # and a skip to a concatenation
    out = lf.Linear(288, 3)(lf.Flatten()(c))
    model = lf.Model(x, out)
    rng = np.random.default_rng(0)
    xs, ys = rng.random((2, 1, 6, 6)).astype(np.float32), np.array([0, 2])
    opt = lf.SGD(model.parameters(), lr=0.1)
    trace = lf.trace.record(model, lf.CrossEntropyLoss(), opt, xs, ys, batch_size=2, steps=2)
    page = tmp_path / "graph.html"
    write_page(trace, page, title="a residual graph")
    doc = json.loads(trace.to_json())
    open_page(browser, page)
    assert console_errors(browser) == []
    check_page(browser, doc, 8)
    check_numbers(browser, doc, 1, 0)
    edges = sum(len([j for j in n["inputs"] if j > 0]) for n in doc["graph"])
    assert browser.execute_script("return document.querySelectorAll('#graph .edge').length") == edges == 9
    # o2 feeds L3 and L6: the flow that arrives at it is the sum over both
    titles = [b["name"] for b in shown(browser)]
    assert "δ3" in titles
    text = browser.find_element("css selector", "#L2").text
    assert "arriving from L3 + L6" in text and "← o3, o4" in browser.find_element("css selector", "#L5").text
    browser.save_screenshot(str(shots / "graph-model.png"))
