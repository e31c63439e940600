"""Take the README's picture of the learning-flow page (docs/img/learning-flow.png).

    .venv/bin/learnflux train --out /tmp/digits --quiet        # the default digits CNN
    .venv/bin/python tools/learning_flow_screenshot.py /tmp/digits docs/img/learning-flow.png

Writes the page of ``learnflux explain RUN`` (2 samples, 3 steps), opens it in headless Chromium
(Debian's chromium and chromium-driver, through Selenium), moves to step 2 and to the second
layer's panel, and saves a 1300×820 screenshot.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path


def main(run: str, out: str) -> None:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    from learnflux.flow import explain_model, write_page

    folder = Path(tempfile.mkdtemp(prefix="lf-shot-"))
    page = folder / "flow.html"
    trace = explain_model(run, samples="0,1", steps=3)
    write_page(trace, page, title="Learning flow · digits CNN")
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "chromium"
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--hide-scrollbars",
        f"--user-data-dir={folder / 'profile'}",
        "--window-size=1300,820",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    try:
        driver.get(page.as_uri())
        while driver.execute_script("return document.body.getAttribute('data-ready')") is None:
            time.sleep(0.05)
        driver.execute_script(
            "var s = document.getElementById('step'); s.value = 2; s.dispatchEvent(new Event('input'));"
            "document.getElementById('L2').scrollIntoView();"
        )
        time.sleep(0.3)
        driver.save_screenshot(out)
    finally:
        driver.quit()
        shutil.rmtree(folder, ignore_errors=True)
    print(f"wrote {out}")


if __name__ == "__main__":
    main(*sys.argv[1:3])
