"""The UI's side of the scheduler: tasks tag their model calls with a class and their session, a closed
session's queued calls are dropped, and the per-session limits refuse with a message naming the limit."""
from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import pytest

from explorer.scheduler import (Priority, PriorityGate, SessionClosed, current_priority, current_session, foreground_active,
                                foreground_begin, request_context)
from explorer.ui.limits import SessionLimit, check_chain_pixels
from explorer.ui.sampler_state import SamplerRun
from explorer.ui.tasks import BackgroundWorker, LatestTask, session_key


def _served_doc(session_id: str) -> SimpleNamespace:
    return SimpleNamespace(session_context=SimpleNamespace(id=session_id, _session=None))


def test_tasks_tag_their_calls_with_class_and_session():
    seen = []
    task = LatestTask(lambda req, stop, publish: seen.append((current_priority(), current_session())), lambda _x: None,
                      priority=Priority.BULK)
    task.submit("go")  # no served page: inline, no session
    assert seen == [(Priority.BULK, None)]
    worker = BackgroundWorker(lambda _x: None)
    assert worker.priority is Priority.STREAMING  # sampler and Algorithm 2 runs
    assert session_key(_served_doc("abc")) == "abc" and session_key(None) is None


def test_a_closed_sessions_queued_model_calls_are_dropped():
    gate = PriorityGate(name="model")
    task = LatestTask(lambda *_: None, lambda _x: None)
    task._doc = _served_doc("closing")
    outcome, held, go = [], threading.Event(), threading.Event()

    def holder():
        with gate:
            held.set()
            go.wait(10)

    def queued():
        with request_context(Priority.STREAMING, session="closing"):
            try:
                with gate:
                    outcome.append("ran")
            except SessionClosed:
                outcome.append("dropped")

    h = threading.Thread(target=holder)
    h.start()
    held.wait(10)
    q = threading.Thread(target=queued)
    q.start()
    while gate.waiting() == 0:
        time.sleep(0.002)
    task.shutdown()  # what a destroyed session does
    go.set()
    for t in (h, q):
        t.join(10)
    assert outcome == ["dropped"]


def test_runs_per_session_are_limited(monkeypatch):
    monkeypatch.setenv("EXPLORER_MAX_RUNS", "2")
    doc, release = _served_doc("one-page"), threading.Event()
    workers = [BackgroundWorker(lambda _x: None) for _ in range(3)]
    for w in workers:
        w._doc = doc
    try:
        for w in workers[:2]:
            w.start(lambda stop, publish: release.wait(10))
        with pytest.raises(SessionLimit, match="EXPLORER_MAX_RUNS=2"):
            workers[2].start(lambda stop, publish: None)
        other = BackgroundWorker(lambda _x: None)
        other._doc = _served_doc("another-page")  # another session is not limited by this one's runs
        other.start(lambda stop, publish: None)
        other.join(10)
    finally:
        release.set()
        for w in workers[:2]:
            w.join(10)
    workers[2].start(lambda stop, publish: None)  # the first two ended: room again
    workers[2].join(10)


def test_chain_pixels_are_limited_with_a_message(monkeypatch):
    check_chain_pixels(8, 256, 256)  # the sampler's largest setting passes by default
    monkeypatch.setenv("EXPLORER_MAX_CHAIN_PIXELS", "4096")
    with pytest.raises(SessionLimit, match="4,096 pixels per run"):
        check_chain_pixels(2, 64, 64)
    from explorer.denoisers import DnCNN
    from explorer.handle import ModelHandle

    run = SamplerRun(chains=2, size=64)
    assert run.build(ModelHandle(DnCNN(depth=3, width=4), device="cpu"), (2, 1, 64, 64)) is None
    assert "EXPLORER_MAX_CHAIN_PIXELS" in run.error
    monkeypatch.setenv("EXPLORER_MAX_CHAIN_PIXELS", "many")
    with pytest.raises(ValueError, match="not a whole number"):
        check_chain_pixels(1, 8, 8)


def test_playing_workers_leave_the_event_loop_room():
    """With n workers playing, each renders at most every LOOP_SHARE · n · (render time); the periodic
    tick skips a render that comes too early, but never the last one."""
    from explorer.ui import tasks

    rendered, release = [], threading.Event()
    workers = [BackgroundWorker(lambda snap: (rendered.append(snap), time.sleep(0.02)), period=10) for _ in range(2)]
    for w in workers:
        w.start(lambda stop, publish: (publish("s"), release.wait(10)))
    try:
        w = workers[0]
        while not all(x._dirty for x in workers):  # both have published their first snapshot
            time.sleep(0.002)
        t0 = time.perf_counter()
        assert w.flush()  # by hand: always renders
        gap = w._next_render_at - t0
        assert gap >= tasks.LOOP_SHARE * 2 * 0.02 * 0.9  # two playing: ≥ 3 · 2 · 20 ms
        w.publish("again")
        w._tick()  # too early: held back
        assert rendered == ["s"]
    finally:
        release.set()
        for x in workers:
            x._job_done.wait(10)
    workers[0]._tick()  # the job ended: the last snapshot is shown at once
    assert rendered[-1] == "again"


def test_a_refused_run_is_reported_like_a_failed_one():
    """The sampler's Play over the runs limit: on_done gets the SessionLimit (the page shows its message)."""
    from explorer.denoisers import DnCNN
    from explorer.handle import ModelHandle

    run = SamplerRun(chains=1, size=32)
    run.build(ModelHandle(DnCNN(depth=3, width=4), device="cpu"), (1, 1, 32, 32))
    seen = []

    def refuse(work, on_done):
        raise SessionLimit("over EXPLORER_MAX_RUNS")
    assert run.play(start=refuse, on_done=seen.append) is False
    assert [str(e) for e in seen] == ["over EXPLORER_MAX_RUNS"] and not run.playing


def test_work_after_the_shown_result_runs_in_the_background_and_frees_the_other_pages():
    """A filter click's posterior maps come after its filter: from then on they are streaming work, and the
    click stops holding the other classes back (LatestTask.then_in_background)."""
    seen = []

    def compute(req, stop, publish):
        publish("filter")
        seen.append(("asked for", current_priority(), foreground_active()))
        with task.then_in_background():
            seen.append(("extra", current_priority(), foreground_active()))
        seen.append(("after", current_priority()))

    task = LatestTask(compute, seen.append)
    task._foreground = foreground_begin()  # a click in flight, as a served submit begins it
    task.submit("click")
    assert seen == ["filter", ("asked for", Priority.INTERACTIVE, True), ("extra", Priority.STREAMING, False),
                    ("after", Priority.INTERACTIVE)]
