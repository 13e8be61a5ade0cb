"""The data sets of :mod:`explorer.energies`: their images as cache-keyed :class:`Item` objects, and the JSON
description of a data set (and of the quantity computed) that the cache and other processes read.

Sources: ``mnist`` / ``mnist:held-out`` / ``mnist:training`` (the registry's split of the digits
padded to 32×32), ``builtin``, ``patches:DIR`` (tiles of every image of a folder) or a folder. Each
item's key is its file's path, size and modification time (and index or patch position), so a
changed file gets a new key.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .data import builtin, files, mnist, registry
from .data.patches import patch_positions
from .likelihood import CONTINUOUS, NLLQuantity

MNIST_SOURCES = {"mnist": "all", "mnist:held-out": "held-out", "mnist:training": "training"}
PADDED_MNIST_NOTE = ("d = 1024 values per image: the 28×28 digits zero-padded to 32×32 (240 values always 0), "
                     "so bits/dim are per padded pixel, not comparable with 28×28 MNIST results")


@dataclass
class Item:
    """One image of a data set: a cache key (changes when the file changes), a label, a loader, and the
    quantity its −log p is computed as when the source description names one (:func:`items_for_source`)."""

    key: str
    label: str
    load: Callable[[], np.ndarray]
    quantity: NLLQuantity | None = None



def _file_key(path: Path) -> str:
    st = path.stat()
    return f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}"


def folder_items(folder: str | Path, gray: bool = True) -> list[Item]:
    return [Item(_file_key(p), p.name, lambda p=p: files.load_image(p, gray=gray)) for p in files.list_images(folder)]


def builtin_items(size: int | None = None, gray: bool = True) -> list[Item]:
    out = []
    for name in builtin.BUILTIN_IMAGES:
        path = builtin.builtin_path(name)
        out.append(Item(f"{_file_key(path)}|{size}", name, lambda name=name: builtin.builtin_image(name, size)))
    return out


def mnist_label(i: int, count: int) -> str:
    """"held-out digit i" or "training digit i" (i the index among all ``count`` digits; the registry's split)."""
    return f"{'held-out' if registry.is_held_out_digit(i, count) else 'training'} digit {i}"


def mnist_items(path: str | Path | None = None, part: str = "all") -> list[Item]:
    """The MNIST digits padded to 32×32: ``part`` "held-out" (the registry's last 500, each once),
    "training" (the first 9500) or "all", each labelled by its split and its index among all digits."""
    if part not in ("all", "held-out", "training"):
        raise ValueError(f"part must be all, held-out or training, got {part!r}")
    p = Path(path) if path else mnist.default_mnist_path()
    digits = mnist.load_mnist(p, pad_to=32)
    train, held = registry.mnist_split(len(digits))
    idx = {"all": np.arange(len(digits)), "held-out": held, "training": train}[part]
    base = _file_key(p)
    return [Item(f"{base}|{i}", mnist_label(int(i), len(digits)), lambda i=int(i): digits[i]) for i in idx]


def data_note(data: str) -> str | None:
    """What a reader must know about the numbers of a data set (the padded MNIST digits' d), or None."""
    return PADDED_MNIST_NOTE if data in MNIST_SOURCES else None


def patch_items(folder: str | Path, size: int, per_image: int | None, gray: bool = True, stride: int | None = None) -> list[Item]:
    """size×size patches of every image of ``folder`` at ``stride`` pixels (default ``size``: non-overlapping
    tiles), never past the border (:func:`explorer.data.patches.patch_positions`); up to ``per_image`` of
    them per image, evenly spread in row-major order (None: all)."""
    step = size if stride is None else stride
    out = []
    for p in files.list_images(folder):
        try:
            img = files.load_image(p, gray=gray)
        except files.ImageFileError as e:
            out.append(Item(_file_key(p), p.name, lambda e=e: (_ for _ in ()).throw(e)))  # reported at compute time
            continue
        tiles = [(int(r), int(c)) for r in patch_positions(img.shape[0], size, step) for c in patch_positions(img.shape[1], size, step)]
        keep = len(tiles) if per_image is None else min(per_image, len(tiles))
        chosen = [tiles[i] for i in np.unique(np.linspace(0, len(tiles) - 1, keep).round().astype(int))] if tiles else []
        for r, c in chosen:
            out.append(Item(f"{_file_key(p)}|{r},{c}|{size}", f"{p.name}@{r},{c}", lambda img=img, r=r, c=c: img[r:r + size, c:c + size]))
    return out


def items_for(source: str, gray: bool = True, size: int | None = None, patch: int = 32, per_image: int | None = 16,
              stride: int | None = None) -> list[Item]:
    """``mnist`` / ``mnist:held-out`` / ``mnist:training``, ``builtin`` (optionally resized to ``size``),
    ``patches:DIR`` (:func:`patch_items`: ``patch``, ``per_image``, ``stride``) or a folder path."""
    if source in MNIST_SOURCES:
        return mnist_items(part=MNIST_SOURCES[source])
    if source == "builtin":
        return builtin_items(size, gray)
    if source.startswith("patches:"):
        return patch_items(source.split(":", 1)[1], patch, per_image, gray, stride)
    return folder_items(source, gray)


def source_spec(data: str, gray: bool = True, size: int | None = None, patch: int = 32, per_image: int | None = 16,
                quantity: NLLQuantity = CONTINUOUS, stride: int | None = None) -> str:
    """The JSON description of a data set (the :func:`items_for` arguments) and of the quantity computed
    (named only when discrete): the cache's source id and what Dask workers re-list the items from.
    ``stride`` is named only when given (a description without it is that of non-overlapping tiles)."""
    spec: dict[str, Any] = {"data": data, "size": size, "patch": patch, "per_image": per_image, "gray": gray}
    if stride is not None:
        spec["stride"] = stride
    if quantity.discrete:
        spec["quantity"] = quantity.spec()
    return json.dumps(spec)


def quantity_of_source(source: str) -> NLLQuantity:
    """The quantity a :func:`source_spec` description names (the continuous density when none, or for
    a plain string)."""
    try:
        s = json.loads(source)
    except ValueError:
        return CONTINUOUS
    q = s.get("quantity") if isinstance(s, dict) else None
    return NLLQuantity(**q) if q else CONTINUOUS


def items_for_source(source: str) -> list[Item]:
    """The items of a :func:`source_spec` description (carrying its quantity)."""
    s = json.loads(source)
    items = items_for(s["data"], gray=s["gray"], size=s["size"], patch=s["patch"], per_image=s["per_image"], stride=s.get("stride"))
    q = quantity_of_source(source)
    for it in items:
        it.quantity = q
    return items


def absolute_source(source: str) -> str:
    """A :func:`source_spec` description with its folder made absolute, so that any process can list it.

    Raises ValueError for a source that is not such a description."""
    try:
        s = json.loads(source)
        if not isinstance(s, dict) or set(s) - {"quantity", "stride"} != {"data", "size", "patch", "per_image", "gray"}:
            raise ValueError
    except ValueError:
        raise ValueError(f"distributed energies need a source_spec(...) description as source, got {source!r}") from None
    data = s["data"]
    if data.startswith("patches:"):
        s["data"] = "patches:" + str(Path(data.split(":", 1)[1]).resolve())
    elif data not in (*MNIST_SOURCES, "builtin"):
        s["data"] = str(Path(data).resolve())
    return json.dumps(s)

