"""The Dask runner: data-set-wide jobs (energies, benchmark tables, effective dimensions) on a cluster.

A thin layer over ``dask.distributed`` (the optional extra ``denoiser-explorer[dask]``):
:func:`client_for` opens a client on a running scheduler or on a local cluster of worker processes,
:class:`DaskRunner` is the :mod:`explorer.runner` hook on such a client (one task per batch of images,
results as they complete, with a progress bar), and :func:`runner_for` is what the CLIs use for their
``--scheduler`` / ``--workers`` flags. The library modules never import this one: they take a runner.

Tasks carry descriptions, never images or models: model names or paths with their weight
fingerprints, the data-set description, image paths and their indices in the data set. Workers
therefore read the models and images themselves (once per worker process, torch limited to one
thread, weights checked against the client's: :func:`explorer.runner.opened`); on a remote cluster
they must be at the same paths on every worker. Each image is computed exactly as on a single
machine (same noise, same code), and the client merges the results in data-set order, so the numbers
are identical; caches are written by the client only.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

from tqdm import tqdm

from .effective_dims import EffectiveDims, effective_dims, effective_dims_of  # noqa: F401  (their old home)
from .runner import TASKS_PER_WORKER, batches  # noqa: F401

if TYPE_CHECKING:
    from distributed import Client

T = TypeVar("T")
R = TypeVar("R")


@contextmanager
def client_for(scheduler: str | None = None, workers: int | None = None) -> Iterator[Client | None]:
    """A Dask client on ``scheduler`` (an address such as ``tcp://host:8786``) or on a local cluster of
    ``workers`` single-threaded processes (shut down on exit); ``None`` when neither is given (run locally)."""
    if scheduler is not None and workers is not None:
        raise ValueError("give a scheduler address or a number of local workers, not both")
    if scheduler is None and workers is None:
        yield None
        return
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise ImportError("--scheduler / --workers need Dask: pip install 'denoiser-explorer[dask]'") from None
    if scheduler is not None:
        with Client(scheduler) as client:
            yield client
        return
    if workers < 1:
        raise ValueError(f"workers must be ≥ 1, got {workers}")
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        yield client


def split(seq: Sequence[T], client: Client, most: int | None = None) -> list[list[T]]:
    """``seq`` cut into contiguous batches, about :data:`TASKS_PER_WORKER` per worker thread of
    ``client``, each at most ``most`` long."""
    return batches(seq, sum(client.nthreads().values()), most)


def map_batches(fn: Callable[..., R], parts: Sequence[Sequence[Any]], client: Client, *args: Any,
                progress: bool = True, desc: str = "batches") -> Iterator[tuple[int, R]]:
    """Run ``fn(batch, *args)`` on the workers, one task per batch; yield (batch index, result) as tasks
    complete, with a progress bar counting images. A failed task raises here; pending ones are cancelled."""
    from distributed import as_completed

    futures = {client.submit(fn, batch, *args, pure=False): k for k, batch in enumerate(parts)}
    bar = tqdm(total=sum(len(b) for b in parts), desc=desc, unit="image", disable=not progress)
    try:
        for future in as_completed(futures):
            k = futures[future]
            result = future.result()
            bar.update(len(parts[k]))
            yield k, result
    finally:
        bar.close()
        client.cancel(list(futures))


def gather_batches(fn: Callable[..., R], parts: Sequence[Sequence[Any]], client: Client, *args: Any,
                   progress: bool = True, desc: str = "batches") -> list[R]:
    """:func:`map_batches`, its results in batch order."""
    done = dict(map_batches(fn, parts, client, *args, progress=progress, desc=desc))
    return [done[k] for k in range(len(parts))]


class DaskRunner:
    """The :mod:`explorer.runner` hook on a Dask ``client``: the items cut by :func:`split`, one task
    per batch on the workers, a progress bar over the images, results in batch order."""

    in_process = False

    def __init__(self, client: Client):
        self.client = client

    def __call__(self, fn: Callable[[list[T]], R], items: Sequence[T], *, most: int | None = None,
                 desc: str = "batches", progress: bool = False) -> list[R]:
        if not len(items):
            return []
        return gather_batches(fn, split(items, self.client, most), self.client, progress=progress, desc=desc)


@contextmanager
def runner_for(scheduler: str | None = None, workers: int | None = None) -> Iterator[DaskRunner | None]:
    """A :class:`DaskRunner` on :func:`client_for` (``scheduler`` or ``workers``), or ``None`` (the
    library's default, serial runner) when neither is given: what the CLIs' flags choose."""
    with client_for(scheduler, workers) as client:
        yield None if client is None else DaskRunner(client)
