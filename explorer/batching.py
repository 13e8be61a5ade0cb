"""Compatible model calls that wait at the same time run as one forward pass.

Eight sessions' samplers each ask for x̂(y_k) of a (1, C, H, W) image; while one forward pass runs the
others queue. The caller that gets the model next (the *leader*) takes every queued call with the same
key — same function (``forward`` / ``residual``), image shape, dtype and σ (``None``, or one number) —
concatenates them along the batch axis, runs one pass and hands each caller its rows; the other callers
leave the queue without computing (:meth:`explorer.scheduler.PriorityGate.acquire` with ``done``).

A network's output for one image does not depend on the others in its batch (eval mode: the norm
layers use running statistics), so a batched result equals the unbatched one to float32 rounding
(convolutions pick their kernels by batch size: bitwise equal for the shipped BF-DnCNN at 64×64, within
~4e-7 for bf-mnist's UNet).
Calls with a σ tensor are not batched (per-image σ must stay aligned with its image).
"""
from __future__ import annotations

import threading
from collections.abc import Callable, Hashable

import torch
from torch import Tensor

from .denoisers.base import SigmaLike
from .scheduler import ModelLock

MAX_BATCH = 64  # images in one batched pass (the rest wait for the next)


def batch_key(fn_name: str, t: Tensor, sigma: SigmaLike) -> Hashable | None:
    """What calls must share to be batched, or None for a call that runs alone (a σ tensor)."""
    if isinstance(sigma, Tensor):
        return None
    return (fn_name, tuple(t.shape[1:]), t.dtype, str(t.device), None if sigma is None else float(sigma))


class _Call:
    __slots__ = ("t", "done", "result", "error")

    def __init__(self, t: Tensor):
        self.t, self.done = t, threading.Event()
        self.result: Tensor | None = None
        self.error: BaseException | None = None


class Batcher:
    """Runs ``fn(t, sigma)`` under ``lock`` with no gradient, batching calls queued at once (see module)."""

    def __init__(self, lock: ModelLock):
        self.lock = lock
        self._pending: dict[Hashable, list[_Call]] = {}
        self._mutex = threading.Lock()
        self.passes = 0  # forward passes run (batched or not): for tests and benchmarks

    def __call__(self, fn: Callable[[Tensor, SigmaLike], Tensor], fn_name: str, t: Tensor, sigma: SigmaLike) -> Tensor:
        key = batch_key(fn_name, t, sigma)
        if key is None or self.lock.model_gate.held_by_me():  # unbatchable, or nested inside a held lock
            with self.lock, torch.no_grad():
                self.passes += 1
                return fn(t, sigma)
        call = _Call(t)
        with self._mutex:
            self._pending.setdefault(key, []).append(call)
        try:
            got_lock = self.lock.acquire(done=call.done)
        except BaseException:
            self._withdraw(key, call)
            raise
        if got_lock:
            try:
                while not call.done.is_set():  # (a full batch ahead of this call: serve it, then this one)
                    self._lead(fn, key, sigma)
            finally:
                self.lock.release()
                self.lock.model_gate.wake()
        if call.error is not None:
            raise call.error
        assert call.result is not None
        return call.result

    def _withdraw(self, key: Hashable, call: _Call) -> None:
        with self._mutex:
            queued = self._pending.get(key, [])
            if call in queued:
                queued.remove(call)
                if not queued:
                    del self._pending[key]

    def _lead(self, fn: Callable[[Tensor, SigmaLike], Tensor], key: Hashable, sigma: SigmaLike) -> None:
        """Take the queued calls of ``key`` (up to :data:`MAX_BATCH` images) and serve them in one pass."""
        with self._mutex:
            queued = self._pending.pop(key, [])
            calls, n = [], 0
            while queued and (not calls or n + queued[0].t.shape[0] <= MAX_BATCH):
                calls.append(queued.pop(0))
                n += calls[-1].t.shape[0]
            if queued:
                self._pending[key] = queued
        try:
            with torch.no_grad():
                self.passes += 1
                out = fn(calls[0].t if len(calls) == 1 else torch.cat([c.t for c in calls]), sigma)
            start = 0
            for c in calls:
                c.result = out[start:start + c.t.shape[0]]
                start += c.t.shape[0]
        except BaseException as e:  # every caller of the batch sees the failure
            for c in calls:
                c.error = e
        finally:
            for c in calls:
                c.done.set()
