"""A classroom on one server (issue #21 §4): N browser sessions, N − 1 playing the sampler, one clicking.

One ``panel serve`` (scripts/soak.py's server: sampler, filters and inverse apps, the default model);
one headless chromium with N isolated contexts, talking only to localhost:

- N − 1 sessions open the sampler at 64×64 (one chain, own seed, a schedule none finishes in the
  window: h₀ = 0.001, β = 0.01, σ_L = 0.002) and press Play;
- one session opens the filters tool and clicks a new pixel every ``--click-every`` seconds for
  ``--seconds``; click latency = click → the new pixel's filter on the page, and its server part (request
  on the server → filter computed, read off the page's "Filters computed in X s").

Reported per N and per scheduler (``EXPLORER_SCHEDULER``: ``priority``, the default design, and ``fifo``,
the former one lock per model, measured in the same run): click latency p50 / p95, the server's share of
the cores over the window (its CPU seconds per second: the rest went to the browsers and anything else), each sampler's steps/s
over the window (median, min), their aggregate, the aggregate against one sampler session alone (N = 1
runs one sampler and no clicks), and the server's RSS after the sessions closed against its warm baseline.
The steps are counted on the server (:mod:`explorer.usage`, ``EXPLORER_USAGE_FILE``: each session's streaming
images, one per step of a one-chain sampler), not read off the pages: a page at low priority shows its
steps late, so its own count says more about the browser than about the server; the pages' rate is kept
beside it.

    python benchmarks/bench_load.py [--sessions 1,8,16,32] [--schedulers priority,fifo] [--seconds 30] [--num-procs 2]
                                    [--student-niceness 19]
    python benchmarks/bench_load.py --in-process [--sessions 8]   # no browsers, no server: the model side only

``--in-process`` measures the model side alone, in one process per scheduler: N − 1 threads step a sampler
(x ← x + 0.01 (x̂(x) − x), streaming, one session each) on the default model at 64×64 while one thread asks
for one adaptive filter (a Jacobian row, interactive) every 0.3 s; it reports the click's median and max and
the samplers' steps/s together.

The browsers share the server's cores: the figures are the server's share of a machine that also renders
N pages; compare the two schedulers within one run, not across machines. In a classroom the students'
browsers run on their own laptops: ``--student-niceness 19`` emulates that on one machine by running the
N − 1 sampler pages in a second chromium, in its own scheduling group at nice 19 (``soak.niced_chromium``: they
get the CPU that the server and the clicking page leave), the clicking page and the server at normal priority.
"""
from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import re
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SIZE = 64
# a schedule none of the chains finishes within a window: h_t climbs from h₀ = 0.001 over ~1000 steps and
# β = 0.01 then takes σ_t down by 1 % a step, so σ_L = 0.002 takes ≳ 1600 steps (100 s alone); with
# h₀ = 0.005, β = 0.5, 13 of 15 seeds converged after 76–152 steps and stopped streaming before the window
SAMPLER_QUERY = f"size={SIZE}&chains=1&h0=0.001&beta=0.01&sigma_L=0.002"


