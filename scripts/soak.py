"""Many browser sessions at once against one ``panel serve`` process (load test and soak).

One server serves apps/sampler.py, apps/inverse.py and apps/filters.py; one headless chromium opens
N isolated browser contexts at once (playwright's async API), and each session visits the three
apps in a rotated order (session i starts with app i mod 3, so the three are always in use together):

- sampler (``?size=32&batch=1&seed=<own seed>``): Step a few times (latency = click → "step t = k"
  on the page), download the NPZ (its parameters and step count must be this session's), Play, then
  Pause (even sessions: wait for "Paused"/"Finished") or leave the page while it plays (odd
  sessions: the closed session must cancel the run);
- filters: click an own pixel of the noisy image (latency = click → the new "pixel i = …" text),
  download the NPZ (its pixel must be the one this page shows);
- inverse (``?size=32&samples=1&seed=<own seed>``): clear the mask, draw a horizontal stroke at an
  own height, run Algorithm 2 until it finishes or is paused, download the NPZ (its holes must be
  this session's stroke only).

``tests/ui/test_load.py`` runs one round of 8 sessions and checks isolation, errors and the server's
memory and threads afterwards. As a CLI it is the soak test (not in CI)::

    python scripts/soak.py --minutes 10 --sessions 8 [--port P]

keeps N sessions going (each one: open, work, close, repeat) for the given time, prints a table every
minute (sessions completed, errors, p50/p95 latency of a sampler step and of a filter click, server
RSS and threads) and a summary line for the README; exit code 1 on any error, on a session that saw
another's state, or if the server's RSS after the sessions closed is more than 20% above the warm
baseline (or its thread count did not come back).
"""
from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
APPS = ("sampler", "filters", "inverse")
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
VIEWPORT = {"width": 1500, "height": 1000}
SIZE = 32  # image size of the sampler and inverse sessions (light on a small machine)
SAMPLER_STEPS = 3  # Step clicks per sampler visit
FILTER_CLICKS = 1  # pixel clicks per filters visit
BRUSH_RADIUS = 3.0  # the inverse view's default brush radius (pixels)
MAX_RSS_GROWTH = 1.20
MAX_THREAD_GROWTH = 3
# glibc malloc settings of the server: a fixed mmap threshold (no dynamic raise) and trim threshold give
# freed buffers back to the system, and two arenas stop every worker thread keeping its own heap.
# With glibc's defaults the server keeps ~+20-25% RSS after 8 concurrent sessions although no
# session object, tensor or thread survives them (gc census; see the test's docstring).
ALLOCATOR_ENV = {"MALLOC_ARENA_MAX": "2", "MALLOC_MMAP_THRESHOLD_": "131072", "MALLOC_TRIM_THRESHOLD_": "131072"}
SCREENSHOTS = os.environ.get("SOAK_SCREENSHOTS")  # a folder: a screenshot of every page where a step failed


# ------------------------------------------------------------------------------------------ server
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _proc_status(pid: int) -> dict[str, str]:
    out: dict[str, str] = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = v.strip()
    return out


def _children(pid: int) -> list[int]:
    kids: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                kids += [int(c) for c in f.read().split()]
    except OSError:
        pass
    return kids + [g for k in kids for g in _children(k)]


