"""Browser test of the inverse-problem page of the whole explorer (apps/main.py?page=inverse).

Opened directly, the page once never reported itself ready to the server (the figures of a pn.FlexBox
nested one Column deeper than in apps/inverse.py never finished rendering), and Panel then dropped every
later update made under a hold: switching the image source never changed the sidebar, and later patches
named models the browser never got ("reference p1325 isn't known"). Waits are on page text or on the
pixels of the page, never fixed sleeps.
"""
from __future__ import annotations

import time

import pytest

pytestmark = pytest.mark.browser


def _check_clean(page, served_app) -> None:
    assert page.page_errors == [], page.page_errors
    assert page.console_errors == [], page.console_errors
    assert not any("isn't known" in e for e in page.page_errors + page.console_errors)
    logs = served_app.logs()
    assert "Traceback" not in logs, logs[-3000:]
    assert "isn't known" not in logs, logs[-3000:]


def _canvas_png(page, tries: int = 5) -> bytes:
    """The canvas' pixels; a canvas re-rendered during the capture (detached from the DOM, or not yet laid out)
    is captured again."""
    for _ in range(tries - 1):
        try:
            return page.locator(".explorer-canvas").first.screenshot()
        except Exception as e:  # playwright's Error: "not attached to the DOM", or "not visible" while swapped
            if "not attached" not in str(e) and "not visible" not in str(e):
                raise
            page.wait_for_timeout(200)  # let the new canvas attach
    return page.locator(".explorer-canvas").first.screenshot()


def _wait_changed(page, before: bytes, timeout: float = 60.0) -> bytes:
    """The canvas' pixels once they differ from ``before`` (polled; fails after ``timeout`` s)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        now = _canvas_png(page)
        if now != before:
            return now
        page.wait_for_timeout(200)  # polling interval, not a wait for a result
    raise AssertionError("the original image on the canvas did not change")


def _select(page, label: str):
    return page.locator(f".bk-input-group:has(label:text-is('{label}')) select").first


def test_main_inverse_page_switches_to_synthetic(served_app, browser_page):
    page = browser_page
    url = served_app("apps/main.py")
    page.goto(url + "?page=inverse")
    page.wait_for_selector("text=Press Step or Run")
    page.wait_for_selector("text=Photograph")  # the built-in image's control in the sidebar
    _check_clean(page, served_app)
    photo = _canvas_png(page)

    page.get_by_role("button", name="synthetic", exact=True).click()
    page.wait_for_selector("text=Generator", timeout=30_000)  # the sidebar shows the synthetic controls
    assert _select(page, "Generator").is_visible()
    assert page.locator(".bk-input-group:has(label:text-is('Photograph'))").count() == 0
    leaves = _wait_changed(page, photo)

    _select(page, "Generator").select_option("discs")
    _wait_changed(page, leaves)
    page.wait_for_selector("text=Press Step or Run")
    _check_clean(page, served_app)


def test_main_sampler_page_follows_its_sidebar(served_app, browser_page):
    """The sampler's chain grid was a pn.FlexBox too: opened directly in apps/main.py, its page must report
    ready, so that a change in the sidebar (the number of chains) and a Step reach the browser."""
    page = browser_page
    url = served_app("apps/main.py")
    page.goto(url + "?page=sampler")
    page.wait_for_selector("text=step t = 0")
    page.wait_for_selector("text=Press Step or Play")
    _check_clean(page, served_app)
    chains = page.locator(".bk-input-group:has(label:text-matches('^Chains')) input").first
    chains.fill("3")
    chains.press("Enter")
    page.wait_for_selector("text=/Ready: 3 chain/", timeout=30_000)
    page.get_by_role("button", name="Step").click()
    page.wait_for_selector("text=step t = 1", timeout=30_000)
    _check_clean(page, served_app)
