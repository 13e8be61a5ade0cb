"""The images of a data-set-wide job: references any process can read, their seeded noise, the
per-image loop that records failures, and opening a model by name or path.

Shared by :mod:`explorer.evaluate` (benchmark tables), :mod:`explorer.effective_dims` and the tasks
that :mod:`explorer.runner` runners carry to other processes.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

import numpy as np
from tqdm import tqdm

from .checkpoints import load
from .convert import import_legacy
from .data.files import load_image
from .data.testsets import SetImage
from .handle import ModelHandle

#: (file name, reason) of every image that could not be used.
Failures = list[tuple[str, str]]
#: An image of a benchmark: a file, or an image of a built-in set that any process can make.
ImageRef = str | Path | SetImage
T = TypeVar("T")


def noisy_image(image: np.ndarray, sigma: float, seed: int, index: int) -> np.ndarray:
    """y = x + σ z with z drawn from a generator seeded by (seed, index, σ in 1/1000 of an 8-bit level)."""
    key = np.random.SeedSequence([seed, index, int(round(sigma * 255_000))])
    z = np.random.default_rng(key).standard_normal(image.shape, dtype=np.float64)
    return (image + sigma * z).astype(np.float32)


def read_image(ref: ImageRef, gray: bool) -> np.ndarray:
    """The image a reference names, in [0, 1] (built-in sets are gray)."""
    return ref.load() if isinstance(ref, SetImage) else load_image(ref, gray=gray)


def image_name(ref: ImageRef) -> str:
    return ref.name if isinstance(ref, SetImage) else Path(ref).name


def each_image(fn: Callable[[int, np.ndarray], T], files: Sequence[tuple[int, ImageRef]], gray: bool,
               desc: str, progress: bool = False) -> tuple[dict[int, T], Failures]:
    """{index: fn(index, image)} over (index, image reference) pairs; an image that cannot be read or
    used is recorded in the failures as (file name, reason) instead."""
    done: dict[int, T] = {}
    failures: Failures = []
    for i, ref in tqdm(files, desc=desc, unit="image", disable=not progress):
        try:
            done[i] = fn(i, read_image(ref, gray))
        except (ValueError, RuntimeError) as e:  # ImageFileError is a ValueError
            failures.append((image_name(ref), str(e)))
    return done, failures


def portable(files: Sequence[tuple[int, ImageRef]]) -> list[tuple[int, ImageRef]]:
    """(index, absolute path) pairs, readable from any process's working directory (images of built-in
    sets stay as they are: every process makes them itself)."""
    return [(i, p if isinstance(p, SetImage) else str(Path(p).resolve())) for i, p in files]


def open_model(spec: str) -> ModelHandle:
    """A catalog name / ``.safetensors`` / ``.json`` path, or a lab ``.pt`` file imported in memory."""
    path = Path(spec)
    if path.suffix in {".pt", ".pth"}:
        legacy = import_legacy(path)
        return ModelHandle(legacy.model, card=legacy.fields, name=legacy.name)
    return load(spec)
