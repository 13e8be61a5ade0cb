"""MNIST digits from an IDX image file (gzip-compressed or raw), as float32 in [0, 1], and their labels.

IDX3 layout (all integers big-endian): magic 0x00000803 = 2051 (two zero bytes, type 0x08 =
unsigned byte, 3 dimensions), then uint32 N, rows, cols, then N·rows·cols pixel bytes, row-major.
The labels file (IDX1) ships beside the images, in the same order: magic 0x00000801 = 2049, uint32 N,
then N label bytes (the digits 0–9).
"""
from __future__ import annotations

import gzip
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from .files import ImageFileError

IDX3_MAGIC = 2051
IDX1_MAGIC = 2049
MNIST_ENV = "EXPLORER_MNIST"


def default_mnist_path() -> Path:
    """``$EXPLORER_MNIST`` if set, else ``<parent of the repo>/shared/data/mnist/t10k-images-idx3-ubyte.gz``."""
    env = os.environ.get(MNIST_ENV)
    if env:
        return Path(env)
    repo_parent = Path(__file__).resolve().parents[3]  # .../<repo>/explorer/data/mnist.py → parent of <repo>
    return repo_parent / "shared" / "data" / "mnist" / "t10k-images-idx3-ubyte.gz"


def _read_bytes(path: Path) -> bytes:
    if not path.is_file():
        raise ImageFileError(f"{path}: no such file")
    raw = path.read_bytes()
    if raw[:2] != b"\x1f\x8b":
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as e:
        raise ImageFileError(f"{path}: corrupt or truncated gzip stream ({e})") from e


def read_idx_images(path: str | Path) -> np.ndarray:
    """The (N, rows, cols) uint8 array stored in an IDX3 file; raises :class:`ImageFileError` naming it."""
    path = Path(path)
    data = _read_bytes(path)
    if len(data) < 16:
        raise ImageFileError(f"{path}: {len(data)} bytes is too short for an IDX3 header (16 bytes)")
    magic, n, rows, cols = struct.unpack(">4I", data[:16])
    if magic != IDX3_MAGIC:
        raise ImageFileError(f"{path}: bad magic number {magic} (an IDX3 image file starts with {IDX3_MAGIC})")
    expected = n * rows * cols
    body = data[16:]
    if len(body) != expected:
        kind = "truncated" if len(body) < expected else "has trailing bytes"
        raise ImageFileError(
            f"{path}: {kind}: header announces {n}×{rows}×{cols} = {expected} pixel bytes, found {len(body)}"
        )
    return np.frombuffer(body, dtype=np.uint8).reshape(n, rows, cols)


def load_mnist(path: str | Path | None = None, pad_to: int | None = 32) -> np.ndarray:
    """MNIST images as (N, H, W) float32 = byte / 255.

    ``path`` defaults to :func:`default_mnist_path`. With ``pad_to`` each image is zero-padded
    symmetrically to ``pad_to`` × ``pad_to`` (28 → 32 puts 2 rows/columns of 0 on every side; an odd
    excess goes to the bottom/right); ``None`` keeps the stored size.
    """
    digits = read_idx_images(default_mnist_path() if path is None else path)
    images = digits.astype(np.float32) / 255.0
    if pad_to is None:
        return images
    _, h, w = images.shape
    if pad_to < max(h, w):
        raise ValueError(f"pad_to={pad_to} is smaller than the {h}×{w} images")
    top, left = (pad_to - h) // 2, (pad_to - w) // 2
    return np.pad(images, ((0, 0), (top, pad_to - h - top), (left, pad_to - w - left)))


def labels_path(images_path: str | Path | None = None) -> Path:
    """The labels file beside an images file: ``…-images-idx3-ubyte[.gz]`` → ``…-labels-idx1-ubyte[.gz]``."""
    p = default_mnist_path() if images_path is None else Path(images_path)
    if "-images-idx3-" not in p.name:
        raise ImageFileError(f"{p}: cannot tell its labels file (expected a name with '-images-idx3-')")
    return p.with_name(p.name.replace("-images-idx3-", "-labels-idx1-"))


def read_idx_labels(path: str | Path) -> np.ndarray:
    """The (N,) uint8 labels stored in an IDX1 file; raises :class:`ImageFileError` naming it."""
    path = Path(path)
    data = _read_bytes(path)
    if len(data) < 8:
        raise ImageFileError(f"{path}: {len(data)} bytes is too short for an IDX1 header (8 bytes)")
    magic, n = struct.unpack(">2I", data[:8])
    if magic != IDX1_MAGIC:
        raise ImageFileError(f"{path}: bad magic number {magic} (an IDX1 label file starts with {IDX1_MAGIC})")
    if len(data) - 8 != n:
        raise ImageFileError(f"{path}: header announces {n} labels, found {len(data) - 8} bytes")
    return np.frombuffer(data[8:], dtype=np.uint8).copy()


def load_mnist_labels(images_path: str | Path | None = None) -> np.ndarray:
    """The digit (0–9) of each image of :func:`load_mnist` (same order), from the labels file beside it."""
    return read_idx_labels(labels_path(images_path))
