"""Data-set-wide jobs on a Dask cluster: energies, benchmark tables, effective dimensions.

A thin layer over ``dask.distributed`` (the optional extra ``denoiser-explorer[dask]``):
:func:`client_for` opens a client on a running scheduler or on a local cluster of worker processes,
:func:`map_batches` submits one task per batch of images and yields the results as they complete
(with a progress bar), and the ``_*_batch`` worker functions compute one batch each. They are
module-level functions, pickled by reference, and open each model once per worker process (checking
that its weights are those the client holds), with torch limited to one thread.

Tasks carry descriptions, never images or models: model names or paths, the data-set description,
image paths and their indices in the data set. Workers therefore read the models and images
themselves; on a remote cluster they must be at the same paths on every worker. Each image is
computed exactly as on a single machine (same noise, same code), and the client merges the results
in data-set order, so the numbers are identical; caches are written by the client only.

:func:`effective_dims` (tr ∂x̂/∂y over the images of a folder) has the same local / Dask split.
"""
from __future__ import annotations

import math
import threading
from collections.abc import Callable, Hashable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import torch
from tqdm import tqdm

from .data.files import list_images
from .energies import Energies, Item, absolute_source, energies_of, items_for_source, model_fingerprint
from .data.testsets import SetImage
from .evaluate import Failures, ImageRef, ImageScores, Lineup, each_image, noisy_image, open_model, score_files
from .handle import ModelHandle
from .jacobian import DEFAULT_PROBES, Estimate, Method, effective_dim

if TYPE_CHECKING:
    from distributed import Client

T = TypeVar("T")
R = TypeVar("R")

#: Batches per worker thread: enough for load balancing and a smooth progress bar, few enough to keep overheads small.
TASKS_PER_WORKER = 4


# --------------------------------------------------------------------------- the client side
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
    """``seq`` cut into contiguous batches, about :data:`TASKS_PER_WORKER` per worker thread, each at
    most ``most`` long."""
    slots = max(1, sum(client.nthreads().values()))
    size = max(1, math.ceil(len(seq) / (TASKS_PER_WORKER * slots)))
    if most is not None:
        size = min(size, max(1, most))
    return [list(seq[i:i + size]) for i in range(0, len(seq), size)]


def map_batches(fn: Callable[..., R], batches: Sequence[Sequence[Any]], client: Client, *args: Any,
                progress: bool = True, desc: str = "batches") -> Iterator[tuple[int, R]]:
    """Run ``fn(batch, *args)`` on the workers, one task per batch; yield (batch index, result) as tasks
    complete, with a progress bar counting images. A failed task raises here; pending ones are cancelled."""
    from distributed import as_completed

    futures = {client.submit(fn, batch, *args, pure=False): k for k, batch in enumerate(batches)}
    bar = tqdm(total=sum(len(b) for b in batches), desc=desc, unit="image", disable=not progress)
    try:
        for future in as_completed(futures):
            k = futures[future]
            result = future.result()
            bar.update(len(batches[k]))
            yield k, result
    finally:
        bar.close()
        client.cancel(list(futures))


def gather_batches(fn: Callable[..., R], batches: Sequence[Sequence[Any]], client: Client, *args: Any,
                   progress: bool = True, desc: str = "batches") -> list[R]:
    """:func:`map_batches`, its results in batch order."""
    done = dict(map_batches(fn, batches, client, *args, progress=progress, desc=desc))
    return [done[k] for k in range(len(batches))]


def _merge(parts: Sequence[tuple[dict[Any, T], Failures]]) -> tuple[dict[Any, T], Failures]:
    """One (results, failures) pair from per-batch pairs, in batch order."""
    results: dict[Any, T] = {}
    failures: Failures = []
    for done, failed in parts:
        results |= done
        failures += failed
    return results, failures


def _indexed_paths(files: Sequence[tuple[int, ImageRef]]) -> list[tuple[int, ImageRef]]:
    """(index, absolute path) pairs, readable from any worker's working directory (images of built-in
    sets stay as they are: every worker makes them itself)."""
    return [(i, p if isinstance(p, SetImage) else str(Path(p).resolve())) for i, p in files]


def remote_energies(client: Client, model_ref: str, fingerprint: str, source: str, items: Sequence[Item],
                    batch: int = 64, progress: bool = True) -> tuple[Energies, Failures]:
    """:func:`explorer.energies.energies_of` of ``items`` (listed from ``source``) on the workers."""
    pairs = [(it.key, it.label) for it in items]
    if not pairs:
        return {}, []
    parts = gather_batches(_energies_batch, split(pairs, client, batch), client, model_ref, fingerprint,
                           absolute_source(source), batch, progress=progress, desc="energies")
    return _merge(parts)


def remote_scores(client: Client, lineup: Lineup, handles: Sequence[ModelHandle], files: Sequence[tuple[int, ImageRef]],
                  sigmas: Sequence[float], seed: int, progress: bool = True) -> tuple[dict[int, ImageScores], Failures]:
    """:func:`explorer.evaluate.score_files` on the workers; ``handles`` are the lineup opened here."""
    fingerprints = tuple(model_fingerprint(h.model) for h in handles)
    indexed = _indexed_paths(files)
    parts = gather_batches(_evaluate_batch, split(indexed, client), client, lineup, fingerprints, list(sigmas), seed,
                           progress=progress, desc="evaluate")
    return _merge(parts)


