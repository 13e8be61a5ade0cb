"""A re-entrant lock that serves waiting threads in arrival order (FIFO).

``threading.RLock`` makes no ordering promise: a thread that releases and immediately re-acquires
(a sampler running step after step) usually wins again, so a session waiting for one Jacobian row can
wait behind hundreds of another session's steps. Here every first acquisition takes a ticket and the
lock passes to the oldest ticket on release; re-entrant acquisitions by the owner do not queue.
"""
from __future__ import annotations

import threading
from collections import deque
from types import TracebackType


class FairRLock:
    """Re-entrant, first-come-first-served mutual exclusion (``with lock:``)."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._queue: deque[int] = deque()  # thread ids waiting, oldest first
        self._owner: int | None = None
        self._depth = 0

    def held_by_me(self) -> bool:
        return self._owner == threading.get_ident()

    def acquire(self) -> bool:
        me = threading.get_ident()
        with self._cond:
            if self._owner == me:
                self._depth += 1
                return True
            self._queue.append(me)
            while self._owner is not None or self._queue[0] != me:
                self._cond.wait()
            self._queue.popleft()
            self._owner, self._depth = me, 1
            return True

    def release(self) -> None:
        with self._cond:
            if self._owner != threading.get_ident():
                raise RuntimeError("release of a FairRLock not held by this thread")
            self._depth -= 1
            if self._depth == 0:
                self._owner = None
                self._cond.notify_all()

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        self.release()
