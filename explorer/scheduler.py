"""Who computes next: interactive requests first, sessions in turn, a closed session's work dropped.

Every model call of the explorer goes through a :class:`PriorityGate`, a re-entrant lock with ``slots``
holders (1 for a model handle; ``cores // torch threads`` for a CPU, so that the threads computing at once
never oversubscribe the cores). A waiting request carries

- a class, :class:`Priority`: ``INTERACTIVE`` (a click's filter, one denoise, a small analysis) before
  ``STREAMING`` (a step of a running sampler or of Algorithm 2) before ``BULK`` (data-set energies,
  evaluations);
- a session (any hashable: the UI passes its document's id; ``None`` outside a server). Within a class
  sessions take turns: the next request comes from the session served least recently, so a session
  with many requests queued cannot starve another. :meth:`PriorityGate.drop_session` makes the queued
  requests of a closed session raise :class:`SessionClosed` instead of running.

On a CPU the cores are not the only thing sessions share: every thread needs Python's GIL between two
torch operations, and the event loop needs it to render and to hear clicks. So while an interactive
request is in flight (:func:`foreground`: from a click until its result is shown, at most
:data:`FOREGROUND_SECONDS`), the gates grant nothing of a lower class and playing pages hold back their
renders: the samplers pause for the ~0.1 s a click costs instead of making it wait seconds.

Both come from the caller's context (:func:`request_context`), so the handles' public API is unchanged:
a notebook user (one session, everything interactive) sees a plain re-entrant lock. A request that
holds the gate is never pre-empted; long work yields between its chunks by taking the gate per chunk.
"""
from __future__ import annotations

import contextvars
import itertools
import os
import threading
import time
import weakref
from collections.abc import Hashable, Iterator
from contextlib import contextmanager
from enum import IntEnum
from types import TracebackType

import torch


class Priority(IntEnum):
    """Request classes, served in this order (lower first)."""

    INTERACTIVE = 0
    STREAMING = 1
    BULK = 2


class SessionClosed(RuntimeError):
    """The session that queued this request has closed: its work was dropped, not run."""


_priority: contextvars.ContextVar[Priority] = contextvars.ContextVar("explorer_priority", default=Priority.INTERACTIVE)
_session: contextvars.ContextVar[Hashable] = contextvars.ContextVar("explorer_session", default=None)


def current_priority() -> Priority:
    """The class of the requests made from here (``INTERACTIVE`` unless a :func:`request_context` says)."""
    return _priority.get()


def current_session() -> Hashable:
    """The session the requests made from here belong to (``None`` outside a served page)."""
    return _session.get()


@contextmanager
def request_context(priority: Priority | str | None = None, session: Hashable = ...) -> Iterator[None]:
    """Model calls made inside carry this class and session (unchanged where not given)."""
    tokens = []
    if priority is not None:
        tokens.append((_priority, _priority.set(Priority[priority.upper()] if isinstance(priority, str) else priority)))
    if session is not ...:
        tokens.append((_session, _session.set(session)))
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


_gates: "weakref.WeakSet[PriorityGate]" = weakref.WeakSet()  # every live gate, for drop_session
FOREGROUND_SECONDS = 2.0  # the longest an interactive request holds back the other classes
_foreground: dict[int, float] = {}  # token → when its interactive request began
_foreground_lock = threading.Lock()
_tokens = itertools.count(1)


def foreground_begin() -> int:
    """An interactive request is in flight (until :func:`foreground_end` with the token returned, or
    :data:`FOREGROUND_SECONDS`): lower classes wait."""
    with _foreground_lock:
        token = next(_tokens)
        _foreground[token] = time.monotonic()
        return token


def foreground_end(token: int | None) -> None:
    """The interactive request of ``token`` is done (its result shown, failed or superseded)."""
    with _foreground_lock:
        if _foreground.pop(token, None) is None:
            return
    for gate in list(_gates):
        gate.wake()


def foreground_active() -> bool:
    """True while an interactive request began less than :data:`FOREGROUND_SECONDS` ago and has not ended."""
    if not _foreground:
        return False
    now = time.monotonic()
    with _foreground_lock:
        for token, began in list(_foreground.items()):
            if now - began >= FOREGROUND_SECONDS:
                del _foreground[token]
        return bool(_foreground)


@contextmanager
def foreground() -> Iterator[None]:
    """Hold back the lower classes while the block runs (see :func:`foreground_begin`)."""
    token = foreground_begin()
    try:
        yield
    finally:
        foreground_end(token)


def drop_session(session: Hashable) -> int:
    """A session closed: cancel its queued requests on every gate (they raise :class:`SessionClosed`);
    how many were dropped. ``None`` (no session) is never dropped."""
    if session is None:
        return 0
    return sum(gate.drop_session(session) for gate in list(_gates))


class _Waiter:
    __slots__ = ("priority", "session", "ticket", "cancelled")

    def __init__(self, priority: Priority, session: Hashable, ticket: int):
        self.priority, self.session, self.ticket, self.cancelled = priority, session, ticket, False