# --------------------------------------------------------------------------- effective dimensions
@dataclass
class EffectiveDims:
    """tr A (A = ∂x̂/∂y) at one noisy draw of every usable image of a folder, and the files that failed."""

    labels: list[str]
    estimates: list[Estimate]
    failures: Failures

    @property
    def values(self) -> np.ndarray:
        return np.array([e.value for e in self.estimates], dtype=np.float64)


def effective_dims_of(handle: ModelHandle, files: Sequence[tuple[int, str | Path]], sigma: float, method: Method,
                      probes: int, seed: int, progress: bool = False) -> tuple[dict[int, Estimate], Failures]:
    """:func:`explorer.jacobian.effective_dim` at y_i = x_i + σ z_i for every (index i, path) pair, with the
    noise of :func:`explorer.evaluate.noisy_image` (seeded by (seed, i, σ)); non-blind models are told σ."""
    def one(i: int, x: np.ndarray) -> Estimate:
        y = noisy_image(x, sigma, seed, i)
        return effective_dim(handle, y, method, probes, None if handle.blind else sigma, seed)

    return each_image(one, files, handle.channels == 1, "effective dim", progress)


def effective_dims(model: str, folder: str | Path, sigma: float, method: Method = "auto", probes: int = DEFAULT_PROBES,
                   seed: int = 0, client: Client | None = None, progress: bool = True) -> EffectiveDims:
    """Effective dimension (tr A) of ``model`` (a name or path) at noise level ``sigma`` ([0, 1] units)
    over the images of ``folder``, locally or on the workers of a Dask ``client``."""
    if not math.isfinite(sigma) or sigma <= 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    handle = open_model(model)
    paths = list_images(folder)
    files = list(enumerate(paths))
    if client is None:
        done, failures = effective_dims_of(handle, files, sigma, method, probes, seed, progress)
    else:
        parts = gather_batches(_effective_dim_batch, split(_indexed_paths(files), client), client, model,
                               model_fingerprint(handle.model), sigma, method, probes, seed,
                               progress=progress, desc="effective dim")
        done, failures = _merge(parts)
    order = sorted(done)
    return EffectiveDims([paths[i].name for i in order], [done[i] for i in order], failures)


# --------------------------------------------------------------------------- the worker side
_OPENED: dict[Hashable, Any] = {}
_LISTING: dict[str, dict[str, Item]] = {}
_LOCK = threading.Lock()


def _opened(key: Hashable, opener: Callable[[], T]) -> T:
    """What ``opener`` returns, made once per worker process for ``key`` (torch set to one thread first)."""
    with _LOCK:
        if key not in _OPENED:
            torch.set_num_threads(1)
            _OPENED[key] = opener()
        return _OPENED[key]


def _verified(handles: list[ModelHandle], fingerprints: Sequence[str]) -> list[ModelHandle]:
    """``handles``, after checking that their weights are those of the client's models."""
    for h, fp in zip(handles, fingerprints, strict=True):
        if model_fingerprint(h.model) != fp:
            raise RuntimeError(f"worker opened {h.name} with other weights than the client's; "
                               "the model files differ between machines")
    return handles


def _listed(source: str, pairs: Sequence[tuple[str, str]]) -> tuple[list[Item], Failures]:
    """The items of ``source`` with the given (key, label) pairs, and failures for keys not found
    (the file changed or vanished since the client listed it). The last listing is kept per worker."""
    with _LOCK:
        listing = _LISTING.get(source)
        if listing is None or any(key not in listing for key, _ in pairs):
            _LISTING.clear()
            listing = _LISTING[source] = {it.key: it for it in items_for_source(source)}
    found = [listing[key] for key, _ in pairs if key in listing]
    missing = [(label, "changed or vanished since it was listed") for key, label in pairs if key not in listing]
    return found, missing


def _energies_batch(pairs: Sequence[tuple[str, str]], model_ref: str, fingerprint: str, source: str,
                    batch: int) -> tuple[Energies, Failures]:
    """Worker: energies of the items (key, label) of ``source`` under the energy model ``model_ref``."""
    from .checkpoints import load

    handle = _opened(("energy", model_ref, fingerprint), lambda: _verified([load(model_ref, device="cpu")], [fingerprint])[0])
    items, missing = _listed(source, pairs)
    fresh, failures = energies_of(handle.model, items, batch, progress=False)
    return fresh, missing + failures


def _evaluate_batch(files: Sequence[tuple[int, str]], lineup: Lineup, fingerprints: tuple[str, ...],
                    sigmas: Sequence[float], seed: int) -> tuple[dict[int, ImageScores], Failures]:
    """Worker: PSNR / SSIM of the lineup on (index, path) images."""
    handles = _opened(("evaluate", lineup, fingerprints), lambda: _verified(lineup.open(), fingerprints))
    return score_files(handles, files, sigmas, seed)


def _effective_dim_batch(files: Sequence[tuple[int, str]], model: str, fingerprint: str, sigma: float, method: Method,
                         probes: int, seed: int) -> tuple[dict[int, Estimate], Failures]:
    """Worker: effective dimensions of ``model`` on (index, path) images."""
    handle = _opened(("denoiser", model, fingerprint), lambda: _verified([open_model(model)], [fingerprint])[0])
    return effective_dims_of(handle, files, sigma, method, probes, seed)
