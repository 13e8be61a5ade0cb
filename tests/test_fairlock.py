"""The handle's lock: re-entrant, exclusive, and first-come-first-served."""
import threading
import time

import pytest

from explorer.fairlock import FairRLock
from explorer.handle import ModelHandle


def test_reentrant_and_only_the_owner_releases():
    lock = FairRLock()
    with lock:
        with lock:  # re-entrant: no deadlock
            pass
        errors = []
        t = threading.Thread(target=lambda: errors.append(pytest.raises(RuntimeError, lock.release)))
        t.start()
        t.join()
        assert errors
    with lock:  # free again after the outer exit
        pass


def test_a_queued_thread_is_served_before_the_releasing_thread_reacquires():
    """The sampler's pattern — release and re-acquire at once — must let a queued session in first
    (threading.RLock lets the releasing thread win ~100 turns in a row here)."""
    lock = FairRLock()
    order: list[str] = []
    queued = threading.Event()

    def waiter():
        queued.set()
        with lock:
            order.append("waiter")

    with lock:
        t = threading.Thread(target=waiter)
        t.start()
        queued.wait(5)
        deadline = time.monotonic() + 5
        while not lock._queue and time.monotonic() < deadline:  # the waiter has taken its ticket
            time.sleep(0.001)
    with lock:  # released and immediately re-acquired by the same thread
        order.append("releaser")
    t.join(5)
    assert order == ["waiter", "releaser"]


def test_mutual_exclusion_under_contention():
    lock, inside, worst = FairRLock(), [0], [0]

    def work():
        for _ in range(200):
            with lock:
                inside[0] += 1
                worst[0] = max(worst[0], inside[0])
                inside[0] -= 1

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert worst[0] == 1


def test_the_fifo_switch_gives_handles_the_fair_lock(monkeypatch):
    """EXPLORER_SCHEDULER=fifo: the lock-only design (kept to compare with the scheduler)."""
    import torch

    from explorer.denoisers import DnCNN

    monkeypatch.setenv("EXPLORER_SCHEDULER", "fifo")
    handle = ModelHandle(DnCNN(depth=3, width=4), device="cpu")
    assert isinstance(handle.lock, FairRLock)
    with handle.lock:
        y = handle.denoise(handle_input := torch.rand(1, 1, 8, 8))  # re-enters the lock it holds
    assert y.shape == handle_input.shape
    monkeypatch.setenv("EXPLORER_SCHEDULER", "lifo")
    with pytest.raises(ValueError, match="priority, fifo"):
        ModelHandle(DnCNN(depth=3, width=4), device="cpu")
