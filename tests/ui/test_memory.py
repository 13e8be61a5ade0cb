"""A closed session's memory goes back to the system (explorer.ui.memory)."""
from __future__ import annotations

import gc
import threading
import time

from bokeh.document import Document

from explorer.ui import memory


class _Cycle:
    def __init__(self):
        self.me = self


def test_release_collects_reference_cycles_and_trims_the_heap(monkeypatch):
    trims: list[int] = []
    monkeypatch.setattr(memory, "MALLOC_TRIM", trims.append)
    gc.collect()
    for _ in range(50):
        _Cycle()
    assert memory.release_freed_memory() >= 50
    assert trims == [0]


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
