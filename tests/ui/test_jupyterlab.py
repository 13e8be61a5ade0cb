"""The example notebook in JupyterLab, in headless chromium, offline (issue #23).

A JupyterLab server (this interpreter, a temporary config/runtime/data folder, a token, default settings
but no news pop-up and no autosave) opens a copy of ``examples/explorer.ipynb``; the browser context aborts
every request that is not for the local server, so the test proves the notebook needs no CDN. After *Run
All* it checks the library's plots and, for each embedded tool (filters, harmonic basis, sampler, toy 2-D),
that its image figures are drawn (pixels that are not background) inside the cell and that the equations
of its explanation are typeset by MathJax (no raw ``\\(`` or ``$$`` left); then that a click on the
filters tool's noisy image shows another pixel's filter, Play in the sampler tool changes its images, the
toy 2-D toolbar sits clear of the player and of the colour bar, a second display of a view (and a re-run of
that cell) moves it there with a message in the first output, and that the browser logged no error. It
saves a screenshot of the notebook and of each tool's output (a temporary folder; ``$EXPLORER_SCREENSHOTS``
if set).

Waits are on page state (text, cell prompts, pixels), polled; never fixed sleeps for results.
"""
from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from .conftest import CHROMIUM, CHROMIUM_ARGS, free_port, stop_server, wait_http

pytest.importorskip("jupyterlab")
pw_sync = pytest.importorskip("playwright.sync_api")

pytestmark = [pytest.mark.browser, pytest.mark.filterwarnings("ignore::DeprecationWarning")]

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "examples" / "explorer.ipynb"
SHOTS = Path(os.environ.get("EXPLORER_SCREENSHOTS") or tempfile.mkdtemp(prefix="explorer-screenshots-"))
TOKEN = "explorer-test"
LOCAL = ("http://127.0.0.1", "ws://127.0.0.1", "data:", "blob:", "about:")
#: the source line of the cell that shows each embedded tool
TOOLS = {"filters": "view = FiltersView()", "gahb": "gahb = GAHBView(", "sampler": "sampler = SamplerView(",
         "toy2d": "toy = Toy2DView("}
#: of the image figures each tool shows at load: how many come first and must all be drawn (noisy image and
#: first x̂; y and x̂; the chains' y_t and x̂(y_t); the plane), and how many must be drawn in all
FIRST_DRAWN = {"filters": 2, "gahb": 2, "sampler": 4, "toy2d": 1}
MIN_DRAWN = {"filters": 8, "gahb": 12, "sampler": 4, "toy2d": 1}


# ------------------------------------------------------------------------------------------ the server
def _settings(root: Path) -> Path:
    """JupyterLab user settings: no autosave (the copy stays as it was), no news pop-up over the page."""
    settings = root / "settings" / "@jupyterlab"
    for plugin, values in (("docmanager-extension/plugin", {"autosave": False}),
                           ("apputils-extension/notification", {"fetchNews": "false", "checkForUpdates": False})):
        path = settings / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    return root / "settings"


