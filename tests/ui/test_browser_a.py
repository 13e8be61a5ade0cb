"""Browser tests of the sampler and inverse-problem apps (served by ``panel serve``, driven by chromium).

They load each app, check there is no Python traceback and no console error (other than unreachable
web fonts / CDNs), press the buttons and draw on the canvas like a user, and save the screenshots the
README uses (docs/screenshots/{sampler,inverse}.png; written there by ``make screenshots``, else to a temporary folder). Waits are on page text, never fixed sleeps.
"""
from __future__ import annotations

import os
import re
import tempfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# screenshots go to a temporary folder; `make screenshots` points EXPLORER_SCREENSHOTS at docs/screenshots
SHOTS = Path(os.environ.get("EXPLORER_SCREENSHOTS") or tempfile.mkdtemp(prefix="explorer-screenshots-"))
SHOTS.mkdir(parents=True, exist_ok=True)

pytestmark = pytest.mark.browser


def _step_counter(page) -> int:
    text = page.locator("text=/step t = \\d+/").first.inner_text()
    return int(re.search(r"step t = (\d+)", text).group(1))


def _check_clean(page, served_app) -> None:
    assert page.page_errors == [], page.page_errors
    assert page.console_errors == [], page.console_errors
    assert "Traceback" not in served_app.logs(), served_app.logs()[-3000:]


def test_sampler_app_steps_and_plays(served_app, browser_page):
    page = browser_page
    url = served_app("apps/sampler.py")
    page.goto(url + "?size=64&batch=1")
    page.wait_for_selector("text=step t = 0")
    page.wait_for_selector("text=Press Step or Play")
    _check_clean(page, served_app)

    page.get_by_role("button", name="Step").click()
    page.wait_for_selector("text=step t = 1")
    page.get_by_role("button", name="Step").click()
    page.wait_for_selector("text=step t = 2")

    # Play: the counter on the page advances while the sampler runs on a worker thread
    page.get_by_role("button", name="▶ Play").click()
    t_start, w_start = _step_counter(page), time.perf_counter()
    samples = []
    while time.perf_counter() - w_start < 3.0:
        page.wait_for_timeout(100)  # polling interval of the measurement, not a wait for a result
        samples.append((time.perf_counter(), _step_counter(page)))
        if page.locator("text=Finished").count():
            break
    shown = len({t for _, t in samples})
    rate = (samples[-1][1] - t_start) / (samples[-1][0] - w_start)
    print(f"\nsampler 64x64, 1 chain, default model: {rate:.1f} steps/s shown, {shown} distinct counter values "
          f"in {samples[-1][0] - w_start:.1f} s")
    assert samples[-1][1] > t_start
    page.wait_for_selector("text=Finished", timeout=180_000)
    page.wait_for_selector("text=/\\d+ steps\\/s of denoiser compute/")
    _check_clean(page, served_app)
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "sampler.png"), full_page=False)


def test_inverse_app_draw_and_run(served_app, browser_page):
    page = browser_page
    url = served_app("apps/inverse.py")
    page.goto(url + "?size=64&samples=3&beta=0.5")
    page.wait_for_selector("text=Press Step or Run")
    page.wait_for_selector("text=75% observed")  # the preset centre square
    _check_clean(page, served_app)

    # draw a stroke on the canvas with the mouse (brush tool is active by default)
    box = page.locator(".explorer-canvas").bounding_box()
    assert box is not None
    x0, y0 = box["x"] + 0.12 * box["width"], box["y"] + 0.8 * box["height"]
    page.mouse.move(x0, y0)
    page.mouse.down()
    for k in range(1, 25):
        page.mouse.move(x0 + k * 0.025 * box["width"], y0 - k * 0.012 * box["height"])
    page.mouse.up()
    page.wait_for_selector("text=/inpainting, (?!75%)[0-9.]+% observed/")

    page.get_by_role("button", name="▶ Run Algorithm 2").click()
    page.wait_for_selector("text=Finished", timeout=240_000)
    page.wait_for_selector("text=mean of samples")
    _check_clean(page, served_app)
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "inverse.png"), full_page=False)


def test_main_app_overview_and_navigation(served_app, browser_page):
    page = browser_page
    url = served_app("apps/main.py")
    page.goto(url)
    page.wait_for_selector("text=Look inside image denoisers")
    _check_clean(page, served_app)
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "main.png"), full_page=False)
    page.get_by_role("button", name="Open coarse-to-fine sampler →").click()
    page.wait_for_selector("text=step t = 0")
    page.get_by_role("button", name="Step").click()
    page.wait_for_selector("text=step t = 1")
    _check_clean(page, served_app)
