"""Links that reopen a view (issue #21 §3), in headless chromium: a link's settings are on the page when it
opens (widgets and status lines), a bad value in it is clamped and said, a change in the sidebar is written
back into the address, and "Copy link" copies that address (to the clipboard, or into the field it shows
when the clipboard is refused)."""
from __future__ import annotations

import time
import urllib.parse

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.filterwarnings("ignore::DeprecationWarning")]


def query(page) -> dict[str, str]:
    """The page's address as the browser has it now: its query, key → value."""
    return dict(urllib.parse.parse_qsl(urllib.parse.urlparse(page.url).query))


def wait_query(page, key: str, value: str, timeout: float = 30.0) -> dict[str, str]:
    """Wait until the address says ``key=value``; its query then."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if query(page).get(key) == value:
            return query(page)
        page.wait_for_timeout(100)
    raise AssertionError(f"the address never said {key}={value}: {page.url}")


def field(page, label: str):
    """The input of the sidebar field whose label starts with ``label``."""
    return page.locator(f".bk-input-group:has(label:text-matches('^{label}')) input").first


def assert_clean(page, served_app) -> None:
    assert page.page_errors == [], page.page_errors
    assert page.console_errors == [], page.console_errors
    assert "Traceback" not in served_app.logs(), served_app.logs()[-3000:]


def copy_link(page) -> str:
    """Press "Copy link" and return what it gave: the clipboard's text, or the fallback field's value."""
    page.locator("button", has_text="Copy link").first.click()
    page.wait_for_selector("button:has-text('Link copied'), .bk-input-group:has(label:text-matches('^Link to this view'))"
                           " input:visible", timeout=10_000)
    shown = field(page, "Link to this view")
    if shown.is_visible():
        return shown.input_value()
    return page.evaluate("() => navigator.clipboard.readText()")


def test_a_filters_link_reopens_the_view_and_the_address_follows(served_app, browser_page):
    url = served_app("apps/filters.py")
    page = browser_page
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=url.rsplit("/", 1)[0])
    page.goto(url + "?sigma=0.2&seed=7&row=5&col=20&crop=99", timeout=180_000)
    page.wait_for_selector("text=/pixel i = \\(row 5, col 20\\)/", timeout=180_000)
    assert field(page, "Noise seed").input_value() == "7"
    assert field(page, "Row i").input_value() == "5" and field(page, "Column j").input_value() == "20"
    page.wait_for_selector("text=/σ \\(noise std.*0\\.200/")  # the slider's shown value
    page.wait_for_selector("text=This link was partly used")  # crop=99 is over the 24 allowed
    page.wait_for_selector("text=/crop=99 is outside 2–24: 24 is used/")
    q = wait_query(page, "crop", "24")  # the address is corrected and complete once the page is up
    assert (q["sigma"], q["seed"], q["row"], q["col"], q["size"]) == ("0.2", "7", "5", "20", "64")
    assert "models" in q and q["source"] == "built-in"

    row = field(page, "Row i")
    row.fill("8")
    row.press("Enter")
    page.wait_for_selector("text=/pixel i = \\(row 8, col 20\\)/", timeout=60_000)
    wait_query(page, "row", "8")

    assert copy_link(page) == page.url  # the clipboard (permission granted)
    page.evaluate("() => { navigator.clipboard.writeText = () => Promise.reject(new Error('refused')) }")
    page.wait_for_timeout(2200)  # the label returns to "Copy link"
    assert copy_link(page) == page.url  # refused: the field shows the address instead
    assert field(page, "Link to this view").is_visible()
    assert_clean(page, served_app)


def test_a_sampler_link_reopens_the_view_and_the_address_follows(served_app, browser_page):
    url = served_app("apps/sampler.py")
    page = browser_page
    page.goto(url + "?beta=0.3&seed=4&size=32", timeout=180_000)
    page.wait_for_selector("text=/Ready: 2 chain\\(s\\) of 32×32/", timeout=180_000)
    assert field(page, "Seed").input_value() == "4"
    page.wait_for_selector("text=/β \\(fraction of noise removed per step\\).*0\\.3/")
    q = wait_query(page, "chains", "2")
    assert (q["beta"], q["seed"], q["size"]) == ("0.3", "4", "32") and "model" in q

    chains = field(page, "Chains")
    chains.fill("3")
    chains.press("Enter")
    page.wait_for_selector("text=/Ready: 3 chain\\(s\\) of 32×32/", timeout=30_000)
    assert wait_query(page, "chains", "3")["seed"] == "4"
    assert page.locator("button", has_text="Copy link").count() == 1
    assert_clean(page, served_app)


def test_the_all_tools_app_links_the_open_tool_under_its_name(served_app, browser_page):
    url = served_app("apps/main.py")
    page = browser_page
    page.goto(url + "?page=toy2d&toy2d.seed=11&toy2d.chains=3&seed=99", timeout=180_000)
    page.wait_for_selector("text=/3 chains/", timeout=180_000)
    assert field(page, "Seed").input_value() == "11"
    q = wait_query(page, "toy2d.chains", "3")
    assert q["page"] == "toy2d" and q["toy2d.seed"] == "11" and q["seed"] == "99"  # a foreign key stays, unused
    page.locator("button", has_text="Overview").first.click()
    wait_query(page, "page", "overview")
    assert not any(k.startswith("toy2d.") for k in query(page))  # the tool left: its keys went with it
    assert_clean(page, served_app)