def _kernelspec(data_dir: Path) -> None:
    """The notebook's ``python3`` kernel is this interpreter, with one intra-op thread."""
    spec = data_dir / "kernels" / "python3"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (test)", "language": "python",
        "env": {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYDEVD_DISABLE_FILE_VALIDATION": "1"}}))


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A JupyterLab server on a free port, serving a folder with a copy of the example notebook."""
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    root = tmp_path_factory.mktemp("jupyterlab")
    work = root / "notebooks"
    work.mkdir()
    shutil.copy(NOTEBOOK, work / NOTEBOOK.name)
    _kernelspec(root / "data")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1",
           "JUPYTER_CONFIG_DIR": str(root / "config"), "JUPYTER_RUNTIME_DIR": str(root / "runtime"),
           "JUPYTER_DATA_DIR": str(root / "data"), "JUPYTERLAB_SETTINGS_DIR": str(_settings(root)),
           "JUPYTERLAB_WORKSPACES_DIR": str(root / "workspaces")}
    port = free_port()
    log = root / "lab.log"
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
           f"--IdentityProvider.token={TOKEN}", f"--ServerApp.root_dir={work}", "--ServerApp.allow_root=True",
           "--LabApp.expose_app_in_browser=True", "--LabApp.news_url=None",
           "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    proc = subprocess.Popen(cmd, cwd=work, env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT,
                            start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/api/status?token={TOKEN}", 120, proc)
        yield {"url": url, "log": log}
    finally:
        stop_server(proc, timeout=20)  # the server, its kernel with it


# ------------------------------------------------------------------------------------------ the page
_APP = "window.jupyterapp"
_NOTEBOOK = f"{_APP}.shell.currentWidget"
_KERNEL_READY = f"""() => {{
    const nb = {_APP} && {_NOTEBOOK}, session = nb && nb.sessionContext && nb.sessionContext.session;
    const k = session && session.kernel;
    return !!k && k.connectionStatus === 'connected' && k.status === 'idle';
}}"""
_ALL_RAN = f"""() => {{
    const nb = {_NOTEBOOK};
    const code = nb.content.widgets.filter(c => c.model.type === 'code');
    return code.every(c => c.model.executionCount !== null) && nb.sessionContext.session.kernel.status === 'idle';
}}"""


@pytest.fixture(scope="module")
def page(lab):
    """The notebook after Run All; ``page.errors``: console errors and page errors, ``page.blocked``: every
    request for another host (aborted)."""
    with pw_sync.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        context = browser.new_context(viewport={"width": 1500, "height": 1000})
        blocked: list[str] = []

        def route(r) -> None:
            if r.request.url.startswith(LOCAL):
                r.continue_()
            else:
                blocked.append(r.request.url)
                r.abort()

        context.route("**/*", route)
        p = context.new_page()
        p.errors, p.blocked = [], blocked  # type: ignore[attr-defined]
        p.on("console", lambda m: m.type == "error" and p.errors.append(m.text))
        p.on("pageerror", lambda e: p.errors.append(f"page error: {e}"))
        p.set_default_timeout(60_000)
        p.goto(f"{lab['url']}/lab/tree/{NOTEBOOK.name}?token={TOKEN}")
        p.wait_for_function(_KERNEL_READY, timeout=120_000, polling=250)
        t0 = time.perf_counter()
        p.evaluate(f"{_APP}.commands.execute('notebook:run-all-cells')")
        p.wait_for_function(_ALL_RAN, timeout=400_000, polling=500)
        print(f"\nRun All in JupyterLab: {time.perf_counter() - t0:.1f} s")
        p.evaluate(f"{_NOTEBOOK}.content.scrollToItem(0, 'start')")
        p.locator(".jp-MarkdownCell").first.wait_for()
        SHOTS.mkdir(parents=True, exist_ok=True)
        p.screenshot(path=str(SHOTS / "jupyterlab.png"))  # the notebook's top
        try:
            yield p
        finally:
            browser.close()


def cell_output(page, marker: str):
    """The output area of the code cell whose source contains ``marker``, scrolled into view."""
    index = page.evaluate(f"""async (marker) => {{
        const nb = {_NOTEBOOK}.content;
        const i = nb.widgets.findIndex(c => c.model.sharedModel.getSource().includes(marker));
        if (i < 0) return -1;
        await nb.scrollToItem(i, 'start');
        nb.widgets[i].node.dataset.explorerCell = String(i);
        return i;
    }}""", marker)
    assert index >= 0, f"no cell contains {marker!r}"
    out = page.locator(f"[data-explorer-cell='{index}'] .jp-Cell-outputArea")
    out.wait_for()
    return out


def figure_pixels(figure) -> np.ndarray:
    """The figure's pixels on the screen, gray levels (H, W)."""
    figure.scroll_into_view_if_needed()
    return np.asarray(Image.open(io.BytesIO(figure.screenshot())).convert("L"), dtype=np.int16)


def drawn(pixels: np.ndarray) -> bool:
    """True when at least a fifth of the figure differs from its most common gray (the background)."""
    background = np.bincount(pixels.ravel()).argmax()
    return float(np.mean(np.abs(pixels - background) > 12)) >= 0.2


def figures(output):
    """The bokeh figures of an output (their shadow roots are open: locators reach inside)."""
    return output.locator("div.bk-Canvas")


def box(locator) -> dict[str, float]:
    b = locator.bounding_box()
    assert b is not None, "not on the page"
    return b


def overlaps(a: dict[str, float], b: dict[str, float]) -> bool:
    return (a["x"] < b["x"] + b["width"] and b["x"] < a["x"] + a["width"]
            and a["y"] < b["y"] + b["height"] and b["y"] < a["y"] + a["height"])


def screenshot(page, output, name: str) -> None:
    """Save the output as SHOTS/jupyterlab-NAME.png (the viewport grown to hold it)."""
    b = box(output)
    page.set_viewport_size({"width": 1500, "height": int(min(max(1000, b["height"] + 200), 4000))})
    output.scroll_into_view_if_needed()
    SHOTS.mkdir(parents=True, exist_ok=True)
    output.screenshot(path=str(SHOTS / f"jupyterlab-{name}.png"))
    page.set_viewport_size({"width": 1500, "height": 1000})


def wait_text(locator, changed_from: str, timeout: float = 120.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = locator.inner_text()
        if text != changed_from:
            return text
        time.sleep(0.1)  # polling interval
    raise AssertionError(f"text did not change within {timeout} s: {changed_from!r}")


def changes(figure, before: np.ndarray, timeout: float = 30.0) -> bool:
    """Whether the figure's pixels come to differ from ``before`` (on 5 % of them) within ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if np.mean(np.abs(figure_pixels(figure) - before) > 12) > 0.05:
            return True
        time.sleep(0.2)  # polling interval
    return False


def run_cell(page, marker: str) -> None:
    """Run the code cell whose source contains ``marker``; return once it has run (a new execution count)."""
    before = page.evaluate(f"""(marker) => {{
        const nb = {_NOTEBOOK}.content;
        nb.activeCellIndex = nb.widgets.findIndex(c => c.model.sharedModel.getSource().includes(marker));
        const count = nb.activeCell.model.executionCount;
        {_APP}.commands.execute('notebook:run-cell');
        return count;
    }}""", marker)
    page.wait_for_function(f"""([marker, before]) => {{
        const nb = {_NOTEBOOK};
        const cell = nb.content.widgets.find(c => c.model.sharedModel.getSource().includes(marker));
        return cell.model.executionCount !== null && cell.model.executionCount !== before
            && nb.sessionContext.session.kernel.status === 'idle';
    }}""", arg=[marker, before], timeout=120_000, polling=250)


# ------------------------------------------------------------------------------------------ the tests
def test_the_notebook_loads_nothing_from_other_hosts(page):
    assert page.blocked == [], page.blocked  # BokehJS, Panel, MathJax, their stylesheets: all inline
    code_errors = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")
    assert not any("Traceback" in code_errors.nth(k).inner_text() for k in range(code_errors.count()))


def test_the_librarys_plots_are_drawn(page):
    out = cell_output(page, 'gray_image(x, "clean x"')  # section (a): four HoloViews images
    figs = figures(out)
    figs.first.wait_for()
    assert sum(drawn(figure_pixels(figs.nth(k))) for k in range(figs.count())) >= 4
    screenshot(page, out, "library")


@pytest.mark.parametrize("tool", list(TOOLS))
def test_each_tool_draws_its_images_and_typesets_its_equations(page, tool):
    out = cell_output(page, TOOLS[tool])
    figs = figures(out)
    figs.first.wait_for()
    screenshot(page, out, tool)
    sizes = [box(figs.nth(k)) for k in range(figs.count())]
    images = [k for k, b in enumerate(sizes) if b["width"] >= 100 and b["height"] >= 100]
    assert images, f"{tool}: no figure of at least 100×100 px ({sizes})"
    cell = box(out)
    outside = [b for b in sizes if b["x"] < cell["x"] - 1 or b["x"] + b["width"] > cell["x"] + cell["width"] + 1]
    assert not outside, f"{tool}: figures run out of the cell {cell}: {outside}"
    shown = [k for k in images if drawn(figure_pixels(figs.nth(k)))]
    first = images[:FIRST_DRAWN[tool]]
    assert set(first) <= set(shown), f"{tool}: of its first figures {first} only {shown} are drawn"
    assert len(shown) >= MIN_DRAWN[tool], f"{tool}: {len(shown)} of {len(images)} figures drawn"

    math = out.locator("div.card mjx-container")  # the explanation card's equations, typeset by MathJax
    math.first.wait_for(timeout=30_000)
    text = out.inner_text()
    assert math.count() >= 3 and "\\(" not in text and "$$" not in text, (math.count(), text[:400])


def test_a_click_in_the_filters_tool_shows_that_pixels_filter(page):
    out = cell_output(page, TOOLS["filters"])
    row_sum, pixel = out.locator("p", has_text="row sum").first, out.locator("p", has_text="pixel i =").first
    before_sum, before_pixel = row_sum.inner_text(), pixel.inner_text()
    noisy = figures(out).first  # the noisy image comes first in the main area
    noisy.scroll_into_view_if_needed()
    b = box(noisy)
    page.mouse.click(b["x"] + 0.27 * b["width"], b["y"] + 0.35 * b["height"])
    wait_text(pixel, before_pixel)  # the clicked pixel, then its filter's numbers
    wait_text(row_sum, before_sum, timeout=30)


def test_play_in_the_sampler_tool_updates_its_images(page):
    out = cell_output(page, TOOLS["sampler"])
    x_hat = figures(out).nth(1)  # chain 1: y_t, then its x̂(y_t)
    before = figure_pixels(x_hat)
    out.get_by_role("button", name="▶ Play").click()
    out.locator("text=/step t = [1-9]/").first.wait_for(timeout=120_000)
    out.locator("text=/Finished|Paused/").first.wait_for(timeout=300_000)
    assert changes(x_hat, before) and drawn(figure_pixels(x_hat)), "x̂(y_t) did not change"
    screenshot(page, out, "sampler-played")


def test_the_toy2d_toolbar_clears_the_player_and_the_colour_bar(page):
    out = cell_output(page, TOOLS["toy2d"])
    plane = out.locator("div.bk-Figure", has=page.locator("div.bk-Toolbar")).first
    canvas, toolbar = box(plane.locator("div.bk-Canvas").first), box(plane.locator("div.bk-Toolbar").first)
    right = box(plane.locator("div.bk-CanvasPanel.bk-right").first)  # the colour bar and its labels
    player = box(out.locator("div.bk-panel-models-widgets-Player").first)
    fig = box(plane)
    assert canvas["width"] <= fig["width"] + 1 and canvas["height"] <= fig["height"] + 1, (canvas, fig)
    assert not overlaps(toolbar, player) and not overlaps(fig, player), (toolbar, fig, player)
    assert not overlaps(toolbar, right), (toolbar, right)


def test_a_second_display_moves_the_view_there(page):
    first = cell_output(page, TOOLS["sampler"])
    again = "sampler  # the same view again"
    page.evaluate(f"""async (source) => {{
        const nb = {_NOTEBOOK}.content;
        nb.activeCellIndex = nb.widgets.length - 1;
        await {_APP}.commands.execute('notebook:insert-cell-below');
        nb.activeCell.model.sharedModel.setSource(source);
    }}""", again)
    run_cell(page, again)
    first.locator("text=This view is now shown in a later output").wait_for(timeout=60_000)
    assert figures(first).count() == 0
    run_cell(page, again)  # and the same cell once more: it moves again, into its new output
    second = cell_output(page, again)
    second.get_by_role("button", name="Reset").click()
    second.locator("text=Press Step or Play").first.wait_for(timeout=60_000)
    x_hat = figures(second).nth(1)
    before = figure_pixels(x_hat)
    second.get_by_role("button", name="Step").click()
    second.locator("text=step t = 1").first.wait_for(timeout=60_000)
    assert changes(x_hat, before), "the moved view's x̂(y_t) did not change"


def test_the_browser_logged_no_error(page, lab):
    assert page.errors == [], page.errors
    assert page.blocked == [], page.blocked
    assert "Traceback" not in lab["log"].read_text()
