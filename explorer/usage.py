"""What the model handles computed, per request class and session: images passed through a denoiser.

Every ``denoise`` / ``residual`` of a :class:`explorer.handle.ModelHandle` adds its batch size B to the
count of the caller's class (:class:`explorer.scheduler.Priority`) and session
(:func:`explorer.scheduler.current_session`). A playing sampler with one chain takes one image per step,
so a session's streaming count is its sampler's steps, counted on the server, whatever its page shows.

``EXPLORER_USAGE_FILE=path`` makes the process write :func:`snapshot` as JSON to ``path`` twice a second
(``{pid}`` in the path becomes the process id, for ``panel serve --num-procs``; at exit, once more): the load benchmark reads
the sessions' throughput there. Without it nothing is written and a count costs one dict update.
"""
from __future__ import annotations

import atexit
import json
import os
import threading
import time
from collections import Counter
from collections.abc import Hashable
from pathlib import Path

from .scheduler import current_priority, current_session

WRITE_EVERY = 0.5  # seconds between two snapshots written to $EXPLORER_USAGE_FILE
USAGE_FILE = os.environ.get("EXPLORER_USAGE_FILE")  # read once: a count on the handles' path costs no lookup

_lock = threading.Lock()
_by_class: Counter[str] = Counter()  # class name → images, every session, since the process started
_by_session: dict[Hashable, Counter[str]] = {}  # open session → class name → images
_writer: threading.Thread | None = None


def record(images: int) -> None:
    """``images`` went through a model for the current request's class and session."""
    name, session = current_priority().name.lower(), current_session()
    with _lock:
        _by_class[name] += images
        if session is not None:
            _by_session.setdefault(session, Counter())[name] += images
    if _writer is None and USAGE_FILE:
        _start_writer(USAGE_FILE)


def forget(session: Hashable) -> None:
    """A session closed: drop its own counts (the class totals keep them)."""
    with _lock:
        _by_session.pop(session, None)


def snapshot() -> dict:
    """``{"time": unix seconds, "pid", "by_class": {class: images}, "by_session": {str(session): {class: images}}}``."""
    with _lock:
        return {"time": time.time(), "pid": os.getpid(), "by_class": dict(_by_class),
                "by_session": {str(s): dict(c) for s, c in _by_session.items()}}


def usage_path(template: str) -> Path:
    """The file this process writes for the ``$EXPLORER_USAGE_FILE`` template (``{pid}`` filled in)."""
    return Path(template.replace("{pid}", str(os.getpid())))


def _start_writer(template: str) -> None:
    global _writer
    with _lock:
        if _writer is not None:
            return
        path = usage_path(template)
        stop = threading.Event()

        def write() -> None:
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_text(json.dumps(snapshot()))
            tmp.replace(path)  # a reader never sees half a file

        def write_until_exit() -> None:
            write()
            while not stop.wait(WRITE_EVERY):
                write()

        def finish() -> None:  # at exit: the last counts written, no half-written file left behind
            stop.set()
            _writer.join(timeout=5)

        _writer = threading.Thread(target=write_until_exit, name="explorer-usage", daemon=True)
        _writer.start()
        atexit.register(finish)
