"""Responsiveness of the served apps in a real browser (issue targets, CPU, default model, 64×64):

- first page load of a tool once the server is warm (second visit of the filters page): target < 3 s,
  measured from navigation until the first adaptive filter's numbers are on the page;
- click-to-filter: from a click on the noisy image until the new row sum is on the page: target < 0.3 s
  (median of several clicks at different pixels);
- sampler steps shown per second while playing (1 chain, 64×64): target ≥ 5 steps/s.

Usage: python benchmarks/bench_ui.py [--clicks 7] [--play-seconds 4]
Needs Debian's chromium (/usr/bin/chromium) and the playwright Python package. Prints one table.
"""
from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def served(app: str):
    """``panel serve apps/<app>.py`` on a free port; yields the app's URL once it answers."""
    port = free_port()
    cmd = [sys.executable, "-m", "panel", "serve", str(ROOT / "apps" / f"{app}.py"), "--port", str(port),
           "--address", "127.0.0.1", "--allow-websocket-origin", f"127.0.0.1:{port}"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "OMP_NUM_THREADS": "1"}, start_new_session=True)
    url = f"http://127.0.0.1:{port}/{app}"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                urllib.request.urlopen(url, timeout=60).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError(f"{app} did not start")
                time.sleep(0.3)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(20)


def wait_change(locator, before: str, timeout: float = 60.0) -> float:
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        if locator.inner_text() != before:
            return time.perf_counter() - t0
        time.sleep(0.01)
    raise TimeoutError("the page did not change")


def bench_filters(browser, clicks: int) -> tuple[float, float]:
    with served("filters") as url:
        page = browser.new_page(viewport={"width": 1500, "height": 1000})
        page.goto(url)
        page.locator("p", has_text="row sum").first.wait_for(timeout=300_000)  # warms the server and model
        page.close()
        page = browser.new_page(viewport={"width": 1500, "height": 1000})
        t0 = time.perf_counter()
        page.goto(url)
        row_sum = page.locator("p", has_text="row sum").first
        row_sum.wait_for(timeout=300_000)
        load = time.perf_counter() - t0
        page.wait_for_timeout(1000)
        box = page.locator("canvas").first.bounding_box()
        times = []
        for k in range(clicks):
            before = row_sum.inner_text()
            fx, fy = 0.2 + 0.6 * ((k * 0.37) % 1), 0.2 + 0.6 * ((k * 0.61) % 1)
            page.mouse.click(box["x"] + fx * box["width"], box["y"] + fy * box["height"])
            times.append(wait_change(row_sum, before))
            page.wait_for_timeout(300)
        page.close()
    return load, statistics.median(times)


def bench_sampler(browser, seconds: float) -> float:
    with served("sampler") as url:
        page = browser.new_page(viewport={"width": 1500, "height": 1000})
        page.goto(url + "?size=64&batch=1&beta=0.05")
        page.wait_for_selector("text=step t = 0", timeout=300_000)
        page.wait_for_selector("text=Press Step or Play", timeout=300_000)

        def counter() -> int:
            return int(re.search(r"step t = (\d+)", page.locator("text=/step t = \\d+/").first.inner_text()).group(1))

        page.get_by_role("button", name="▶ Play").click()
        t0 = time.perf_counter()
        while counter() < 3 and time.perf_counter() - t0 < 120:
            page.wait_for_timeout(50)
        t0, s0 = time.perf_counter(), counter()
        page.wait_for_timeout(seconds * 1000)
        rate = (counter() - s0) / (time.perf_counter() - t0)
        page.close()
    return rate


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clicks", type=int, default=7)
    p.add_argument("--play-seconds", type=float, default=4.0)
    args = p.parse_args()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS, headless=True)
        load, click = bench_filters(browser, args.clicks)
        rate = bench_sampler(browser, args.play_seconds)
        browser.close()
    print(f"{'measure':44s} {'value':>10s}  target")
    print(f"{'filters page load, server warm (s)':44s} {load:10.2f}  < 3")
    print(f"{'click to new filter on the page, median (s)':44s} {click:10.2f}  < 0.3")
    print(f"{'sampler steps shown per second (64×64)':44s} {rate:10.1f}  ≥ 5")


if __name__ == "__main__":
    main()
