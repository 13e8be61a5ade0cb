"""The runner hook of the data-set-wide jobs (energies, benchmark tables, effective dimensions).

A job cuts its images into contiguous batches and hands a runner a task function and the items;
the runner calls the task once per batch and returns the per-batch results **in batch order**::

    runner(fn, items, *, most=None, desc="batches", progress=False) -> [fn(batch_0), fn(batch_1), ...]

``most`` caps a batch's length (``None``: the runner chooses), ``desc`` / ``progress`` label and switch
a progress bar. The library never imports Dask: :data:`serial` (the default) runs everything here,
:class:`ExecutorRunner` runs the batches on any ``concurrent.futures``-style executor (anything with
``submit(fn, batch)`` returning a future with ``result()``), and :class:`explorer.distributed.DaskRunner`
on a Dask cluster. A plain callable with that signature is a runner too.

In-process or not. A runner whose ``in_process`` attribute is true runs the tasks in this process, so
a job may give it closures over the models it already holds. Any other runner (a plain callable
included) gets picklable tasks: module-level functions with descriptions (model names or paths and
their weight fingerprints, image paths), which open each model once per process (:func:`opened`)
and check that its weights are the caller's (:func:`verified`). The numbers are the same either way.
"""
from __future__ import annotations

import hashlib
import math
import os
import threading
import warnings
from collections.abc import Callable, Hashable, Sequence
from typing import Any, Protocol, TypeVar

import torch
from tqdm import tqdm

T = TypeVar("T")
R = TypeVar("R")

#: Batches per worker slot: enough for load balancing and a smooth progress bar, few enough to keep overheads small.
TASKS_PER_WORKER = 4


class Runner(Protocol):
    """``runner(fn, items, *, most, desc, progress)`` → ``[fn(batch) for batch in batches(items)]``, in order."""

    def __call__(self, fn: Callable[[list[T]], R], items: Sequence[T], *, most: int | None = None,
                 desc: str = "batches", progress: bool = False) -> list[R]: ...


def batches(seq: Sequence[T], slots: int, most: int | None = None) -> list[list[T]]:
    """``seq`` cut into contiguous batches, about :data:`TASKS_PER_WORKER` per slot, each at most ``most`` long."""
    size = max(1, math.ceil(len(seq) / (TASKS_PER_WORKER * max(1, slots))))
    if most is not None:
        size = min(size, max(1, most))
    return [list(seq[i:i + size]) for i in range(0, len(seq), size)]


class SerialRunner:
    """The default runner: every task here, one after the other; one batch of everything unless ``most``."""

    in_process = True

    def __call__(self, fn: Callable[[list[T]], R], items: Sequence[T], *, most: int | None = None,
                 desc: str = "batches", progress: bool = False) -> list[R]:
        if not len(items):
            return []
        size = len(items) if most is None else max(1, most)
        return [fn(list(items[i:i + size])) for i in range(0, len(items), size)]


#: The default runner (a plain serial map over the batches).
serial = SerialRunner()


def is_in_process(runner: Runner) -> bool:
    """Whether ``runner`` runs its tasks in this process (may be given closures)."""
    return bool(getattr(runner, "in_process", False))


class ExecutorRunner:
    """The batches as tasks of a ``concurrent.futures``-style ``executor`` (``submit(fn, batch)``), results
    in batch order. ``slots`` (default: the executor's thread count if it reports one, else the CPU count)
    sets the batch size through :func:`batches`. Tasks must be picklable for a process pool or a cluster."""

    in_process = False

    def __init__(self, executor: Any, slots: int | None = None, **submit_kwargs: Any):
        self.executor = executor
        self.slots = slots
        self.submit_kwargs = submit_kwargs

    def _slots(self) -> int:
        if self.slots is not None:
            return self.slots
        nthreads = getattr(self.executor, "nthreads", None)  # a Dask client: {worker: threads}
        if callable(nthreads):
            return max(1, sum(nthreads().values()))
        return getattr(self.executor, "_max_workers", None) or os.cpu_count() or 1

    def __call__(self, fn: Callable[[list[T]], R], items: Sequence[T], *, most: int | None = None,
                 desc: str = "batches", progress: bool = False) -> list[R]:
        parts = batches(items, self._slots(), most)
        futures = [self.executor.submit(fn, b, **self.submit_kwargs) for b in parts]
        out = []
        try:
            for b, f in tqdm(list(zip(parts, futures)), desc=desc, unit="batch", disable=not progress):
                out.append(f.result())
        finally:
            for f in futures:
                f.cancel()
        return out


def resolve(runner: Runner | None, client: Any = None) -> Runner:
    """The runner a job uses: ``runner``, or for the deprecated ``client=`` argument (a Dask client) an
    :class:`ExecutorRunner` on it; :data:`serial` when neither is given."""
    if client is not None:
        warnings.warn("client= is deprecated: pass runner=explorer.distributed.DaskRunner(client)",
                      DeprecationWarning, stacklevel=3)
        if runner is not None:
            raise ValueError("give runner= or the deprecated client=, not both")
        dask = callable(getattr(client, "nthreads", None))  # a Dask client: tasks are not pure (never deduplicated)
        return ExecutorRunner(client, **({"pure": False} if dask else {}))
    return serial if runner is None else runner


def merge(parts: Sequence[tuple[dict[Any, T], list[tuple[str, str]]]]) -> tuple[dict[Any, T], list[tuple[str, str]]]:
    """One (results, failures) pair from per-batch (results, failures) pairs, in batch order."""
    results: dict[Any, T] = {}
    failures: list[tuple[str, str]] = []
    for done, failed in parts:
        results |= done
        failures += failed
    return results, failures


# --------------------------------------------------------------------------- the task side
def model_fingerprint(model: Any) -> str:
    """sha256 over the names, shapes and bytes of a model's state dict (weights and buffers); ``model``
    is a ``torch.nn.Module`` or anything with a ``.model`` that is one (a ModelHandle)."""
    model = model if isinstance(model, torch.nn.Module) else model.model
    h = hashlib.sha256(type(model).__name__.encode())
    for name, t in sorted(model.state_dict().items()):
        a = t.detach().to("cpu").contiguous()
        h.update(f"{name}{tuple(a.shape)}{a.dtype}".encode())
        h.update(a.numpy().tobytes() if a.dtype != torch.bfloat16 else a.float().numpy().tobytes())
    return h.hexdigest()


_OPENED: dict[Hashable, Any] = {}
_LOCK = threading.Lock()


def opened(key: Hashable, opener: Callable[[], T]) -> T:
    """What ``opener`` returns, made once per process for ``key`` (torch set to one thread first: a
    task process is one worker slot)."""
    with _LOCK:
        if key not in _OPENED:
            torch.set_num_threads(1)
            _OPENED[key] = opener()
        return _OPENED[key]


def verified(handles: list[T], fingerprints: Sequence[str]) -> list[T]:
    """``handles``, after checking that their weights are those the caller holds."""
    for h, fp in zip(handles, fingerprints, strict=True):
        if model_fingerprint(h) != fp:
            raise RuntimeError(f"worker opened {getattr(h, 'name', h)} with other weights than the client's; "
                               "the model files differ between machines")
    return handles
