"""Hand a closed session's memory back to the operating system (a long-running classroom server).

glibc's allocator keeps the heap pages that a closed session's arrays, documents and images leave free in
its arenas: the server's RSS stays 15-25 % above its baseline after a class leaves although nothing is
leaked (``scripts/soak.py``). Once no session has ended for :data:`RELEASE_DELAY_S`, :func:`release_freed_memory`
asks glibc to return the free pages (``malloc_trim``).

The reference cycles a session leaves are collected by Panel itself: it runs ``gc.collect()`` debounced,
``panel.io.document.GC_DEBOUNCE`` (5 s) to twice that after the last session ended. A second full
collection here cost the server's event loop its lock for ~1 s per closed session under load (28 s of a
4-session round, ``py-spy``), so the trim waits for Panel's collection instead of repeating it.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import threading
from typing import Any

import panel as pn

RELEASE_DELAY_S = 12.0  # quiet seconds after the last session ended: Panel's debounced gc (5-10 s) has run
_HOOKED = "_explorer_release_memory"


def _malloc_trim() -> Any:
    """glibc's ``malloc_trim`` or None (another C library, another system)."""
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):
        return None


MALLOC_TRIM = _malloc_trim()
_timer_lock = threading.Lock()
_timer: threading.Timer | None = None


def release_freed_memory() -> bool:
    """``malloc_trim(0)`` where glibc has it (True), else nothing (False)."""
    if MALLOC_TRIM is None:
        return False
    MALLOC_TRIM(0)
    return True


def _release_later() -> None:
    """(Re)start the quiet-period timer: one release after the last of a burst of closed sessions."""
    global _timer
    with _timer_lock:
        if _timer is not None:
            _timer.cancel()
        _timer = threading.Timer(RELEASE_DELAY_S, release_freed_memory)
        _timer.daemon = True
        _timer.start()


def release_memory_after_session(doc: Any = None) -> bool:
    """Once per served session (``doc``, default the current one): when it is destroyed, :func:`release_freed_memory`
    once no other session has ended for :data:`RELEASE_DELAY_S`. False outside a served session or when already arranged."""
    doc = doc if doc is not None else pn.state.curdoc
    context = getattr(doc, "session_context", None)
    if context is None or getattr(doc, _HOOKED, False):
        return False
    setattr(doc, _HOOKED, True)
    doc.on_session_destroyed(lambda _context: _release_later())
    return True
