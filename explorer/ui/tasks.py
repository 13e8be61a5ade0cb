"""Work off the event loop: one background runner for every tool, plus the session plumbing it needs.

One daemon worker thread per runner, alive while it has work queued:

- :class:`LatestTask` — ``submit(request)`` runs ``compute(request, stop, publish)``; the newest
  request wins (the running one's ``stop`` event is set and what it publishes afterwards dropped;
  superseded queued requests never run). Each ``publish(x)`` calls ``render(x)`` on the session's
  event loop, so stages appear as they come; ``on_error(exc)`` and ``on_done()`` run there too.
  Outside a served session (tests, plain Python, a notebook) a request runs inline.
- :class:`BackgroundWorker` — the same runner for one long job that streams progress:
  ``start(work, on_done)`` runs ``work(stop, publish)`` on the thread even outside a server; only the
  newest snapshot is kept, rendered by a periodic callback every ``period`` ms — less often when many
  sessions play at once, so that their renders leave the shared event loop free for clicks — (or
  :meth:`flush` / :meth:`join` by hand), and ``on_done(error_or_None)`` follows the last one.

Both: ``cancel()`` / ``stop()``, ``running``; a destroyed session stops the work and ends the thread;
errors are printed and reported on the loop; nothing is pushed to a page whose websocket has closed
(:func:`session_closed`: the work is stopped instead). Also :func:`session_doc` (the URL of a view is kept by
:mod:`explorer.ui.links`).
"""
from __future__ import annotations

import asyncio
import logging
import threading
import time
import traceback
import weakref
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import panel as pn
from panel.io.state import set_curdoc

from .. import usage
from ..scheduler import (Priority, SessionClosed, drop_session, foreground_active, foreground_begin, foreground_end,
                         request_context)
from .limits import check_runs


def session_doc() -> Any:
    """The current bokeh document if it belongs to a served session, else None."""
    doc = pn.state.curdoc
    return doc if doc is not None and getattr(doc, "session_context", None) is not None else None


