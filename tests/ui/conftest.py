"""Fixtures of the UI tests: a tiny model handle, a served app, a headless chromium page.

- ``tiny_handle``: a 5-layer bias-free DnCNN in a ModelHandle, registered in every model picker
  under the name ``"tiny-test"`` (:func:`explorer.ui.models.register_handle`).
- ``served_app(path, *extra)``: starts ``panel serve <path> --port <free port>`` on 127.0.0.1 in a
  subprocess, waits until it answers, returns the base URL; killed at teardown (:func:`stop_server`).
- ``browser_page``: a playwright page on /usr/bin/chromium (headless) whose ``console_errors`` and
  ``page_errors`` lists record what the browser reported.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import torch

from explorer.denoisers import DnCNN
from explorer.handle import ModelHandle

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
TINY_NAME = "tiny-test"


def pytest_configure(config):
    config.addinivalue_line("markers", "browser: drives a served app in headless chromium")


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """The machine is small and shared: one intra-op thread keeps tiny models fast and tests stable."""
    torch.set_num_threads(1)


def train_tiny_denoiser(steps: int = 120, seed: int = 0) -> DnCNN:
    """A 5-layer, width-8 bias-free DnCNN fitted for a few Adam steps to disc images (σ ∈ [0, 1]).

    Just enough training that x̂(y) − y behaves like a denoiser residual (σ_t falls along the
    sampler's schedule), in about a second of CPU.
    """
    from explorer.data.synthetic import random_discs

    torch.manual_seed(seed)
    model = DnCNN(depth=5, width=8, bias_free=True)
    x = torch.as_tensor(random_discs(32, 20, seed=seed))[:, None]
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), 3e-3)
    model.train()
    for _ in range(steps):
        xb = x[torch.randint(0, len(x), (8,), generator=g)]
        y = xb + torch.rand(8, 1, 1, 1, generator=g) * torch.randn(xb.shape, generator=g)
        loss = (model(y) - xb).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


@pytest.fixture(scope="session")
def tiny_handle() -> ModelHandle:
    from explorer.ui.models import register_handle

    handle = ModelHandle(train_tiny_denoiser(), device="cpu", name=TINY_NAME,
                         card={"name": TINY_NAME, "architecture": "dncnn"})
    register_handle(TINY_NAME, handle)
    return handle


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 120.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with code {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=30) as r:
                if r.status == 200:
                    return
        except Exception as e:  # not up yet
            last = e
        time.sleep(0.3)
    raise TimeoutError(f"{url} did not answer within {timeout} s ({last})")


@pytest.fixture
def served_app(tmp_path):
    """Factory: ``url = served_app("apps/sampler.py")`` → base URL of the served app (e.g. .../sampler)."""
    procs: list[tuple[subprocess.Popen, Path]] = []

    def start(path: str | Path, *extra: str, env: dict[str, str] | None = None, timeout: float = 180.0) -> str:
        path = Path(path)
        if not path.is_absolute():
            path = ROOT / path
        port = free_port()
        log = tmp_path / f"panel-{port}.log"
        cmd = [sys.executable, "-m", "panel", "serve", str(path), "--port", str(port), "--address", "127.0.0.1",
               "--allow-websocket-origin", f"127.0.0.1:{port}", *extra]
        full_env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1", **(env or {})}
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=open(log, "w"), stderr=subprocess.STDOUT, env=full_env,
                                start_new_session=True)
        procs.append((proc, log))
        url = f"http://127.0.0.1:{port}/{path.stem}"
        wait_http(url, timeout, proc)
        return url

    start.logs = lambda: "\n".join(log.read_text() for _, log in procs if log.exists())  # type: ignore[attr-defined]
    yield start
    for proc, _ in procs:
        stop_server(proc)


def stop_server(proc: subprocess.Popen, timeout: float = 10.0) -> None:
    """End a server started with ``start_new_session=True``: SIGTERM to its process group, SIGKILL if it stays."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


def _ignorable(text: str) -> bool:
    """Console errors that only say the sandbox has no internet (web fonts, CDNs)."""
    t = text.lower()
    return any(k in t for k in ("fonts.googleapis", "fonts.gstatic", "cdn.", "unpkg", "jsdelivr",
                                "err_name_not_resolved", "err_internet_disconnected", "err_connection",
                                "failed to load resource", "net::err"))


@pytest.fixture
def browser_page():
    pw_sync = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    with pw_sync.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1500, "height": 1000})
        page.console_errors = []  # type: ignore[attr-defined]
        page.page_errors = []  # type: ignore[attr-defined]
        page.on("console", lambda m: m.type == "error" and not _ignorable(m.text) and page.console_errors.append(m.text))
        page.on("pageerror", lambda e: page.page_errors.append(str(e)))
        page.set_default_timeout(60_000)
        try:
            yield page
        finally:
            browser.close()