class Server:
    """``panel serve`` of the three apps on 127.0.0.1 in its own process group (OMP_NUM_THREADS=1).

    Destroyed sessions are cleaned after about a second (``--check-unused-sessions 500
    --unused-session-lifetime 1000``), so the memory and thread figures after a round are meaningful.
    """

    command = [sys.executable, "-m", "panel"]  # what runs ``serve …`` (a wrapper can be put here to profile)

    def __init__(self, port: int | None = None, log: Path | None = None, env: dict[str, str] | None = None,
                 extra: tuple[str, ...] = ()):
        self.port = port or free_port()
        self.extra = tuple(extra)  # more ``panel serve`` arguments (e.g. --num-procs 2)
        self.log = log or Path(tempfile.mkdtemp(prefix="explorer-load-")) / f"panel-{self.port}.log"
        self.proc: subprocess.Popen | None = None
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = dict(ALLOCATOR_ENV if env is None else env)
        self._peak = (0.0, 0)
        self._monitor: threading.Thread | None = None

    def start(self, timeout: float = 180.0) -> "Server":
        cmd = [*self.command, "serve", *(str(ROOT / "apps" / f"{a}.py") for a in APPS),
               "--port", str(self.port), "--address", "127.0.0.1",
               "--allow-websocket-origin", f"127.0.0.1:{self.port}",
               "--check-unused-sessions", "500", "--unused-session-lifetime", "1000", *self.extra]
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1", **self.env}
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=open(self.log, "w"), stderr=subprocess.STDOUT, env=env,
                                     start_new_session=True)
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"panel serve exited with code {self.proc.returncode}:\n{self.logs()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{self.base}/sampler", timeout=60) as r:
                    if r.status == 200:
                        self._monitor = threading.Thread(target=self._watch, daemon=True, name="server-monitor")
                        self._monitor.start()
                        return self
            except Exception as e:  # not up yet
                last = e
            time.sleep(0.3)
        raise TimeoutError(f"{self.base} did not answer within {timeout} s ({last})")

    def logs(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stats(self) -> tuple[float, int]:
        """(RSS in MB, threads) of the server process and any children it forked."""
        pids = [self.proc.pid, *_children(self.proc.pid)]
        rss_kb, threads = 0, 0
        for pid in pids:
            try:
                st = _proc_status(pid)
            except OSError:
                continue
            rss_kb += int(st["VmRSS"].split()[0])
            threads += int(st["Threads"])
        return rss_kb / 1024, threads

    def cpu_seconds(self) -> float:
        """CPU time (user + system) the server and its children have used so far."""
        total = 0.0
        for pid in [self.proc.pid, *_children(self.proc.pid)]:
            try:
                with open(f"/proc/{pid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return total

    def _watch(self) -> None:
        while self.proc is not None and self.proc.poll() is None:
            try:
                rss, thr = self.stats()
            except Exception:
                break
            self._peak = (max(self._peak[0], rss), max(self._peak[1], thr))
            time.sleep(0.5)

    def peak(self, reset: bool = True) -> tuple[float, int]:
        """Highest (RSS MB, threads) seen (sampled every 0.5 s) since the last reset."""
        out = self._peak
        if reset:
            self._peak = self.stats()
        return out

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)

    def __enter__(self) -> "Server":
        return self.start()

    def __exit__(self, *_: Any) -> None:
        self.stop()


def log_problems(text: str) -> tuple[list[str], int]:
    """Failures reported in the server log: (records with a traceback or an ERROR, count of benign ones).

    Benign: tornado's "Task exception was never retrieved … WebSocketClosedError" from
    ``write_message``, logged when a browser goes away while the server is pushing an update to it
    (a framework message about a closed socket, not an error of the app).
    """
    records: list[list[str]] = []
    for line in text.splitlines():
        if not records or re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", line):
            records.append([line])
        else:
            records[-1].append(line)
    problems, benign = [], 0
    for rec in records:
        body = "\n".join(rec)
        if "Traceback" not in body and not re.search(r"\bERROR\b", body):
            continue
        if "WebSocketClosedError" in body and "write_message" in body and body.count("File ") <= 3:
            benign += 1
            continue
        problems.append(body)
    return problems, benign


def baseline(server: Server, timeout: float = 15.0) -> tuple[float, int]:
    """(RSS MB, threads) once the closed sessions are gone: wait a session lifetime plus a check
    period, then until two readings a second apart agree (threads equal, RSS within 1%)."""
    time.sleep(1.5)  # --unused-session-lifetime 1000 + --check-unused-sessions 500: not a result wait
    t0 = time.monotonic()
    prev = server.stats()
    while True:
        time.sleep(1.0)
        cur = server.stats()
        if (cur[1] == prev[1] and abs(cur[0] - prev[0]) <= 0.01 * prev[0]) or time.monotonic() - t0 > timeout:
            return cur
        prev = cur


def settle(server: Server, rss_limit: float, thread_limit: int, timeout: float = 30.0) -> tuple[float, int, float]:
    """Poll the server until RSS ≤ rss_limit MB and threads ≤ thread_limit (or timeout).

    Returns (RSS MB, threads, seconds waited): the last reading.
    """
    t0 = time.monotonic()
    while True:
        rss, threads = server.stats()
        waited = time.monotonic() - t0
        if (rss <= rss_limit and threads <= thread_limit) or waited > timeout:
            return rss, threads, waited
        time.sleep(0.5)


# ------------------------------------------------------------------------------------------ browser side
def ignorable(text: str) -> bool:
    """Console errors that only say the sandbox has no internet (web fonts, CDNs); as tests/ui/conftest.py."""
    t = text.lower()
    return any(k in t for k in ("fonts.googleapis", "fonts.gstatic", "cdn.", "unpkg", "jsdelivr",
                                "err_name_not_resolved", "err_internet_disconnected", "err_connection",
                                "failed to load resource", "net::err"))


@dataclass
class SessionResult:
    index: int
    seed: int
    errors: list[str] = field(default_factory=list)
    step_latency: list[float] = field(default_factory=list)
    click_latency: list[float] = field(default_factory=list)
    runs: list[str] = field(default_factory=list)  # how each Play / Run ended: finished, paused, abandoned
    sampler: dict[str, Any] = field(default_factory=dict)
    filters: dict[str, Any] = field(default_factory=dict)
    inverse: dict[str, Any] = field(default_factory=dict)
    phases: dict[str, float] = field(default_factory=dict)  # seconds spent on each app
    marks: list[tuple[str, float]] = field(default_factory=list)  # (what, seconds since the session began)
    t0: float = field(default_factory=time.perf_counter)

    def mark(self, what: str) -> None:
        self.marks.append((what, round(time.perf_counter() - self.t0, 1)))
    seconds: float = 0.0
    done: bool = False


async def _poll(fn, timeout: float, what: str, interval: float = 0.1):
    """Await ``fn()`` until it returns something truthy (the polling interval is not a correctness wait)."""
    t0 = time.monotonic()
    while True:
        v = await fn()
        if v:
            return v
        if time.monotonic() - t0 > timeout:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        await asyncio.sleep(interval)


async def _text(locator) -> str:
    try:
        return await locator.inner_text(timeout=5_000)
    except Exception:
        return ""


async def _download_npz(page, timeout: float) -> dict[str, Any]:
    """Click the page's NPZ button and load the file it serves (arrays + the 'params' JSON)."""
    async with page.expect_download(timeout=timeout * 1000) as info:
        await page.get_by_text("NPZ (arrays + parameters)").first.click()
    dl = await info.value
    path = await dl.path()
    with np.load(path, allow_pickle=False) as z:
        out = {k: z[k] for k in z.files}
    out["params"] = json.loads(str(out["params"]))
    return out


async def _step_counter(page) -> int:
    text = await _text(page.locator("text=/step t = \\d+/").first)
    m = re.search(r"step t = (\d+)", text)
    return int(m.group(1)) if m else -1


async def visit_sampler(page, base: str, r: SessionResult, timeout: float) -> None:
    await page.goto(f"{base}/sampler?size={SIZE}&batch=1&seed={r.seed}", timeout=timeout * 1000)
    await page.wait_for_selector("text=Press Step or Play", timeout=timeout * 1000)
    r.mark("sampler shown")
    step = page.get_by_role("button", name="Step", exact=True)
    for k in range(1, SAMPLER_STEPS + 1):
        await _poll(step.is_enabled, timeout, "the Step button")
        t0 = time.perf_counter()
        await step.click()
        await page.wait_for_selector(f"text=/step t = {k}(?!\\d)/", timeout=timeout * 1000)
        r.step_latency.append(time.perf_counter() - t0)
    r.mark("sampler stepped")
    npz = await _download_npz(page, timeout)
    p = npz["params"]
    r.sampler = dict(seed=p["seed"], size=p["size"], batch=p["batch"], steps=len(npz["t"]),
                     y=npz["y"], shown_steps=await _step_counter(page))
    # Play; even sessions pause it and wait for the run to end, odd ones leave while it plays
    await page.get_by_role("button", name="▶ Play").click()
    await _poll(lambda: _advanced(page, SAMPLER_STEPS), timeout, "the sampler to play")
    if r.index % 2 == 0:
        pause = page.get_by_role("button", name="❚❚ Pause")
        try:
            await pause.click(timeout=5_000)
        except Exception:  # already finished: the button is disabled again
            pass
        ended = page.locator("text=/Paused at step|Finished:/").first
        await ended.wait_for(timeout=timeout * 1000)
        r.runs.append("finished" if "Finished" in await _text(ended) else "paused")
    else:
        r.runs.append("abandoned")
    r.mark("sampler run ended")


async def _advanced(page, t: int) -> bool:
    return await _step_counter(page) > t or await page.locator("text=Finished:").count() > 0


async def visit_filters(page, base: str, r: SessionResult, timeout: float) -> None:
    await page.goto(f"{base}/filters", timeout=timeout * 1000)
    row_sum = page.locator("p", has_text="row sum").first
    await row_sum.wait_for(timeout=timeout * 1000)
    pixel = page.locator("p", has_text="pixel i =").first
    await pixel.wait_for(timeout=timeout * 1000)
    await _poll(lambda: _status_done(page), timeout, "the first filters to be computed")
    r.mark("filters shown")
    canvas = page.locator("canvas").first  # the noisy image comes first in the main area
    status = page.locator("p", has_text="Filters computed in").first
    shown = ""
    for c in range(FILTER_CLICKS):
        # an own pixel per session and click; the last click decides what the page must show
        fx = 0.12 + 0.085 * (r.index % 9) + 0.02 * c
        fy = 0.25 + 0.06 * (r.index % 9) + 0.03 * c
        before = await _text(pixel)
        t0 = time.perf_counter()
        for attempt in range(3):  # a click the page was not ready for is lost: click again (rarely)
            box = await canvas.bounding_box()  # now: the layout may have moved since the page loaded
            if not box:
                raise AssertionError("filters: no canvas for the noisy image")
            await page.mouse.click(box["x"] + fx * box["width"], box["y"] + fy * box["height"])
            try:  # taken: the status says "Computing…" (or the result is already there)
                # a starved server can take tens of seconds to get to the click: do not click again
                # too early, every click is a new computation of three Jacobian rows
                await _poll(lambda: _click_taken(page, pixel, before), min(60.0, timeout), "the click to be taken")
                break
            except TimeoutError:
                continue
        else:
            raise AssertionError(f"filters: 3 clicks did not change the pixel ({before!r})")
        await _poll(lambda: _changed(pixel, before), timeout, "the filter of the clicked pixel")
        r.click_latency.append(time.perf_counter() - t0)
        r.filters["attempts"] = r.filters.get("attempts", 0) + attempt + 1
        r.mark(f"click {c} done after {attempt + 1} attempt(s)")
        shown = await _text(pixel)
    # the filter of the shown pixel must be on the page before the NPZ is asked for
    m = re.search(r"row (\d+), col (\d+)", shown)
    assert m, shown
    await _poll(lambda: _status_done(page), timeout, "the filters to be computed")
    npz = await _download_npz(page, timeout)
    r.filters.update(shown=(int(m.group(1)), int(m.group(2))), npz_pixel=tuple(int(v) for v in npz["pixel"]),
                     click=(fx, fy), models=npz["params"]["models"])


async def _changed(locator, before: str) -> bool:
    t = await _text(locator)
    return bool(t) and t != before


async def _click_taken(page, pixel, before: str) -> bool:
    if await page.locator("text=Computing the filters").count() > 0:
        return True
    return await _changed(pixel, before)


async def _status_done(page) -> bool:
    return await page.locator("text=/Filters computed in/").count() > 0


async def visit_inverse(page, base: str, r: SessionResult, timeout: float) -> None:
    await page.goto(f"{base}/inverse?size={SIZE}&samples=1&beta=0.5&h0=0.05&sigma_L=0.05&seed={r.seed}",
                    timeout=timeout * 1000)
    await page.wait_for_selector("text=Press Step or Run", timeout=timeout * 1000)
    await page.wait_for_selector("text=75% observed", timeout=timeout * 1000)  # the preset centre square
    r.mark("inverse shown")
    await page.get_by_role("button", name="Clear", exact=True).click()
    await page.wait_for_selector("text=100% observed", timeout=timeout * 1000)
    box = await page.locator(".explorer-canvas").bounding_box()
    if not box:
        raise AssertionError("inverse: no drawing canvas")
    fy = 0.25 + 0.065 * (r.index % 8)  # an own height per session: a horizontal stroke
    for _attempt in range(3):  # a stroke before the draw tool is wired is lost: draw again
        x0, y0 = box["x"] + 0.25 * box["width"], box["y"] + fy * box["height"]
        await page.mouse.move(x0, y0)
        await page.mouse.down()
        for k in range(1, 21):
            await page.mouse.move(x0 + k * 0.02 * box["width"], y0)
        await page.mouse.up()
        try:
            await page.wait_for_selector("text=/inpainting, (?!100%)[0-9.]+% observed/",
                                         timeout=min(60.0, timeout) * 1000)
            break
        except Exception:
            continue
    else:
        raise AssertionError("inverse: the stroke did not change the mask")
    r.mark("inverse drawn")
    await page.get_by_role("button", name="▶ Run Algorithm 2").click()
    await _poll(lambda: _advanced(page, 0), timeout, "Algorithm 2 to run")
    if r.index % 3 == 0:  # a third of the sessions let it finish; the others pause it
        try:
            await page.wait_for_selector("text=Finished after", timeout=timeout * 1000)
        except Exception:
            pass
    if not await page.locator("text=Finished after").count():
        try:
            await page.get_by_role("button", name="❚❚ Pause").click(timeout=5_000)
        except Exception:
            pass
    ended = page.locator("text=/Paused at step|Finished after/").first
    await ended.wait_for(timeout=timeout * 1000)
    r.runs.append("finished" if "Finished" in await _text(ended) else "paused")
    r.mark("inverse run ended")
    npz = await _download_npz(page, timeout)
    holes = ~npz["observed_mask"].astype(bool).reshape(SIZE, SIZE)
    rows, cols = np.nonzero(holes)
    r.inverse = dict(seed=npz["params"]["seed"], n_holes=int(holes.sum()),
                     row_span=(int(rows.min()), int(rows.max())) if rows.size else None,
                     row_centre=float(rows.mean()) if rows.size else float("nan"),
                     col_span=(int(cols.min()), int(cols.max())) if cols.size else None,
                     fy=fy, samples_shape=tuple(npz["samples"].shape) if "samples" in npz else None)


VISITS = {"sampler": visit_sampler, "filters": visit_filters, "inverse": visit_inverse}


async def run_session(browser, base: str, index: int, seed: int | None = None, timeout: float = 90.0,
                      apps: tuple[str, ...] = APPS, sink: list | None = None) -> SessionResult:
    """One user: an isolated browser context visiting the apps (rotated by ``index``), then closed.

    ``sink``: a list the result is appended to when the session starts (to watch it live)."""
    r = SessionResult(index=index, seed=1000 + index if seed is None else seed)
    if sink is not None:
        sink.append(r)
    t0 = time.perf_counter()
    context = await browser.new_context(viewport=VIEWPORT, accept_downloads=True)
    try:
        page = await context.new_page()
        page.set_default_timeout(timeout * 1000)
        page.on("console", lambda m: m.type == "error" and not ignorable(m.text)
                and r.errors.append(f"console: {m.text}"))
        page.on("pageerror", lambda e: r.errors.append(f"page error: {e}"))
        order = apps[index % len(apps):] + apps[:index % len(apps)]
        for app in order:
            t_app = time.perf_counter()
            try:
                await VISITS[app](page, base, r, timeout)
            except Exception as e:
                r.errors.append(f"{app}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
                if SCREENSHOTS:
                    try:
                        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
                        await page.screenshot(path=str(Path(SCREENSHOTS) / f"session{index}-{app}.png"))
                    except Exception:
                        pass
            r.phases[app] = time.perf_counter() - t_app
        r.done = True
    finally:
        await context.close()
        r.seconds = time.perf_counter() - t0
    return r


def check_isolation(results: list[SessionResult]) -> list[str]:
    """What each session saw must be its own: its seed, its step count, its pixel, its stroke only."""
    problems: list[str] = []
    ys = []
    for r in results:
        s = r.sampler
        if s:
            if s["seed"] != r.seed or s["size"] != SIZE or s["batch"] != 1:
                problems.append(f"session {r.index}: sampler NPZ has seed={s['seed']} size={s['size']} "
                                f"batch={s['batch']}, expected seed={r.seed} size={SIZE} batch=1")
            if s["steps"] != SAMPLER_STEPS or s["shown_steps"] != SAMPLER_STEPS:
                problems.append(f"session {r.index}: {SAMPLER_STEPS} Step clicks but the sampler recorded "
                                f"{s['steps']} steps and the page shows t = {s['shown_steps']}")
            ys.append((r.index, s["y"]))
        f = r.filters
        if f and f["shown"] != f["npz_pixel"]:
            problems.append(f"session {r.index}: the page shows pixel {f['shown']} but its NPZ has {f['npz_pixel']}")
        v = r.inverse
        if v:
            if v["seed"] != r.seed:
                problems.append(f"session {r.index}: inverse NPZ has seed {v['seed']}, expected {r.seed}")
            if not v["n_holes"] or v["row_span"][1] - v["row_span"][0] > 2 * BRUSH_RADIUS + 3:
                problems.append(f"session {r.index}: its mask is not its one stroke: {v['n_holes']} holes in rows "
                                f"{v['row_span']}")
    for a in range(len(ys)):
        for b in range(a + 1, len(ys)):
            if np.array_equal(ys[a][1], ys[b][1]):
                problems.append(f"sessions {ys[a][0]} and {ys[b][0]} (different seeds) show the same sampler image")
    # distinct click positions → distinct pixels; lower strokes → lower hole rows
    pix = [(r.filters["click"], r.filters["shown"], r.index) for r in results if r.filters]
    for a in range(len(pix)):
        for b in range(a + 1, len(pix)):
            if pix[a][0] != pix[b][0] and pix[a][1] == pix[b][1]:
                problems.append(f"sessions {pix[a][2]} and {pix[b][2]} clicked different places but show the "
                                f"same pixel {pix[a][1]}")
    inv = sorted((r.inverse["fy"], r.inverse["row_centre"], r.index) for r in results if r.inverse)
    for (fa, ca, ia), (fb, cb, ib) in zip(inv, inv[1:]):
        if fb > fa and not cb > ca:
            problems.append(f"session {ib} drew lower than session {ia} but its holes are not lower "
                            f"(mean row {cb:.1f} vs {ca:.1f})")
    return problems


def niced_chromium(niceness: int) -> str:
    """An executable that runs chromium at ``niceness``: its pages take only the CPU that normal-priority
    processes leave (students' browsers on their own laptops, emulated on one machine).

    A plain ``nice -n`` does not hold: chromium sets its renderers' nice value itself (0 in the foreground,
    5 in the background, and −8 for its display threads when it may), so they competed with the server at
    full weight. The wrapper starts chromium in a new session, which on Linux with autogroup scheduling is
    its own scheduling group, and gives that group the niceness (``/proc/self/autogroup``): chromium's
    per-process changes then only share out the group's small part between its own processes."""
    path = Path(tempfile.gettempdir()) / f"explorer-chromium-group-nice{niceness}"
    script = (f"#!/bin/sh\nexec setsid -w sh -c 'echo {niceness} > /proc/self/autogroup 2>/dev/null; "
              f"exec nice -n {niceness} {CHROMIUM} \"$@\"' chromium \"$@\"\n")
    if not path.exists() or path.read_text() != script:
        tmp = path.with_suffix(f".{os.getpid()}")
        tmp.write_text(script)
        tmp.chmod(0o755)
        tmp.replace(path)
    return str(path)


async def launch_browser(pw, niceness: int = 0):
    """Headless chromium (``niceness`` > 0: all its processes at that niceness, see :func:`niced_chromium`)."""
    executable = niced_chromium(niceness) if niceness > 0 else CHROMIUM
    return await pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, headless=True)


async def run_round(base: str, n: int, timeout: float = 90.0, seed0: int = 1000, index0: int = 0,
                    browser=None) -> list[SessionResult]:
    """``n`` sessions at once (one chromium, ``n`` contexts); returns when all are closed."""
    from playwright.async_api import async_playwright

    if browser is not None:
        return list(await asyncio.gather(*(run_session(browser, base, index0 + i, seed0 + index0 + i, timeout)
                                           for i in range(n))))
    async with async_playwright() as pw:
        browser = await launch_browser(pw)
        try:
            return await run_round(base, n, timeout, seed0, index0, browser)
        finally:
            await browser.close()


# ------------------------------------------------------------------------------------------ soak CLI
def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


async def soak(server: Server, minutes: float, sessions: int, timeout: float, out=sys.stdout) -> int:
    from playwright.async_api import async_playwright

    def say(line: str = "") -> None:
        print(line, file=out, flush=True)

    async with async_playwright() as pw:
        browser = await launch_browser(pw)
        try:
            # warm-up: one session of every app (models loaded, caches filled), closed, then the baseline
            warm = await run_session(browser, server.base, 0, seed=999, timeout=timeout * 2)
            if warm.errors:
                say(f"warm-up session failed: {warm.errors}")
                return 1
            rss0, thr0 = await asyncio.to_thread(baseline, server)
            server.peak()
            say(f"warm baseline after one session: server RSS {rss0:.0f} MB, {thr0} threads "
                f"(warm-up took {warm.seconds:.0f} s)")
            say(f"{'minute':>6} {'sessions':>8} {'errors':>6} {'step p50':>8} {'step p95':>8} "
                f"{'click p50':>9} {'click p95':>9} {'RSS MB':>7} {'threads':>7}")
            results: list[SessionResult] = []
            problems: list[str] = []
            end = time.monotonic() + minutes * 60
            started = time.monotonic()
            next_report = started + 60
            counter = [1]
            minute_rows = []

            async def user(slot: int) -> None:
                while time.monotonic() < end:
                    i = counter[0]
                    counter[0] += 1
                    await run_session(browser, server.base, i, seed=1000 + i, timeout=timeout, sink=results)

            async def reporter() -> None:
                nonlocal next_report
                seen: dict[int, tuple[int, int, int, bool]] = {}  # id → (steps, clicks, errors, done) reported
                while time.monotonic() < end + 3600:
                    await asyncio.sleep(1.0)
                    if time.monotonic() < next_report:
                        continue
                    rss, thr = server.stats()
                    minute = round((time.monotonic() - started) / 60)
                    steps, clicks, errs, done = [], [], 0, 0
                    for r in list(results):  # latencies measured during this minute, in any session
                        s0, c0, e0, d0 = seen.get(id(r), (0, 0, 0, False))
                        steps += r.step_latency[s0:]
                        clicks += r.click_latency[c0:]
                        errs += len(r.errors) - e0
                        done += int(r.done and not d0)
                        seen[id(r)] = (len(r.step_latency), len(r.click_latency), len(r.errors), r.done)
                    row = (minute, done, errs, pct(steps, 50), pct(steps, 95), pct(clicks, 50), pct(clicks, 95),
                           rss, thr)
                    minute_rows.append(row)
                    say(f"{row[0]:>6} {row[1]:>8} {row[2]:>6} {row[3]:>8.2f} {row[4]:>8.2f} "
                        f"{row[5]:>9.2f} {row[6]:>9.2f} {row[7]:>7.0f} {row[8]:>7}")
                    next_report += 60

            rep = asyncio.ensure_future(reporter())
            await asyncio.gather(*(user(s) for s in range(sessions)))
            rep.cancel()
            wall = time.monotonic() - started
        finally:
            await browser.close()

    peak_rss, peak_thr = server.peak()
    rss1, thr1, waited = settle(server, MAX_RSS_GROWTH * rss0, thr0, timeout=30.0)
    errors = [f"session {r.index}: {e}" for r in results for e in r.errors]
    problems += check_isolation(results)
    logged, benign = log_problems(server.logs())
    steps = [x for r in results for x in r.step_latency]
    clicks = [x for r in results for x in r.click_latency]
    runs = [x for r in results for x in r.runs]
    say("")
    for e in (errors + problems + [rec.splitlines()[0] + " …" for rec in logged])[:30]:
        say(f"  ✗ {e}")
    if benign:
        say(f"({benign} writes to an already closed websocket logged by tornado: browsers that left mid-update)")
    growth = rss1 / rss0 - 1
    say(f"runs: {runs.count('finished')} finished, {runs.count('paused')} paused, "
        f"{runs.count('abandoned')} left running and cancelled by the closed session")
    say(f"after the sessions closed ({waited:.0f} s settle): RSS {rss1:.0f} MB ({growth:+.0%} vs warm "
        f"{rss0:.0f} MB, peak {peak_rss:.0f} MB), threads {thr1} (warm {thr0}, peak {peak_thr})")
    summary = (f"Soak {wall / 60:.1f} min, {sessions} concurrent sessions: {sum(r.done for r in results)} sessions "
               f"completed, "
               f"{len(errors) + len(problems) + len(logged)} errors; sampler step p50/p95 "
               f"{pct(steps, 50):.2f}/{pct(steps, 95):.2f} s, filter click p50/p95 "
               f"{pct(clicks, 50):.2f}/{pct(clicks, 95):.2f} s; server RSS {rss0:.0f} → {rss1:.0f} MB "
               f"({growth:+.0%}, peak {peak_rss:.0f} MB), threads {thr0} → {thr1} (peak {peak_thr}).")
    say("SUMMARY: " + summary)
    bad = bool(errors or problems or logged) or rss1 > MAX_RSS_GROWTH * rss0 or thr1 > thr0 + MAX_THREAD_GROWTH
    return 1 if bad else 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=10.0, help="how long to keep the sessions going")
    ap.add_argument("--sessions", type=int, default=8, help="concurrent browser sessions")
    ap.add_argument("--port", type=int, default=None, help="port of the panel server it starts (default: free)")
    ap.add_argument("--timeout", type=float, default=180.0, help="seconds a single wait on a page may take")
    ap.add_argument("--glibc-defaults", action="store_true",
                    help="run the server with glibc's malloc defaults instead of ALLOCATOR_ENV")
    args = ap.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    with Server(args.port, env={} if args.glibc_defaults else None) as server:
        print(f"panel serve on {server.base} (pid {server.proc.pid}), log {server.log}", flush=True)
        return asyncio.run(soak(server, args.minutes, args.sessions, args.timeout))


if __name__ == "__main__":
    sys.exit(main())
