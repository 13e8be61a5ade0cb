"""Data sets for the representation φ, with their labels, and their features φ cached on disk.

- :func:`dataset` — ``mnist`` / ``mnist:held-out`` / ``mnist:training`` (the registry's split of the digits padded
  to 32×32, with the digit of each from the labels file that ships beside the images, same order), ``patches:DIR``
  (tiles of every image of a folder) or a folder (its images must share one size), optionally the first
  ``count`` items.
- :func:`dataset_features` — φ_b(x_n; σ) of every item (:func:`explorer.representation.features_of_images`),
  cached in ``$EXPLORER_REPRESENTATION_CACHE`` or ``~/.cache/denoiser-explorer/representations/``, one file per
  model (its weights' sha), block, σ, draws, seed and batch, holding ``keys`` and ``features``; items already
  in the file are not recomputed (a changed file gets a new key, see :mod:`explorer.energies_sources`).
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .data import mnist, registry
from .energies_sources import MNIST_SOURCES, folder_items, items_for, mnist_label
from .representation import features_of_images
from .runner import model_fingerprint


@dataclass(frozen=True)
class DataSet:
    """N images (N, H, W) in [0, 1] with a cache ``key`` and a ``name`` each, and their digit ``classes``
    (N,) where the source has labels (None otherwise). ``source`` is what :func:`dataset` was given."""

    source: str
    images: np.ndarray
    keys: list[str]
    names: list[str]
    classes: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.keys)


def _mnist(source: str, count: int | None) -> DataSet:
    part = MNIST_SOURCES[source]
    path = mnist.default_mnist_path()
    digits = mnist.load_mnist(path, pad_to=32)
    labels = mnist.load_mnist_labels(path)
    if len(labels) != len(digits):
        raise ValueError(f"{mnist.labels_path(path)} holds {len(labels)} labels for {len(digits)} images")
    train, held = registry.mnist_split(len(digits))
    idx = {"all": np.arange(len(digits)), "held-out": held, "training": train}[part][:count]
    st = path.stat()
    base = f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}"
    return DataSet(source, digits[idx], [f"{base}|{i}" for i in idx],
                   [mnist_label(int(i), len(digits)) for i in idx], labels[idx].astype(np.int64))


def dataset(source: str, count: int | None = None, patch: int = 32, per_image: int = 16) -> DataSet:
    """The images of ``source`` (see the module docstring), the first ``count`` of them if given."""
    if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 1):
        raise ValueError(f"count must be a positive integer or None, got {count!r}")
    if source in MNIST_SOURCES:
        return _mnist(source, count)
    if not source.startswith("patches:") and not Path(source).is_dir():
        raise ValueError(f"unknown data set {source!r}: give mnist, mnist:held-out, mnist:training, "
                         "patches:DIR or a folder of images")
    items = (items_for(source, patch=patch, per_image=per_image) if source.startswith("patches:")
             else folder_items(source))[:count]
    if not items:
        raise ValueError(f"{source}: no images found")
    images = [np.asarray(it.load(), dtype=np.float32) for it in items]
    sizes = sorted({im.shape for im in images})
    if len(sizes) > 1:
        raise ValueError(f"{source}: the images have {len(sizes)} sizes ({sizes[0]}, {sizes[1]}, …); "
                         "use patches:DIR for tiles of one size")
    return DataSet(source, np.stack(images), [it.key for it in items], [it.label for it in items])


def cache_dir() -> Path:
    env = os.environ.get("EXPLORER_REPRESENTATION_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "denoiser-explorer" / "representations"


def cache_path(handle: object, block: str, sigma: float | None, draws: int, seed: int, batch: int) -> Path:
    """The cache file of a model (its weights) and the settings of φ."""
    spec = json.dumps(dict(block=block, sigma=float(sigma or 0.0), draws=draws, seed=seed, batch=batch))
    return cache_dir() / f"{model_fingerprint(handle)[:16]}-{hashlib.sha256(spec.encode()).hexdigest()[:16]}.npz"


def read_cache(path: Path) -> dict[str, np.ndarray]:
    """key → φ of the items a cache file holds ({} when missing; an unreadable file is reported on stderr)."""
    if not path.is_file():
        return {}
    try:
        with np.load(path, allow_pickle=False) as z:
            return dict(zip(z["keys"].tolist(), z["features"]))
    except (OSError, ValueError, KeyError) as e:
        print(f"warning: ignoring unreadable representation cache {path} ({e})", file=sys.stderr)
        return {}


def write_cache(path: Path, entries: dict[str, np.ndarray]) -> None:
    """Write key → φ entries to ``path`` atomically (a temporary file renamed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp.npz")
    np.savez(tmp, keys=np.array(list(entries), dtype=str), features=np.stack(list(entries.values())))
    tmp.replace(path)


def dataset_features(handle: object, data: DataSet, block: str, sigma: float | None = None, draws: int = 1,
                     seed: int = 0, batch: int = 250, cache: bool = True,
                     progress: Callable[[int, int], object] | None = None,
                     stop: Callable[[], bool] | None = None) -> np.ndarray:
    """φ_b(x_n; σ) (N, K_b) of the data set's images, those not in the cache computed (and added to it).

    The noise of the missing items is drawn for them alone, so a cached row can differ from one computed with
    the others; with σ None every row is exact. Stopped early (``stop()``), missing rows are NaN and not cached."""
    path = cache_path(handle, block, sigma, draws, seed, batch) if cache else None
    known = read_cache(path) if path is not None else {}
    todo = [i for i, k in enumerate(data.keys) if k not in known]
    fresh = features_of_images(handle, data.images[todo], block, sigma, draws, seed, batch, progress, stop) \
        if todo else None
    rows = [known.get(k) for k in data.keys]
    for j, i in enumerate(todo):
        rows[i] = fresh[j]
    out = np.stack(rows).astype(np.float32)
    if path is not None and todo and np.isfinite(fresh).all():
        known.update({data.keys[i]: out[i] for i in todo})
        write_cache(path, known)
    return out
