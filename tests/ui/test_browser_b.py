"""The filters, GAHB, toy-2D and energy apps in headless chromium: they load without tracebacks or console
errors, a click on the noisy image changes the filter pane, the energy histogram of 120 digits is computed,
and screenshots go to a temporary folder (``make screenshots``: docs/screenshots/)."""
from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# screenshots go to a temporary folder; `make screenshots` points EXPLORER_SCREENSHOTS at docs/screenshots
SHOTS = Path(os.environ.get("EXPLORER_SCREENSHOTS") or tempfile.mkdtemp(prefix="explorer-screenshots-"))
SHOTS.mkdir(parents=True, exist_ok=True)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def wait_text_change(locator, before: str, timeout: float = 90.0) -> float:
    """Seconds until the locator's text differs from ``before`` (fails after ``timeout``)."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        if locator.inner_text() != before:
            return time.perf_counter() - t0
        time.sleep(0.02)
    raise AssertionError(f"text did not change within {timeout} s: {before!r}")


def save_screenshot(page, name: str, height: int, settle_ms: int = 800) -> None:
    """Let the page settle, resize it to 1500 × ``height`` and save SHOTS/NAME.png."""
    page.wait_for_timeout(settle_ms)
    page.set_viewport_size({"width": 1500, "height": height})
    page.wait_for_timeout(500)
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def assert_clean(page, logs: str) -> None:
    assert page.page_errors == [], page.page_errors
    assert page.console_errors == [], page.console_errors
    assert "Traceback" not in logs, logs[-3000:]


def test_filters_app_click_shows_a_new_filter(served_app, browser_page):
    url = served_app("apps/filters.py")
    page = browser_page
    page.goto(url, timeout=180_000)
    row_sum = page.locator("p", has_text="row sum").first
    row_sum.wait_for(timeout=180_000)
    pixel = page.locator("p", has_text="pixel i =").first
    pixel.wait_for(timeout=60_000)
    page.wait_for_timeout(1000)
    before_sum, before_pixel = row_sum.inner_text(), pixel.inner_text()
    canvas = page.locator("canvas").first  # the noisy image comes first in the main area
    box = canvas.bounding_box()
    assert box and box["width"] > 100
    page.mouse.click(box["x"] + 0.27 * box["width"], box["y"] + 0.35 * box["height"])
    seconds = wait_text_change(row_sum, before_sum)
    assert pixel.inner_text() != before_pixel
    assert "row sum" in row_sum.inner_text()
    print(f"click → new row sum on the page: {seconds:.2f} s")
    save_screenshot(page, "filters", 1150)
    assert_clean(page, served_app.logs())


def test_gahb_app_loads_and_computes(served_app, browser_page):
    url = served_app("apps/gahb.py")
    page = browser_page
    page.goto(url, timeout=180_000)
    page.locator("p", has_text="top singular values").first.wait_for(timeout=400_000)
    try:  # the rest (traces, shrinkage, the σ-curve) takes longer; wait for it if the machine allows
        page.locator("p", has_text="Done.").first.wait_for(timeout=300_000)
    except Exception:
        pass
    page.set_viewport_size({"width": 1500, "height": 1750})
    page.wait_for_timeout(1500)
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "gahb.png"), full_page=True)
    assert page.locator("p", has_text="Singular vectors").count() >= 1
    assert_clean(page, served_app.logs())


def test_toy2d_app_loads_and_animates(served_app, browser_page):
    url = served_app("apps/toy2d.py")
    page = browser_page
    page.goto(url, timeout=180_000)
    page.locator("p", has_text="chains").first.wait_for(timeout=180_000)
    page.locator("p", has_text="over the square").first.wait_for(timeout=180_000)
    page.wait_for_timeout(6000)  # let the animation run to its end
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "toy2d.png"), full_page=True)
    assert_clean(page, served_app.logs())


def test_energy_app_computes_a_histogram(served_app, browser_page, tmp_path):
    url = served_app("apps/energy.py", env={"EXPLORER_ENERGY_CACHE": str(tmp_path / "cache")})
    page = browser_page
    page.goto(url, timeout=180_000)
    run = page.get_by_role("button", name="▶ Compute energies")
    run.wait_for(timeout=180_000)
    count = page.get_by_label("Number of images (the first N)")
    count.fill("120")
    count.press("Enter")
    page.wait_for_timeout(500)
    run.click()
    row = page.locator("tr", has_text="number of images").first
    row.wait_for(timeout=300_000)
    assert "120" in row.inner_text()
    save_screenshot(page, "energy", 1400, settle_ms=1500)
    assert_clean(page, served_app.logs())


def test_generalization_app_runs_a_seed_on_the_shipped_pairs(served_app, browser_page):
    """The Generalization tool on the published pairs: a seed runs at load and shows the A–B cosine."""
    url = served_app("apps/generalization.py")
    page = browser_page
    page.goto(url, timeout=180_000)
    page.wait_for_selector("text=/Done: N = \\d+, seed 0/", timeout=180_000)
    assert page.locator("text=cos(x_A, x_B) =").count()
    save_screenshot(page, "generalization", 1300, settle_ms=1500)
    assert_clean(page, served_app.logs())


def test_report_app_measures_the_default_model_line_by_line(served_app, browser_page):
    """The Property report page: Run measures every line of the default model and draws the plots."""
    url = served_app("apps/report.py")
    page = browser_page
    page.goto(url, timeout=180_000)
    page.get_by_role("button", name="▶ Run the report").click()
    page.wait_for_selector("text=/9 of 9 measurements/", timeout=240_000)
    page.locator("img[src^='data:image/png']").nth(3).wait_for(timeout=60_000)  # the plots (CSS locators pierce shadow roots)
    table_rows = page.locator("table.report tr")
    assert table_rows.count() >= 10  # the header and a row per line
    assert page.locator("text=python -m explorer.report bf-natural-gray --only homogeneity").count()
    save_screenshot(page, "report", 1500, settle_ms=1500)
    assert_clean(page, served_app.logs())


def test_decomposition_app_shows_both_denoisers_layers_that_add_back_to_the_image(served_app, browser_page):
    """The Multiscale decomposition page: the default network's and non-local means' layers, the base, the
    energies plot, and each row's exactness ‖fⁿ(x) + Σ r_k − x‖/‖x‖ (0 up to float64 rounding)."""
    url = served_app("apps/decomposition.py")
    page = browser_page
    page.goto(url, timeout=180_000)
    page.wait_for_selector("text=/Decomposed in/", timeout=240_000)
    exact = page.locator("p", has_text="‖/‖x‖ =")
    assert exact.count() == 2
    for i in range(2):
        value = float(exact.nth(i).inner_text().split("‖/‖x‖ = ")[1].split()[0])
        assert value < 1e-12
    page.locator("canvas").nth(11).wait_for(timeout=60_000)  # 2 × (4 layers + base), x and the energies
    assert page.locator("text=bf-natural-gray").count() and page.locator("text=classical: non-local means").count()
    save_screenshot(page, "decomposition", 1500, settle_ms=1500)
    assert_clean(page, served_app.logs())
