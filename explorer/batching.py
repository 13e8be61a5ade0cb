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

A pass in flight is never pre-empted, so its length bounds how long an interactive request waits: on a
CPU a batch holds at most :data:`CPU_IMAGES_PER_SLOT` images per compute slot, and for networks that may
run concurrently (``Denoiser.concurrent_forward``) the batch is split over the slots free at that moment,
each chunk on its own thread holding its own slot (so one model uses every core, never more). On an
accelerator, where a larger batch costs little more than one image, a batch holds up to :data:`MAX_BATCH`.
"""
from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor

import torch
from torch import Tensor

from .denoisers.base import SigmaLike
from .scheduler import ModelLock, compute_slots

MAX_BATCH = 64  # images in one batched pass on an accelerator (the rest wait for the next)
CPU_IMAGES_PER_SLOT = 2  # on a CPU: images per compute slot in one pass (bounds an interactive request's wait)

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _chunk_pool() -> ThreadPoolExecutor:
    """The threads that run the other chunks of a split pass (one per core at most, created on first use)."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=max(1, compute_slots("cpu") - 1), thread_name_prefix="explorer-chunk")
        return _pool


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
    """Runs ``fn(t, sigma)`` under ``lock`` with no gradient, batching calls queued at once (see module).

    ``cpu``: the model is on a CPU (batches capped per slot); ``split``: its forward may run in several
    threads at once, so a batch is split over the free slots."""

    def __init__(self, lock: ModelLock, cpu: bool = True, split: bool = False):
        self.lock, self.split = lock, split and cpu and lock.device_gate is not None
        slots = lock.device_gate.slots if lock.device_gate is not None else 1
        self.max_batch = CPU_IMAGES_PER_SLOT * slots if cpu else MAX_BATCH
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
        """Take the queued calls of ``key`` (up to ``max_batch`` images) and serve them in one pass."""
        with self._mutex:
            queued = self._pending.pop(key, [])
            calls, n = [], 0
            while queued and (not calls or n + queued[0].t.shape[0] <= self.max_batch):
                calls.append(queued.pop(0))
                n += calls[-1].t.shape[0]
            if queued:
                self._pending[key] = queued
        try:
            with torch.no_grad():
                self.passes += 1
                out = self._pass(fn, calls[0].t if len(calls) == 1 else torch.cat([c.t for c in calls]), sigma)
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

    def _pass(self, fn: Callable[[Tensor, SigmaLike], Tensor], x: Tensor, sigma: SigmaLike) -> Tensor:
        """fn(x, σ), split over the compute slots free now (this thread already holds one)."""
        gate = self.lock.device_gate
        parts = min(x.shape[0], 1 + gate.free_slots()) if self.split and gate is not None else 1
        if parts == 1:
            return fn(x, sigma)
        chunks = x.chunk(parts)

        def run(chunk: Tensor) -> Tensor:
            with gate, torch.no_grad():
                return fn(chunk, sigma)

        others = [_chunk_pool().submit(contextvars.copy_context().run, run, c) for c in chunks[1:]]
        first = fn(chunks[0], sigma)
        return torch.cat([first, *(f.result() for f in others)])
