"""The scheduler behind every model handle: priority classes, sessions in turn, dropped sessions, batching.

Deterministic: a holder thread keeps the gate while the requests queue (each waiter is started only once
the previous one is seen waiting), then lets go; the order in which they get the gate is the schedule.
"""
from __future__ import annotations

import threading
import time

import pytest
import torch
from torch import nn

from explorer.batching import Batcher
from explorer.denoisers import DnCNN
from explorer.denoisers.base import Denoiser
from explorer.handle import ModelHandle
from explorer.scheduler import (ModelLock, Priority, PriorityGate, SessionClosed, compute_slots, drop_session,
                                request_context)


def _wait_until(cond, timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise AssertionError("timed out")
        time.sleep(0.002)


def _queue(gate: PriorityGate, requests: list[tuple[str, Priority, object]], work=None) -> list[str]:
    """Hold ``gate``, queue ``requests`` (label, class, session) one after the other, release; the service order."""
    order: list[str] = []
    errors: list[str] = []
    held, go = threading.Event(), threading.Event()

    def holder():
        with gate:
            held.set()
            go.wait(10)

    def waiter(label, priority, session):
        with request_context(priority, session=session):
            try:
                with gate:
                    order.append(label)
                    if work is not None:
                        work(label)
            except SessionClosed:
                errors.append(label)

    threads = [threading.Thread(target=holder)]
    threads[0].start()
    held.wait(10)
    for n, req in enumerate(requests, start=1):
        t = threading.Thread(target=waiter, args=req)
        t.start()
        threads.append(t)
        _wait_until(lambda: gate.waiting() == n)
    go.set()
    for t in threads:
        t.join(10)
    return order + [f"dropped:{e}" for e in errors]


def test_interactive_before_streaming_before_bulk():
    gate = PriorityGate()
    order = _queue(gate, [("bulk", Priority.BULK, "a"), ("stream", Priority.STREAMING, "b"),
                          ("click", Priority.INTERACTIVE, "c"), ("stream2", Priority.STREAMING, "d")])
    assert order == ["click", "stream", "stream2", "bulk"]


def test_sessions_take_turns_within_a_class():
    """Session a queued three steps before b queued one: b goes second, not last."""
    gate = PriorityGate()
    reqs = [("a1", Priority.STREAMING, "a"), ("a2", Priority.STREAMING, "a"), ("a3", Priority.STREAMING, "a"),
            ("b1", Priority.STREAMING, "b"), ("c1", Priority.STREAMING, "c")]
    assert _queue(gate, reqs) == ["a1", "b1", "c1", "a2", "a3"]


def test_a_closed_sessions_queued_work_is_dropped():
    gate = PriorityGate()
    reqs = [("a1", Priority.STREAMING, "a"), ("b1", Priority.STREAMING, "b"), ("a2", Priority.STREAMING, "a")]

    def close_a_on_first(label):
        if label == "a1":
            assert drop_session("a") == 1  # a2 is queued; a1 is running and finishes
    order = _queue(gate, reqs, work=close_a_on_first)
    assert order == ["a1", "b1", "dropped:a2"]
    assert drop_session(None) == 0  # no session: never dropped


def test_reentrant_exclusive_and_slots():
    gate = PriorityGate(slots=2)
    inside, worst = [0], [0]
    lock = threading.Lock()

    def work():
        for _ in range(20):
            with gate:
                with gate:  # re-entrant: no second slot, no deadlock
                    with lock:
                        inside[0] += 1
                        worst[0] = max(worst[0], inside[0])
                    time.sleep(0.001)
                    with lock:
                        inside[0] -= 1

    threads = [threading.Thread(target=work) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert worst[0] == 2
    with pytest.raises(RuntimeError, match="does not hold"):
        gate.release()
    with pytest.raises(ValueError):
        PriorityGate(slots=0)


def test_cpu_budget_never_oversubscribes_the_cores():
    threads = torch.get_num_threads()
    slots = compute_slots("cpu")
    assert slots >= 1 and (slots * threads <= max(threads, len(__import__("os").sched_getaffinity(0))))
    assert compute_slots("cuda") == 1


class _Counting(Denoiser):
    """x̂(y) = y / 2, recording the batch size of every pass (and sleeping so that calls pile up)."""

    blind, bias_free = True, True

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(0.5))
        self.batches: list[int] = []

    def forward(self, y, sigma=None):
        self.batches.append(y.shape[0])
        time.sleep(0.01)
        return y * self.scale


def _concurrent_denoise(handle: ModelHandle, ys: list[torch.Tensor], session_of=lambda k: k) -> list[torch.Tensor]:
    """Queue ``handle.denoise(y_k)`` from one thread per image while the handle is held, then release."""
    out: list[torch.Tensor | None] = [None] * len(ys)
    held, go = threading.Event(), threading.Event()
    gate = handle.lock.model_gate

    def holder():
        with handle.lock:
            held.set()
            go.wait(10)

    def call(k):
        with request_context(Priority.STREAMING, session=session_of(k)):
            out[k] = handle.denoise(ys[k])

    h = threading.Thread(target=holder)
    h.start()
    held.wait(10)
    threads = []
    for k in range(len(ys)):
        threads.append(threading.Thread(target=call, args=(k,)))
        threads[-1].start()
        _wait_until(lambda: gate.waiting() == k + 1)
    go.set()
    for t in [h, *threads]:
        t.join(20)
    return out


def test_eight_sessions_steps_cost_one_batched_pass():
    model = _Counting()
    handle = ModelHandle(model, device="cpu")
    assert handle._batcher.max_batch == 2 * handle.lock.device_gate.slots  # the CPU's cap (see batching)
    handle._batcher.max_batch = 64  # an accelerator's
    ys = [torch.rand(1, 1, 8, 8) for _ in range(8)]
    out = _concurrent_denoise(handle, ys)
    assert model.batches == [8]  # one forward pass of batch 8
    for y, x in zip(ys, out):
        assert torch.equal(x, y * 0.5)  # each caller got its own row


def test_batched_results_equal_unbatched_on_real_networks():
    from explorer.denoisers import ARCHITECTURES

    torch.manual_seed(0)
    unet = ARCHITECTURES["unet"](channels=1, width=8, levels=2)
    for net in [DnCNN(depth=4, width=8), unet]:
        handle = ModelHandle(net, device="cpu")
        ys = [torch.rand(1, 1, 16, 16) for _ in range(6)]
        with torch.no_grad():
            alone = [net(y) for y in ys]
        handle._batcher.max_batch = 6
        passes = handle._batcher.passes
        together = _concurrent_denoise(handle, ys)
        assert handle._batcher.passes - passes == 1
        for a, b in zip(alone, together):  # convolutions may pick kernels by batch size: float32 rounding only
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_incompatible_calls_are_not_batched_and_errors_reach_every_caller():
    model = _Counting()
    handle = ModelHandle(model, device="cpu")
    ys = [torch.rand(1, 1, 8, 8), torch.rand(1, 1, 16, 16), torch.rand(1, 1, 8, 8)]
    out = _concurrent_denoise(handle, ys)
    assert sorted(model.batches) == [1, 2]  # the two 8×8 together, the 16×16 alone
    assert all(torch.equal(x, y * 0.5) for x, y in zip(out, ys))

    class Failing(_Counting):
        def forward(self, y, sigma=None):
            raise FloatingPointError("boom")

    failing = ModelHandle(Failing(), device="cpu")
    errors = []

    def call():
        try:
            failing.denoise(torch.rand(1, 1, 8, 8))
        except FloatingPointError as e:
            errors.append(e)
    threads = [threading.Thread(target=call) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(errors) == 3


def test_a_full_batch_leaves_the_rest_for_the_next_pass():
    model = _Counting()
    handle = ModelHandle(model, device="cpu")
    handle._batcher.max_batch = 3
    ys = [torch.rand(1, 1, 4, 4) for _ in range(7)]
    out = _concurrent_denoise(handle, ys)
    assert sum(model.batches) == 7 and max(model.batches) <= 3
    assert all(torch.equal(x, y * 0.5) for x, y in zip(out, ys))


def test_a_batch_is_split_over_the_free_cpu_slots():
    """A network whose forward may run concurrently: a batch of 4 on a 2-slot budget runs as two chunks
    on two threads at once, each holding a slot; the results are each caller's own."""
    device = PriorityGate(slots=2, name="2 cores")
    lock = ModelLock(PriorityGate(name="model"), device)
    batcher = Batcher(lock, cpu=True, split=True)
    assert batcher.max_batch == 4
    seen, inside, worst = [], [0], [0]
    mutex = threading.Lock()

    def fn(x, sigma):
        with mutex:
            seen.append((x.shape[0], device.held_by_me()))
            inside[0] += 1
            worst[0] = max(worst[0], inside[0])
        time.sleep(0.05)
        with mutex:
            inside[0] -= 1
        return x * 2

    x = torch.arange(4.0).reshape(4, 1, 1, 1)
    with lock:
        out = batcher._pass(fn, x, None)
    assert torch.equal(out, x * 2)
    assert sorted(seen) == [(2, True), (2, True)] and worst[0] == 2
    held, go = threading.Event(), threading.Event()

    def other_model():
        with device:
            held.set()
            go.wait(10)
    t = threading.Thread(target=other_model)
    t.start()
    held.wait(10)
    seen.clear()
    with lock:  # the other slot is busy: no split
        batcher._pass(fn, x, None)
    go.set()
    t.join(10)
    assert seen == [(4, True)]


def test_a_click_overtakes_queued_sampler_steps():
    """Streaming steps of four sessions queue; an interactive call made after them runs first."""
    order = []

    class Recording(_Counting):
        def forward(self, y, sigma=None):
            order.append("click" if y.shape[-1] == 16 else f"steps×{y.shape[0]}")
            return y * self.scale

    handle = ModelHandle(Recording(), device="cpu")
    held, go = threading.Event(), threading.Event()

    def holder():
        with handle.lock:
            held.set()
            go.wait(10)

    def step(k):
        with request_context(Priority.STREAMING, session=k):
            handle.denoise(torch.rand(1, 1, 8, 8))

    def click():
        with request_context(Priority.INTERACTIVE, session="teacher"):
            handle.denoise(torch.rand(1, 1, 16, 16))

    threads = [threading.Thread(target=holder)]
    threads[0].start()
    held.wait(10)
    for k, fn in enumerate([lambda: step(0), lambda: step(1), lambda: step(2), lambda: step(3), click]):
        threads.append(threading.Thread(target=fn))
        threads[-1].start()
        _wait_until(lambda: handle.lock.model_gate.waiting() == k + 1)
    go.set()
    for t in threads:
        t.join(10)
    assert order == ["click", "steps×4"]


def test_the_model_lock_takes_the_device_budget_and_leaves_it():
    device = PriorityGate(slots=1, name="device")
    lock = ModelLock(PriorityGate(name="model"), device)
    with lock:
        assert device.held_by_me() and lock.model_gate.held_by_me()
        with lock:
            pass
    assert not device.held_by_me() and not lock.model_gate.held_by_me()
    done = threading.Event()
    done.set()
    with lock:  # held here, so another thread with its call already served leaves the queue at once
        result = []
        t = threading.Thread(target=lambda: result.append(lock.acquire(done=done)))
        t.start()
        t.join(5)
    assert result == [False]


def test_a_click_in_flight_holds_back_the_other_classes():
    """While an interactive request is in flight, a model's gate grants no streaming work even when free;
    it does at once when the request ends, and by itself after FOREGROUND_SECONDS."""
    import explorer.scheduler as scheduler

    gate = PriorityGate(name="model", hold_back=True)
    budget = PriorityGate(name="device")  # a device budget never holds back
    got = []

    def stream():
        with request_context(Priority.STREAMING, session="s"):
            with gate:
                got.append(time.monotonic())

    token = scheduler.foreground_begin()
    try:
        with request_context(Priority.STREAMING):
            with budget:
                pass
        t = threading.Thread(target=stream)
        t.start()
        time.sleep(0.15)
        assert got == []  # held back although the gate is free
        ended = time.monotonic()
    finally:
        scheduler.foreground_end(token)
    t.join(5)
    assert len(got) == 1 and got[0] - ended < 0.5
    old = scheduler.FOREGROUND_SECONDS
    scheduler.FOREGROUND_SECONDS = 0.1
    try:
        scheduler.foreground_begin()  # never ended (a page gone mid-click): it expires
        time.sleep(0.15)
        assert not scheduler.foreground_active()
    finally:
        scheduler.FOREGROUND_SECONDS = old