class PriorityGate:
    """A re-entrant gate held by at most ``slots`` threads; waiting threads served by class, then in turn.

    ``with gate:`` or ``acquire()`` / ``release()``. A thread that holds the gate re-enters without
    queueing. ``acquire(done=event)`` also returns (False, not holding) once ``event`` is set while it
    waits: a request another holder has already served (:mod:`explorer.batching`) leaves the queue;
    whoever sets such an event calls :meth:`wake`. ``hold_back``: while :func:`foreground_active`, grant
    no request of a lower class than interactive (the models' gates; not the device budget, which a
    thread already holding a model takes next and must not wait for).
    """

    def __init__(self, slots: int = 1, name: str = "gate", hold_back: bool = False):
        if slots < 1:
            raise ValueError(f"a gate needs at least one slot, got {slots}")
        self.slots, self.name, self.hold_back = slots, name, hold_back
        self._cond = threading.Condition(threading.Lock())
        self._holders: dict[int, int] = {}  # thread id → re-entry depth
        self._waiting: list[_Waiter] = []
        self._tickets = itertools.count()
        self._clock = itertools.count()
        self._served_at: dict[Hashable, int] = {}  # session → when it last got the gate
        _gates.add(self)

    def __repr__(self) -> str:
        return f"PriorityGate({self.name!r}, slots={self.slots}, held={len(self._holders)}, waiting={len(self._waiting)})"

    def held_by_me(self) -> bool:
        return threading.get_ident() in self._holders

    def free_slots(self) -> int:
        """Slots no thread holds right now (a snapshot)."""
        return self.slots - len(self._holders)

    def waiting(self) -> int:
        """How many requests are queued."""
        return len(self._waiting)

    def _next(self) -> _Waiter:
        return min(self._waiting, key=lambda w: (w.cancelled, w.priority, self._served_at.get(w.session, -1), w.ticket))

    def acquire(self, done: threading.Event | None = None) -> bool:
        """Wait for a slot (re-entrant). False, without the gate, if ``done`` is set first;
        :class:`SessionClosed` if the request's session was dropped meanwhile."""
        me = threading.get_ident()
        with self._cond:
            if me in self._holders:
                self._holders[me] += 1
                return True
            waiter = _Waiter(current_priority(), current_session(), next(self._tickets))
            self._waiting.append(waiter)
            try:
                while True:
                    if waiter.cancelled:
                        raise SessionClosed(f"{self.name}: the session closed; its queued request was dropped")
                    if done is not None and done.is_set():
                        return False
                    held_back = self.hold_back and waiter.priority > Priority.INTERACTIVE and foreground_active()
                    if not held_back and len(self._holders) < self.slots and self._next() is waiter:
                        self._holders[me] = 1
                        self._served_at[waiter.session] = next(self._clock)
                        return True
                    self._cond.wait(0.02 if held_back else None)  # (a foreground request may expire)
            finally:
                self._waiting.remove(waiter)
                self._cond.notify_all()  # the head of the queue may have changed

    def release(self) -> None:
        me = threading.get_ident()
        with self._cond:
            depth = self._holders.get(me)
            if depth is None:
                raise RuntimeError(f"release of {self.name} by a thread that does not hold it")
            if depth > 1:
                self._holders[me] = depth - 1
                return
            del self._holders[me]
            self._cond.notify_all()

    def wake(self) -> None:
        """Let waiters look at their ``done`` events again."""
        with self._cond:
            self._cond.notify_all()

    def drop_session(self, session: Hashable) -> int:
        """Cancel the queued requests of ``session`` (they raise :class:`SessionClosed`); how many."""
        with self._cond:
            dropped = [w for w in self._waiting if w.session == session]
            for w in dropped:
                w.cancelled = True
            self._served_at.pop(session, None)
            self._cond.notify_all()
        return len(dropped)

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        self.release()


class ModelLock:
    """A handle's lock: its own gate (one caller at a time), then a slot of its device's compute budget.

    ``with handle.lock:`` as before; :meth:`acquire` takes ``done`` like :meth:`PriorityGate.acquire`
    (only the model's queue is left early; the device slot is taken after it)."""

    def __init__(self, model_gate: PriorityGate, device_gate: PriorityGate | None):
        self.model_gate, self.device_gate = model_gate, device_gate

    def held_by_me(self) -> bool:
        return self.model_gate.held_by_me()

    def acquire(self, done: threading.Event | None = None) -> bool:
        if not self.model_gate.acquire(done):
            return False
        if self.device_gate is not None:
            try:
                self.device_gate.acquire()
            except BaseException:
                self.model_gate.release()
                raise
        return True

    def release(self) -> None:
        if self.device_gate is not None:
            self.device_gate.release()
        self.model_gate.release()

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        self.release()


def compute_slots(device_type: str) -> int:
    """How many model computations may run at once on a device: ``cores // torch threads`` on a CPU
    (intra-op threads × computing threads never exceed the cores), one per accelerator."""
    if device_type != "cpu":
        return 1
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores // max(1, torch.get_num_threads()))


_device_gates: dict[str, PriorityGate] = {}
_device_gates_lock = threading.Lock()


def device_gate(device: object) -> PriorityGate:
    """The compute budget shared by every handle on ``device`` (created at its first handle)."""
    key = str(device)
    with _device_gates_lock:
        gate = _device_gates.get(key)
        if gate is None:
            gate = _device_gates[key] = PriorityGate(compute_slots(key.split(":")[0]), name=f"device {key}")
        return gate

