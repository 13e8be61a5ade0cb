"""A closed session's memory goes back to the system (explorer.ui.memory)."""
from __future__ import annotations

import threading
import time

from bokeh.document import Document

from explorer.ui import memory


def test_release_trims_the_heap(monkeypatch):
    trims: list[int] = []
    monkeypatch.setattr(memory, "MALLOC_TRIM", trims.append)
    assert memory.release_freed_memory() is True
    assert trims == [0]
    monkeypatch.setattr(memory, "MALLOC_TRIM", None)  # another C library: nothing to do, and no error
    assert memory.release_freed_memory() is False


def test_the_trim_waits_for_panels_own_garbage_collection():
    from panel.io import document

    assert memory.RELEASE_DELAY_S > 2 * document.GC_DEBOUNCE


def test_glibc_trim_is_found_on_linux():
    import sys

    if sys.platform.startswith("linux"):
        assert memory.MALLOC_TRIM is not None


class _Context:  # what a served session's document has (bokeh's BokehSessionContext)
    id = "session-1"


def test_a_served_session_releases_once_after_it_is_destroyed(monkeypatch):
    released = threading.Event()
    monkeypatch.setattr(memory, "RELEASE_DELAY_S", 0.05)
    monkeypatch.setattr(memory, "release_freed_memory", released.set)
    doc = Document()
    assert memory.release_memory_after_session(doc) is False  # not served: nothing to arrange
    doc._session_context = _Context()
    monkeypatch.setattr(Document, "session_context", property(lambda self: self._session_context), raising=False)
    assert memory.release_memory_after_session(doc) is True
    assert memory.release_memory_after_session(doc) is False  # once per session
    assert len(doc.session_destroyed_callbacks) == 1
    t0 = time.monotonic()
    for callback in doc.session_destroyed_callbacks:
        callback(doc.session_context)
    assert released.wait(5.0) and time.monotonic() - t0 >= 0.05


def test_a_burst_of_closed_sessions_releases_once_after_the_last(monkeypatch):
    calls: list[float] = []
    monkeypatch.setattr(memory, "RELEASE_DELAY_S", 0.3)
    monkeypatch.setattr(memory, "release_freed_memory", lambda: calls.append(time.monotonic()))
    for _ in range(4):
        memory._release_later()
        last = time.monotonic()
        time.sleep(0.1)  # each one before the last one's delay is over
    time.sleep(1.0)
    assert len(calls) == 1 and calls[0] - last >= 0.3