class _ClosedSocketFilter(logging.Filter):
    """Drop the framework's reports of a tab that closed while the server was talking to it:

    - bokeh's and Panel's "Failed sending message as connection was closed" (the reply to its last click,
      an update on its way: they catch tornado's WebSocketClosedError and the session closes anyway);
    - asyncio's "Task exception was never retrieved … write_message … WebSocketClosedError" (the same
      push, when tornado's write future fails after the socket went away);
    - tornado's "Uncaught exception GET …/ws" from bokeh's ``notify_connection_lost`` asserting a session
      that the closing socket never got (a tab closed during the websocket handshake).

    Background work stops itself (:func:`session_closed`), so these are only noise in the server's log."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if record.exc_info:
            text += "".join(traceback.format_exception(*record.exc_info))
        return not ("Failed sending message as connection was closed" in text
                    or ("WebSocketClosedError" in text and "write_message" in text)
                    or ("notify_connection_lost" in text and "assert self._session is not None" in text))


CLOSED_SOCKET_FILTER = _ClosedSocketFilter()
for _logger in ("bokeh.server.views.ws", "panel.io.document", "asyncio", "tornado.application"):
    logging.getLogger(_logger).addFilter(CLOSED_SOCKET_FILTER)


def session_key(doc: Any) -> Any:
    """The scheduler's name for a served page's session (its bokeh session id), or None outside a server."""
    context = getattr(doc, "session_context", None)
    return getattr(context, "id", None) or (id(doc) if context is not None else None)


def session_closed(doc: Any) -> bool:
    """True once a served page's websocket is gone or going (tab closed, page left) or its session destroyed.

    Pushing to such a session only makes tornado raise ``WebSocketClosedError`` (bokeh logs "Failed sending
    message as connection was closed"). False outside a server and before the page has connected.
    """
    session = getattr(getattr(doc, "session_context", None), "_session", None)
    if session is None:
        return False
    if getattr(session, "destroyed", False):
        return True
    conns = getattr(session, "_subscribed_connections", None)
    if not conns:
        return False  # not connected yet (or a server we do not know): never drop work for that

    def gone(conn: Any) -> bool:
        ws = getattr(getattr(conn, "_socket", None), "ws_connection", None)
        return ws is None or ws.is_closing()

    try:
        return all(gone(c) for c in list(conns))
    except Exception:  # noqa: BLE001 - a bokeh/tornado we do not know: assume it is alive
        return False


def _running_loop() -> bool:
    try:
        return asyncio.get_running_loop().is_running()
    except RuntimeError:
        return False


class LatestTask:
    """Run ``compute(request, stop, publish)`` off the event loop; the newest request wins.

    Every ``publish(x)`` becomes ``render(x)`` on the loop (next tick); errors go to ``on_error(exc)``,
    the end to ``on_done()``, both on the loop. Inline, synchronously, outside a served session.
    """

    def __init__(self, compute: Callable[[Any, threading.Event, Callable[[Any], None]], Any],
                 render: Callable[[Any], Any], on_error: Callable[[BaseException], Any] | None = None,
                 on_done: Callable[[], Any] | None = None, name: str = "explorer-task",
                 priority: Priority = Priority.INTERACTIVE):
        self._compute, self._render, self._on_error, self._on_done = compute, render, on_error, on_done
        self.name = name
        self.priority = priority  # the class of the model calls it makes (explorer.scheduler)
        self._foreground: int | None = None  # an interactive request in flight on a served page
        self._gen = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._jobs: deque[tuple[int, threading.Event, Any, Any]] = deque()
        self._pending: deque[tuple[int, Callable[[], Any]]] = deque()  # loop calls waiting, in order
        self._drain_scheduled = False
        self._thread: threading.Thread | None = None
        self._doc: Any = None
        self._job: tuple[int, Any] = (0, None)  # (generation, document) of the computation running now
        self._hooked = False
        self._active = False
        self.started_at = 0.0  # perf_counter() when the last request was submitted
        self.last_seconds = 0.0  # wall time of the last finished computation

    @property
    def running(self) -> bool:
        """True from a threaded submit until its end has been shown on the page (or it was cancelled)."""
        return self._active

    @property
    def stop_event(self) -> threading.Event:
        """The stop event of the newest request."""
        return self._stop

    def current(self, gen: int) -> bool:
        return gen == self._gen

    def bind(self, doc: Any = None) -> None:
        """Remember the session document (call when the page is built); work is scheduled on it."""
        doc = doc if doc is not None else session_doc()
        if doc is None:
            return
        self._doc = doc
        if not self._hooked:
            try:
                pn.state.on_session_destroyed(lambda _ctx: self.shutdown())
                self._hooked = True
            except Exception:
                pass

    def _target_doc(self) -> Any:
        return session_doc() or self._doc

    def _inline(self, doc: Any) -> bool:  # no loop to come back to: run in the caller
        return doc is None

    def submit(self, request: Any) -> None:
        """Supersede whatever runs and compute ``request``."""
        with self._lock:
            self._gen += 1
            gen = self._gen
            self._stop.set()
            self._stop = stop = threading.Event()
        self.started_at = time.perf_counter()
        doc = self._target_doc()
        if self._inline(doc):
            self._run(gen, stop, request, None)
            return
        self.bind(doc)
        self._active = True
        if self.priority is Priority.INTERACTIVE:  # until its result is shown: the other classes wait
            foreground_end(self._foreground)
            self._foreground = foreground_begin()
        with self._lock:
            self._jobs.append((gen, stop, request, doc))
            if self._thread is None:
                self._thread = threading.Thread(target=self._serve, daemon=True, name=self.name)
                self._thread.start()

    def _serve(self) -> None:  # the worker thread: the queued requests in order, then it ends
        while True:
            with self._lock:
                if not self._jobs:
                    self._thread = None
                    return
                job = self._jobs.popleft()
            self._run(*job)

    def cancel(self) -> None:
        """Stop the running computation (its partial results stay on screen)."""
        with self._lock:
            self._gen += 1
            self._stop.set()
        self._active = False
        self._end_foreground()

    def _end_foreground(self) -> None:
        token, self._foreground = self._foreground, None
        foreground_end(token)

    def shutdown(self) -> None:
        """Stop the work for good (a closed session): its requests queued at the models are dropped; the
        worker thread ends when its computation returns."""
        self.cancel()
        drop_session(session_key(self._doc))
        usage.forget(session_key(self._doc))

    # -- the worker side
    def _run(self, gen: int, stop: threading.Event, request: Any, doc: Any) -> None:
        t0, error = time.perf_counter(), None
        try:
            if self.current(gen):  # (not superseded while queued)
                self._job = (gen, doc)
                with request_context(self.priority, session=session_key(doc)):
                    self._compute(request, stop, lambda payload: self._publish(gen, stop, doc, payload))
        except SessionClosed:  # the page is gone and its queued model calls were dropped: nothing to report
            pass
        except BaseException as e:  # shown on the page
            traceback.print_exc()
            error = e
        finally:
            self._ended(gen, doc, error, time.perf_counter() - t0)

    @contextmanager
    def then_in_background(self, priority: Priority = Priority.STREAMING) -> Iterator[None]:
        """In ``compute``, once what the request asked for is published: the block's model calls are
        ``priority`` work of the same session, and an interactive request stops holding the other classes
        back as soon as what was published is shown (a filter click's posterior maps are extra work: the
        other pages' samplers need not wait for them)."""
        gen, doc = self._job
        if self.priority is Priority.INTERACTIVE and self.current(gen):
            self._call(doc, gen, self._end_foreground)  # after the renders queued before it
        with request_context(priority, session=session_key(doc)):
            yield

    def _publish(self, gen: int, stop: threading.Event, doc: Any, payload: Any) -> None:
        if self.current(gen) and not stop.is_set():
            self._call(doc, gen, lambda: self._render(payload))

    def _ended(self, gen: int, doc: Any, error: BaseException | None, seconds: float) -> None:
        """The computation returned (or raised): report it on the loop."""
        if error is not None:
            self._call(doc, gen, lambda: self._on_error(error) if self._on_error else None)

        def finish() -> None:
            self._active = False
            self._end_foreground()
            self.last_seconds = seconds
            if self._on_done:
                self._on_done()

        if self.current(gen):
            self._call(doc, gen, finish)

    def _call(self, doc: Any, gen: int, fn: Callable[[], Any]) -> None:
        """Run ``fn`` on ``doc``'s event loop once the page is connected, unless ``gen`` was superseded.

        Calls run in the order they were made: they wait in one queue that a single drain callback empties,
        so a progress message held back until the page connects can never land after the result.
        """
        if doc is None:
            fn()
            return
        with self._lock:
            self._pending.append((gen, fn))
            if self._drain_scheduled:
                return
            self._drain_scheduled = True
        self._schedule_drain(doc)

    def _schedule_drain(self, doc: Any) -> None:
        with set_curdoc(doc):
            pn.state.execute(lambda: self._drain(doc), schedule=True)

    def _drain(self, doc: Any) -> None:
        if not pn.state.loaded:
            # The page has not connected yet (or never will: a plain HTTP GET). HoloViews would
            # re-schedule its plot refreshes on every tick until it does, a busy loop that starves
            # the other sessions; look again in 100 ms instead (the callback dies with the session).
            doc.add_timeout_callback(lambda: self._schedule_drain(doc), 100)
            return
        if session_closed(doc):  # the tab is gone: nothing to show it to, stop the work
            with self._lock:
                self._pending.clear()
                self._drain_scheduled = False
            self.shutdown()
            return
        while True:
            with self._lock:
                if not self._pending:
                    self._drain_scheduled = False
                    return
                gen, fn = self._pending.popleft()
            if self.current(gen):
                try:
                    fn()
                except Exception:  # one failing render must not block the ones behind it
                    traceback.print_exc()


_WORKERS: "weakref.WeakSet[BackgroundWorker]" = weakref.WeakSet()  # every worker: per-session limit, loop budget
LOOP_SHARE = 3  # the playing workers' renders take at most 1/3 of the event loop together
MAX_RENDER_GAP = 1.5  # seconds: however busy the server, a playing page shows a new state this often


class BackgroundWorker(LatestTask):
    """One long job on the worker thread, its progress shown from a periodic callback of the loop.

    ``start(work)`` runs ``work(stop, publish)``; the work polls ``stop`` and may ``publish`` as often
    as it likes (cheap: only the newest snapshot is kept; bokeh models are only touched on the loop,
    under the document lock). When the work returns (or raises), the last snapshot is rendered and
    ``on_done(error_or_None)`` is called on the loop; ``running`` stays True until then. Outside a
    server or notebook loop (tests) nothing is scheduled: call :meth:`flush`, or :meth:`join`.
    """

    def __init__(self, render: Callable[[Any], Any], period: int = 100, name: str = "explorer-worker",
                 priority: Priority = Priority.STREAMING):
        super().__init__(lambda work, stop, _publish: work(stop, self.publish), render, name=name, priority=priority)
        self.period = period
        self._latest: Any = None
        self._dirty = False
        self._job_done = threading.Event()
        self._job_done.set()
        self._when_done: Callable[[BaseException | None], Any] | None = None
        self._error: BaseException | None = None
        self._periodic: Any = None
        self.render_count = 0
        self._render_seconds = 0.0  # running mean of one render's cost
        self._next_render_at = 0.0
        _WORKERS.add(self)

    def _inline(self, doc: Any) -> bool:
        return False  # the work polls ``stop``: it always gets its own thread

    def start(self, work: Callable[[threading.Event, Callable[[Any], None]], Any],
              on_done: Callable[[BaseException | None], Any] | None = None) -> None:
        """Run ``work(stop, publish)``; ``on_done(error_or_None)`` is called on the loop when it ends."""
        if not self._job_done.is_set():
            raise RuntimeError("the worker is already running; stop it first")
        doc = self._target_doc()
        if doc is not None:  # a served page: at most EXPLORER_MAX_RUNS runs at once (SessionLimit)
            check_runs(sum(1 for w in list(_WORKERS) if w._doc is doc and not w._job_done.is_set()))
        self._when_done, self._error = on_done, None
        self._job_done.clear()
        self.submit(work)
        self._start_periodic()

    def publish(self, snapshot: Any) -> None:
        """Store the newest snapshot (thread-safe; rendered by the next flush)."""
        with self._lock:
            self._latest, self._dirty = snapshot, True

    def _ended(self, gen: int, doc: Any, error: BaseException | None, seconds: float) -> None:
        self._error, self.last_seconds = error, seconds
        self._job_done.set()  # reported by the next flush

    def flush(self) -> bool:
        """Render the newest snapshot if there is one; report the end of the work. True if rendered."""
        if self._doc is not None and session_closed(self._doc):  # the tab is gone: stop, push nothing
            self.shutdown()
            return False
        now = time.perf_counter()
        with self._lock:
            snap, dirty, self._dirty = self._latest, self._dirty, False
        rendered = False
        if dirty:
            try:
                self._render(snap)
                self.render_count += 1
                rendered = True
            except Exception:
                traceback.print_exc()
            self._throttle(now, time.perf_counter() - now)
        if self._job_done.is_set() and self._active:
            self._active = False
            self._stop_periodic()
            if self._when_done is not None:
                try:
                    self._when_done(self._error)
                except Exception:
                    traceback.print_exc()
        return rendered

    def _tick(self) -> None:
        """The periodic callback: flush, unless the loop's budget says not yet or a click is being served
        (the end is never held back)."""
        if self._job_done.is_set() or (time.perf_counter() >= self._next_render_at and not foreground_active()):
            self.flush()

    def _throttle(self, started: float, seconds: float) -> None:
        """When to render next. All sessions' renders share one event loop (which also has to hear every
        click): with n workers playing, each renders at most every LOOP_SHARE · n · (its render time), so
        that together they take at most 1 / LOOP_SHARE of the loop; never more often than ``period``, never
        less often than MAX_RENDER_GAP (a page that looks frozen is worse than a slower click)."""
        self._render_seconds = seconds if self._render_seconds == 0 else 0.7 * self._render_seconds + 0.3 * seconds
        playing = sum(1 for w in list(_WORKERS) if w._active and not w._job_done.is_set())
        wait = min(MAX_RENDER_GAP, LOOP_SHARE * max(1, playing) * self._render_seconds)
        self._next_render_at = started + max(self.period / 1000, wait)

    def stop(self, wait: bool = True, timeout: float = 10.0) -> None:
        """Ask the work to stop; with ``wait``, wait for it and show its last state."""
        self._stop.set()
        if wait:
            self.join(timeout)

    def join(self, timeout: float | None = 30.0) -> None:
        """Wait for the work to end, then flush (render the last snapshot, call on_done)."""
        if self._thread is not threading.current_thread():
            self._job_done.wait(timeout)
        if self._job_done.is_set():
            self.flush()

    def shutdown(self) -> None:
        """Stop the work without waiting (a closed session)."""
        super().shutdown()
        self._stop_periodic()

    # -- scheduling on the session's loop
    def _start_periodic(self) -> None:
        self._stop_periodic()
        try:
            if pn.state.curdoc is not None or _running_loop():
                # "background": no busy event per tick. Panel's busy state is one for the whole server, so
                # each tick of each playing session set every session's busy indicator (a quarter of the
                # event loop's time with 15 samplers playing); a run shows its own progress instead
                periodic = pn.state.add_periodic_callback(self._tick, period=self.period, start=False)
                periodic._background = True
                periodic.start()
                self._periodic = periodic
        except Exception:
            self._periodic = None

    def _stop_periodic(self) -> None:
        periodic, self._periodic = self._periodic, None
        try:
            if periodic is not None:
                periodic.stop()
        except Exception:
            pass

