"""explorer.usage: the images the handles denoise, counted per request class and session, and the file a
served process writes them to (the load benchmark's server-side step counts)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
import torch

from explorer import usage
from explorer.denoisers.classical import GaussianSmoothing
from explorer.handle import ModelHandle
from explorer.scheduler import Priority, request_context

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("mode", ["priority", "fifo"])
def test_each_session_and_class_counts_the_images_it_denoised(mode, monkeypatch):
    monkeypatch.setenv("EXPLORER_SCHEDULER", mode)
    handle = ModelHandle(GaussianSmoothing(), device="cpu")
    before = usage.snapshot()["by_class"]
    y = torch.rand(3, 1, 16, 16)

    def sampler(session: str, steps: int) -> None:
        with request_context(Priority.STREAMING, session=session):
            for _ in range(steps):
                handle.residual(y[:1], 0.1)

    threads = [threading.Thread(target=sampler, args=(f"{mode}-s{k}", 4 + k)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with request_context(Priority.INTERACTIVE, session=f"{mode}-clicker"):
        handle.denoise(y, 0.1)  # one call of three images
    with request_context(Priority.BULK, session=f"{mode}-clicker"):
        handle.denoise(y[0, 0].numpy(), 0.1)  # an array image counts as one
    snap = usage.snapshot()
    sessions = snap["by_session"]
    assert [sessions[f"{mode}-s{k}"] for k in range(3)] == [{"streaming": 4}, {"streaming": 5}, {"streaming": 6}]
    assert sessions[f"{mode}-clicker"] == {"interactive": 3, "bulk": 1}
    grew = {k: snap["by_class"].get(k, 0) - before.get(k, 0) for k in ("interactive", "streaming", "bulk")}
    assert grew == {"interactive": 3, "streaming": 15, "bulk": 1}
    # a closed session's own counts go; the class totals keep them
    usage.forget(f"{mode}-s0")
    assert f"{mode}-s0" not in usage.snapshot()["by_session"]
    assert usage.snapshot()["by_class"]["streaming"] - before.get("streaming", 0) == 15


def test_calls_outside_a_session_count_only_in_the_class_totals():
    handle = ModelHandle(GaussianSmoothing(), device="cpu")
    sessions = set(usage.snapshot()["by_session"])
    handle.denoise(torch.rand(2, 1, 8, 8), 0.1)
    assert set(usage.snapshot()["by_session"]) == sessions


def test_the_usage_file_is_written_per_process(tmp_path):
    """With EXPLORER_USAGE_FILE set, a process writes its snapshot to the path with its pid filled in."""
    script = textwrap.dedent("""
        import json, os, sys, time, torch
        from explorer.denoisers.classical import GaussianSmoothing
        from explorer.handle import ModelHandle
        from explorer.scheduler import request_context
        h = ModelHandle(GaussianSmoothing(), device="cpu")
        with request_context("streaming", session="abc"):
            for _ in range(7):
                h.denoise(torch.rand(1, 1, 8, 8), 0.1)
        time.sleep(1.5)  # > two writing periods
        print(os.getpid())
    """)
    env = {**os.environ, "EXPLORER_USAGE_FILE": str(tmp_path / "usage-{pid}.json"), "PYTHONPATH": str(ROOT)}
    pid = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True,
                         timeout=120).stdout.split()[-1]
    written = json.loads((tmp_path / f"usage-{pid}.json").read_text())
    assert written["pid"] == int(pid)
    assert written["by_session"] == {"abc": {"streaming": 7}} and written["by_class"] == {"streaming": 7}
    assert not list(tmp_path.glob("*.tmp"))