def load_soak():
    """scripts/soak.py as a module (its server, browser and page helpers)."""
    if "explorer_soak" in sys.modules:
        return sys.modules["explorer_soak"]
    spec = importlib.util.spec_from_file_location("explorer_soak", ROOT / "scripts" / "soak.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@dataclass
class LoadResult:
    sessions: int
    scheduler: str
    clicks: list[float] = field(default_factory=list)  # seconds, click → filter shown
    server_clicks: list[float] = field(default_factory=list)  # seconds, request on the server → filter computed
    steps_per_s: list[float] = field(default_factory=list)  # one per sampler session, counted on the server
    page_steps_per_s: list[float] = field(default_factory=list)  # one per sampler page, read off the page
    rss_warm: float = 0.0  # MB, after a warm-up session closed
    rss_after: float = 0.0  # MB, after the N sessions closed
    errors: list[str] = field(default_factory=list)
    missed_clicks: int = 0
    procs: int = 1  # server processes (panel serve --num-procs)
    server_cores: float = float("nan")  # the server's CPU seconds per second of the window (its share of the cores)
    student_niceness: int = 0  # > 0: the N − 1 sampler pages ran in a chromium at this niceness

    @property
    def aggregate(self) -> float:
        return float(sum(self.steps_per_s))


async def _open_sampler(soak, browser, base: str, seed: int, timeout: float, errors: list[str]):
    context = await browser.new_context(viewport=soak.VIEWPORT)
    page = await context.new_page()
    page.set_default_timeout(timeout * 1000)
    page.on("pageerror", lambda e: errors.append(f"sampler {seed}: {e}"))
    await page.goto(f"{base}/sampler?{SAMPLER_QUERY}&seed={seed}", timeout=timeout * 1000)
    await page.wait_for_selector("text=Press Step or Play", timeout=timeout * 1000)
    await page.get_by_role("button", name="▶ Play").click()
    await soak._poll(lambda: soak._advanced(page, 0), timeout, "the sampler to play")
    return context, page


async def _open_filters(soak, browser, base: str, timeout: float, errors: list[str]):
    context = await browser.new_context(viewport=soak.VIEWPORT)
    page = await context.new_page()
    page.set_default_timeout(timeout * 1000)
    page.on("pageerror", lambda e: errors.append(f"filters: {e}"))
    await page.goto(f"{base}/filters", timeout=timeout * 1000)
    await page.locator("p", has_text="pixel i =").first.wait_for(timeout=timeout * 1000)
    await soak._poll(lambda: soak._status_done(page), timeout, "the first filters")
    return context, page


async def _click(soak, page, k: int, timeout: float) -> tuple[float, float] | None:
    """Click the k-th pixel of a fixed walk over the noisy image: seconds until its filter is shown on the page,
    and the server's part (the page's "Filters computed in X s": from the click's request reaching the
    server to its filter computed, queueing included; the rest is the socket, the event loop and the browser)."""
    pixel = page.locator("p", has_text="pixel i =").first
    canvas = page.locator("canvas").first
    before = await soak._text(pixel)
    fx, fy = 0.15 + 0.07 * (k % 10), 0.2 + 0.055 * ((k // 10) % 10) + 0.013 * (k % 3)
    box = await canvas.bounding_box()
    if not box:
        return None
    t0 = time.perf_counter()
    await page.mouse.click(box["x"] + fx * box["width"], box["y"] + fy * box["height"])
    try:
        await soak._poll(lambda: soak._changed(pixel, before), timeout, "the clicked pixel's filter", interval=0.02)
        await soak._poll(lambda: soak._status_done(page), timeout, "the filters", interval=0.02)
    except TimeoutError:
        return None
    latency = time.perf_counter() - t0
    status = await soak._text(page.locator("p", has_text="Filters computed in").first)
    found = re.search(r"computed in ([0-9.]+) s", status)
    return latency, float(found.group(1)) if found else float("nan")


async def _read_steps(soak, page, timeout: float) -> tuple[float, int]:
    """(when, step count) read off a sampler page. A page at low priority can miss one read's deadline, so
    read until a count comes back; each page's rate uses its own read times."""
    t0 = time.perf_counter()
    while True:
        count = await soak._step_counter(page)
        if count >= 0 or time.perf_counter() - t0 > timeout:
            return time.perf_counter(), count


def read_usage(folder: Path) -> dict[str, dict]:
    """The server processes' latest :mod:`explorer.usage` snapshots in ``folder``: pid → snapshot."""
    snapshots = {}
    for path in folder.glob("usage-*.json"):
        try:
            snap = json.loads(path.read_text())
        except (OSError, ValueError):  # (replaced while read: the next read has it)
            continue
        snapshots[str(snap["pid"])] = snap
    return snapshots


def streaming_rates(before: dict[str, dict], after: dict[str, dict]) -> list[float]:
    """Each session's streaming images per second between two :func:`read_usage` readings, on the
    server's clock (one image per step for a one-chain sampler): the sessions that streamed meanwhile."""
    rates = []
    for pid, end in after.items():
        start = before.get(pid, {"time": end["time"], "by_session": {}})
        span = end["time"] - start["time"]
        for session, counts in end["by_session"].items():
            done = counts.get("streaming", 0) - start["by_session"].get(session, {}).get("streaming", 0)
            if done > 0 and span > 0:
                rates.append(done / span)
    return rates


async def _usage_now(folder: Path) -> dict[str, dict]:
    """A reading of the usage files written after this call (they are rewritten twice a second)."""
    await asyncio.sleep(1.2)
    return read_usage(folder)


async def scenario(soak, base: str, sessions: int, seconds: float, click_every: float, timeout: float = 120.0,
                   scheduler: str = "priority", server=None, student_niceness: int = 0,
                   usage: Path | None = None) -> LoadResult:
    """N − 1 playing samplers and one clicking session (N = 1: one sampler alone); see the module.

    ``student_niceness`` > 0 opens the sampler pages in a second chromium at that niceness: the students'
    browsers, which in a classroom run on their own laptops, take only the CPU the server and the
    measured (clicking) page leave."""
    from playwright.async_api import async_playwright

    result = LoadResult(sessions=sessions, scheduler=scheduler, student_niceness=student_niceness)
    async with async_playwright() as pw:
        browser = await soak.launch_browser(pw)
        students = await soak.launch_browser(pw, student_niceness) if student_niceness > 0 else browser
        try:
            n_samplers = 1 if sessions == 1 else sessions - 1
            # the clicking page first (its load is not what is measured), then the samplers start playing
            clicker = None if sessions == 1 else await _open_filters(soak, browser, base, timeout, result.errors)
            opened = await asyncio.gather(*(_open_sampler(soak, students, base, 500 + i, timeout, result.errors)
                                            for i in range(n_samplers)))
            start = await asyncio.gather(*(_read_steps(soak, p, timeout) for _c, p in opened))
            usage0 = await _usage_now(usage) if usage is not None else {}
            cpu0 = server.cpu_seconds() if server is not None else None
            t0 = time.perf_counter()
            k = 0
            while time.perf_counter() - t0 < seconds:
                tick = time.perf_counter()
                if clicker is not None:
                    latency = await _click(soak, clicker[1], k, timeout)
                    if latency is None:
                        result.missed_clicks += 1
                    else:
                        result.clicks.append(latency[0])
                        result.server_clicks.append(latency[1])
                    k += 1
                await asyncio.sleep(max(0.0, click_every - (time.perf_counter() - tick)))
            window = time.perf_counter() - t0
            if cpu0 is not None:
                result.server_cores = (server.cpu_seconds() - cpu0) / window
            if usage is not None:
                result.steps_per_s = streaming_rates(usage0, await _usage_now(usage))
                if len(result.steps_per_s) < n_samplers:  # a finished run no longer streams: not the load measured
                    result.errors.append(f"{n_samplers - len(result.steps_per_s)} of {n_samplers} samplers made no "
                                         f"step on the server in the window")
            end = await asyncio.gather(*(_read_steps(soak, p, timeout) for _c, p in opened))
            result.page_steps_per_s = [(b - a) / (tb - ta) for (ta, a), (tb, b) in zip(start, end) if a >= 0 and b >= 0]
            for context, _page in [*opened, *([clicker] if clicker else [])]:
                await context.close()
        finally:
            if students is not browser:
                await students.close()
            await browser.close()
    return result


async def _warm_up(soak, base: str, timeout: float) -> None:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await soak.launch_browser(pw)
        try:
            errors: list[str] = []
            for context, _page in [await _open_sampler(soak, browser, base, 1, timeout, errors),
                                   await _open_filters(soak, browser, base, timeout, errors)]:
                await context.close()
        finally:
            await browser.close()


def released_rss(soak, server) -> float:
    """The server's RSS (MB) once the closed sessions' memory went back: :mod:`explorer.ui.memory` trims the
    heap once no session has ended for its quiet period (which outlasts Panel's debounced collection), then
    ``soak.baseline`` waits for the sessions' destruction and two readings that agree. Read earlier, it is
    the freed but not yet returned heap."""
    from explorer.ui.memory import RELEASE_DELAY_S

    time.sleep(RELEASE_DELAY_S + 2.0)  # (+ the 1.5 s soak.baseline allows for the destruction, + a margin)
    return soak.baseline(server)[0]


def measure(sessions: int, scheduler: str, seconds: float, click_every: float, log_dir: Path | None = None,
            procs: int = 1, student_niceness: int = 0) -> LoadResult:
    """One fresh server with ``EXPLORER_SCHEDULER=scheduler`` (``procs`` > 1: ``panel serve --num-procs``):
    warm-up, baseline, the scenario, memory after (of all its processes)."""
    soak = load_soak()
    usage = Path(tempfile.mkdtemp(prefix="explorer-usage-"))
    env = {**soak.ALLOCATOR_ENV, "EXPLORER_SCHEDULER": scheduler, "EXPLORER_USAGE_FILE": str(usage / "usage-{pid}.json")}
    log = (log_dir / f"panel-{scheduler}-{sessions}-{procs}.log") if log_dir else None
    extra = ("--num-procs", str(procs)) if procs > 1 else ()
    with soak.Server(env=env, log=log, extra=extra) as server:
        asyncio.run(_warm_up(soak, server.base, 120.0))
        warm = released_rss(soak, server)
        result = asyncio.run(scenario(soak, server.base, sessions, seconds, click_every, scheduler=scheduler,
                                      server=server, student_niceness=student_niceness, usage=usage))
        result.rss_warm, result.rss_after = warm, released_rss(soak, server)
        result.procs = procs
        problems, _benign = soak.log_problems(server.logs())
        result.errors += problems
    return result


def pct(values: list[float], q: float) -> float:
    return load_soak().pct(values, q)


def table(results: list[LoadResult]) -> str:
    alone = {r.scheduler: r.aggregate for r in results if r.sessions == 1 and r.procs == 1}
    lines = ["| sessions | scheduler | click p50 (s) | click p95 (s) | on the server p50 / p95 (s) | clicks "
             "| sampler steps/s on the server (median, min) | aggregate steps/s | × one alone | pages' steps/s (median) "
             "| server's cores | RSS after / warm |",
             "|---:|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|"]
    for r in results:
        sps = r.steps_per_s
        ratio = r.aggregate / alone[r.scheduler] if alone.get(r.scheduler) else float("nan")
        rss = r.rss_after / r.rss_warm if r.rss_warm else float("nan")  # (a run that failed read none)
        clicks = f"{len(r.clicks)}" + (f" (+{r.missed_clicks} missed)" if r.missed_clicks else "")
        name = r.scheduler + (f", {r.procs} processes" if r.procs > 1 else "") + (
            f", students at nice {r.student_niceness}" if r.student_niceness else "")
        lines.append(f"| {r.sessions} | {name} | {pct(r.clicks, 50):.2f} | {pct(r.clicks, 95):.2f} "
                     f"| {pct(r.server_clicks, 50):.2f} / {pct(r.server_clicks, 95):.2f} | {clicks} "
                     f"| {pct(sps, 50):.1f}, {min(sps, default=float('nan')):.1f} | {r.aggregate:.1f} | {ratio:.2f} "
                     f"| {pct(r.page_steps_per_s, 50):.1f} | {r.server_cores:.2f} | {rss:.2f} |")
    return "\n".join(lines)


def in_process_worker(sessions: int, clicks: int = 8) -> dict:
    """The ``--in-process`` measurement in this process (its scheduler is ``$EXPLORER_SCHEDULER``)."""
    import threading

    import torch

    import explorer
    from explorer import jacobian
    from explorer.scheduler import Priority, request_context

    torch.set_num_threads(1)  # as the apps (explorer.ui.theme.limit_torch_threads)
    handle = explorer.load(explorer.DEFAULT_MODEL)
    stop, steps = threading.Event(), [0] * max(0, sessions - 1)

    def sampler(k: int) -> None:
        y = torch.rand(1, 1, SIZE, SIZE, generator=torch.Generator().manual_seed(k))
        with request_context(Priority.STREAMING, session=k):
            while not stop.is_set():
                y = y + 0.01 * (handle.denoise(y) - y)
                steps[k] += 1

    threads = [threading.Thread(target=sampler, args=(k,)) for k in range(len(steps))]
    image = torch.rand(1, 1, SIZE, SIZE, generator=torch.Generator().manual_seed(99))
    with request_context(Priority.INTERACTIVE, session="clicker"):
        jacobian.row(handle, image, (0, 0), None)  # warm
    for t in threads:
        t.start()
    time.sleep(1.0)
    latencies = []
    s0, t0 = sum(steps), time.perf_counter()
    for i in range(clicks):
        tick = time.perf_counter()
        with request_context(Priority.INTERACTIVE, session="clicker"):
            jacobian.row(handle, image, (5 + 3 * i, 20), None)
        latencies.append(time.perf_counter() - tick)
        time.sleep(0.3)
    rate = (sum(steps) - s0) / (time.perf_counter() - t0)
    stop.set()
    for t in threads:
        t.join()
    return dict(click_median=statistics.median(latencies), click_max=max(latencies), steps_per_s=rate)


def in_process(sessions: list[int], schedulers: list[str]) -> str:
    """Run :func:`in_process_worker` in a fresh process per (N, scheduler); a table."""
    import os
    import subprocess

    rows = ["| samplers + 1 clicking | scheduler | click median (s) | click max (s) | samplers' steps/s together |",
            "|---:|---|---:|---:|---:|"]
    for n in sessions:
        for scheduler in schedulers:
            env = {**os.environ, "EXPLORER_SCHEDULER": scheduler, "OMP_NUM_THREADS": "1"}
            out = subprocess.run([sys.executable, __file__, "--worker", str(n)], env=env, capture_output=True,
                                 text=True, check=True).stdout.strip().splitlines()[-1]
            r = json.loads(out)
            rows.append(f"| {n - 1} + 1 | {scheduler} | {r['click_median']:.3f} | {r['click_max']:.3f} | {r['steps_per_s']:.1f} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sessions", default="1,8,16,32", help="comma-separated N")
    p.add_argument("--schedulers", default="priority,fifo")
    p.add_argument("--seconds", type=float, default=30.0, help="measurement window per N")
    p.add_argument("--click-every", type=float, default=3.0)
    p.add_argument("--num-procs", type=int, default=0,
                   help="also measure the largest N with `panel serve --num-procs K` (the multi-process recipe)")
    p.add_argument("--student-niceness", type=int, default=0,
                   help="run the N − 1 sampler pages in a chromium at this niceness (19: students' own laptops, "
                        "emulated; 0: every page shares the cores with the server as one)")
    p.add_argument("--in-process", action="store_true", help="the model side only: threads, no server or browsers")
    p.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.worker is not None:
        print(json.dumps(in_process_worker(a.worker)))
        return 0
    if a.in_process:
        sizes = [int(v) for v in a.sessions.split(",")] if a.sessions != "1,8,16,32" else [1, 8]
        print(in_process(sizes, a.schedulers.split(",")))
        return 0
    results = []
    for scheduler in a.schedulers.split(","):
        for n in (int(v) for v in a.sessions.split(",")):
            r = measure(n, scheduler, a.seconds, a.click_every, student_niceness=a.student_niceness)
            results.append(r)
            print(f"N={n} {scheduler}: clicks {[round(c, 2) for c in r.clicks]} "
                  f"(on the server {[round(c, 2) for c in r.server_clicks]}), steps/s "
                  f"{[round(s, 1) for s in r.steps_per_s]}, errors {len(r.errors)}", flush=True)
            for e in r.errors[:3]:
                print("  ", e[:500])
    if a.num_procs > 1:
        n = max(int(v) for v in a.sessions.split(","))
        try:
            r = measure(n, a.schedulers.split(",")[0], a.seconds, a.click_every, procs=a.num_procs,
                        student_niceness=a.student_niceness)
        except Exception as e:  # (a page that did not load): the other rows are still reported
            print(f"N={n}, {a.num_procs} processes: failed: {type(e).__name__}: {str(e).splitlines()[0]}", flush=True)
            r = LoadResult(sessions=n, scheduler=a.schedulers.split(",")[0], procs=a.num_procs,
                           errors=[f"{type(e).__name__}: {e}"])
        results.append(r)
        print(f"N={n} {r.scheduler}, {a.num_procs} processes: clicks {[round(c, 2) for c in r.clicks]}, "
              f"steps/s {[round(s, 1) for s in r.steps_per_s]}, errors {len(r.errors)}", flush=True)
    rows = sorted(results, key=lambda r: (r.sessions, r.procs, r.scheduler))
    print(table(rows))
    summary = {}
    for n in sorted({r.sessions for r in results} - {1}):
        by = {r.scheduler: r for r in results if r.sessions == n and r.procs == 1}
        if "priority" in by and "fifo" in by and by["fifo"].aggregate > 0:
            summary[n] = by["priority"].aggregate / by["fifo"].aggregate
    if summary:
        print("aggregate sampler throughput, priority / fifo: "
              + ", ".join(f"N={n}: {v:.2f}×" for n, v in summary.items()))
    return 1 if any(r.errors for r in results) else 0


if __name__ == "__main__":
    raise SystemExit(main())
