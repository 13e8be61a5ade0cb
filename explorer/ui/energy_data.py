"""The data sets of the Energies tool and the conversions its images go through (no widgets here).

- :data:`DATASETS` and :func:`dataset_source` — what the tool offers, as :func:`explorer.energies.items_for`
  arguments; :func:`list_items` lists one (:class:`DataSetError` saying why it cannot).
- :func:`match_report`, :func:`common_shape` — a chunk's report paired with its items; the data set's image size.
- :func:`fit_to_shape` — a chosen image (an upload, a photograph) cropped and resized to that size.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from explorer import energies
from explorer.data import BUILTIN_IMAGES, ImageFileError, square_resize
from explorer.data.builtin import SKIMAGE_DATA_DIR, builtin_path
from explorer.data.mnist import default_mnist_path
from explorer.energy import CONTINUOUS, NLLQuantity

MNIST_HELD_OUT = "MNIST held-out digits (the last 500, never trained on)"
MNIST_TRAINING = "MNIST training digits (the first 9500)"
MNIST_ALL = "MNIST, all 10 000 digits (9500 training, then 500 held out)"
MNIST_DATASETS = {MNIST_HELD_OUT: ("mnist:held-out", "MNIST held-out digits"),
                  MNIST_TRAINING: ("mnist:training", "MNIST training digits"),
                  MNIST_ALL: ("mnist", "MNIST digits (training and held out)")}
BSD_DIR = Path(__file__).resolve().parents[3] / "shared" / "data" / "bsd"  # <parent of the repo>/shared/data/bsd
#: Folders of photographs cut into patches: the tool's name → (folder, what it is).
PATCH_FOLDERS = {"BSD Set68 patches (held out from BSD400)": (BSD_DIR / "Set68", "Set68"),
                 "BSD Set12 patches": (BSD_DIR / "Set12", "Set12")}
PATCH_DATASETS = (*PATCH_FOLDERS, "built-in photographs (patches)")
DATASETS = (*MNIST_DATASETS, *PATCH_DATASETS, "built-in photographs (resized)", "image folder")


class DataSetError(RuntimeError):
    """The chosen data set cannot be listed (MNIST missing, no such folder, no images)."""


def fit_to_shape(img: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Centre crop to the aspect ratio of ``shape`` (H, W), then resize to it (area-averaging when shrinking)."""
    img = np.asarray(img, dtype=np.float32)
    if img.ndim == 3:
        img = img.mean(axis=-1)
    h, w = int(shape[0]), int(shape[1])
    if h == w:
        return square_resize(img, h).astype(np.float32)
    H, W = img.shape
    if H * w > W * h:  # too tall
        ch, cw = max(1, round(W * h / w)), W
    else:
        ch, cw = H, max(1, round(H * w / h))
    top, left = (H - ch) // 2, (W - cw) // 2
    crop = img[top:top + ch, left:left + cw]
    method = Image.Resampling.BOX if (h <= ch and w <= cw) else Image.Resampling.BICUBIC
    out = np.asarray(Image.fromarray(crop).resize((w, h), method), dtype=np.float32)
    return np.clip(out, 0.0, 1.0)


def list_items(data: str, kw: dict[str, Any], gray: bool = True,
               quantity: NLLQuantity = CONTINUOUS) -> tuple[list[energies.Item], str]:
    """Every item of a data set and its :func:`explorer.energies.source_spec` (raises DataSetError)."""
    if data in energies.MNIST_SOURCES:
        path = default_mnist_path()
        if not path.is_file():
            raise DataSetError(f"MNIST is not available: {path} does not exist. Put the MNIST test images "
                               "(t10k-images-idx3-ubyte.gz) there or set $EXPLORER_MNIST to the file, "
                               "or choose another data set.")
    elif data != "builtin":
        folder = Path(data.split(":", 1)[1] if data.startswith("patches:") else data)
        if not folder.is_dir():
            raise DataSetError(f"{folder}: no such folder.")
    try:
        items = energies.items_for(data, gray=gray, **kw)
    except ImageFileError as e:
        raise DataSetError(f"The data set could not be read: {e}") from e
    if data.startswith("patches:") and Path(data.split(":", 1)[1]) == SKIMAGE_DATA_DIR:
        keep = {builtin_path(n).name for n in BUILTIN_IMAGES}  # photographs only, not the package's drawings
        items = [it for it in items if it.label.split("@")[0] in keep]
    if not items:
        raise DataSetError(f"No images found in {data}.")
    return items, energies.source_spec(data, gray, kw.get("size"), kw.get("patch", 32), kw.get("per_image", 16), quantity,
                                       kw.get("stride"))


def match_report(items: Sequence[energies.Item], rep: energies.EnergyReport, offset: int
                 ) -> tuple[list[energies.Item], list[float], list[int], list[float], list[tuple[str, str]]]:
    """Pair ``items`` with the report entries from ``offset`` on (a report lists the usable items in order):
    (items, nats, dims, draw sds, failures)."""
    labels, vals, dims = rep.labels[offset:], rep.values[offset:], rep.dims[offset:]
    spread = rep.draw_sd[offset:] if rep.draw_sd is not None else np.full(len(labels), np.nan)
    reasons = dict(rep.failures)
    good, v, d, sd, bad = [], [], [], [], []
    j = 0
    for it in items:
        if j < len(labels) and labels[j] == it.label:
            good.append(it)
            v.append(float(vals[j]))
            d.append(int(dims[j]))
            sd.append(float(spread[j]))
            j += 1
        else:
            bad.append((it.label, reasons.get(it.label, "no energy")))
    return good, v, d, sd, bad


def common_shape(items: Sequence[energies.Item]) -> tuple[int, int]:
    """The most common (H, W) among the first images (the size references and uploads are made at)."""
    shapes: dict[tuple[int, int], int] = {}
    for it in items[:64]:
        try:
            s = tuple(int(n) for n in np.shape(it.load())[:2])
        except Exception:
            continue
        shapes[s] = shapes.get(s, 0) + 1
    return max(shapes, key=shapes.get) if shapes else (32, 32)


def dataset_source(dataset: str, folder: str = "", folder_patches: bool = False, patch: int = 32, stride: int | None = None,
                   per_image: int = 16) -> tuple[str, dict[str, Any], str]:
    """(items_for data argument, its keyword arguments, a human label) of a data set of :data:`DATASETS`.
    Patches are ``patch``×``patch`` at ``stride`` (None or ``patch``: non-overlapping tiles), up to ``per_image``
    per photograph, evenly spread (:func:`explorer.energies.patch_items`)."""
    p = int(patch)
    step = None if stride in (None, p) else int(stride)
    cut = dict(patch=p, per_image=int(per_image), stride=step)
    how = f"{p}×{p} patches (stride {step or p}, ≤ {int(per_image)} per photograph)"
    if dataset in MNIST_DATASETS:
        data, label = MNIST_DATASETS[dataset]
        return data, {}, label
    if dataset in PATCH_FOLDERS:
        path, name = PATCH_FOLDERS[dataset]
        return f"patches:{path}", cut, f"{how} of {name}"
    if dataset == "built-in photographs (patches)":
        return f"patches:{SKIMAGE_DATA_DIR}", cut, f"{how} of the built-in photographs"
    if dataset == "built-in photographs (resized)":
        return "builtin", dict(size=p), f"built-in photographs resized to {p}×{p}"
    path = os.path.expanduser(folder.strip())
    if folder_patches:
        return f"patches:{path}", cut, f"{how} of {path}"
    return path, {}, f"images of {path}"
