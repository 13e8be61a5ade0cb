"""Image files and folders: PNG/JPEG/TIFF/BMP, 8/16-bit, gray/RGB/RGBA/palette → float32 in [0, 1]."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif", ".pgm", ".ppm", ".webp")
MAX_PIXELS = 4096 * 4096


class ImageFileError(ValueError):
    """An image file that cannot be used; the message names the file and the problem."""


def _to_float(a: np.ndarray, path: Path) -> np.ndarray:
    """Pixel values → float32 in [0, 1]: unsigned n-bit integers are divided by 2ⁿ − 1.

    Pillow's 32-bit ``I`` mode carries no bit depth: values in [0, 65535] are read as 16-bit, other
    ranges (and floats outside [0, 1]) are mapped affinely, (a − min) / (max − min).
    """
    if a.dtype == bool:
        return a.astype(np.float32)
    if a.dtype.kind == "u" and a.dtype.itemsize in (1, 2):
        return a.astype(np.float32) / float(2 ** (8 * a.dtype.itemsize) - 1)
    if a.dtype.kind in "iu":
        if a.min(initial=0) >= 0 and a.max(initial=0) <= 65535:
            return a.astype(np.float32) / 65535.0
        a = a.astype(np.float64)
    if a.dtype.kind == "f":
        if not np.isfinite(a).all():
            raise ImageFileError(f"{path}: image contains NaN or Inf values")
        lo, hi = float(a.min()), float(a.max())
        a = a if lo >= 0.0 and hi <= 1.0 else (a - lo) / max(hi - lo, 1e-12)
        return a.astype(np.float32)
    raise ImageFileError(f"{path}: unsupported pixel type {a.dtype}")


def _native_mode(im: Image.Image) -> Image.Image:
    """Bring any Pillow mode to L, RGB, F, I or I;16*: palettes expanded, alpha dropped (not composited)."""
    if im.mode in ("P", "PA"):
        im = im.convert("RGBA" if im.mode == "PA" or "transparency" in im.info else "RGB")
    if im.mode in ("L", "RGB", "F", "I") or im.mode.startswith("I;16"):
        return im
    return im.convert("RGB" if len(im.getbands()) >= 3 else "L")


def load_image(path: str | Path, gray: bool = True) -> np.ndarray:
    """Read an image file as float32 in [0, 1]: (H, W) if ``gray`` (ITU-R 601 luma), else (H, W, 3).

    Gray = 0.299 R + 0.587 G + 0.114 B. 8-bit values are divided by 255, 16-bit by 65535 (so a 16-bit
    PNG keeps its full precision). Alpha is dropped (the colour channels are kept as stored, not
    composited), palette images are expanded, 1-bit images give {0, 1}, the EXIF orientation of
    photographs is applied, and only the first frame of a multi-frame file is read. Raises
    :class:`ImageFileError` naming the file for anything unusable: missing, empty, truncated, not an
    image, larger than 4096×4096, or with non-finite values.
    """
    path = Path(path)
    if not path.is_file():
        raise ImageFileError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise ImageFileError(f"{path}: file is empty")
    try:
        with Image.open(path) as im:
            if im.width * im.height > MAX_PIXELS:
                raise ImageFileError(f"{path}: {im.width}×{im.height} is larger than the 4096×4096 limit")
            im.load()
            im = _native_mode(ImageOps.exif_transpose(im))
            a = np.asarray(im)
    except ImageFileError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError, ValueError) as e:
        raise ImageFileError(f"{path}: not a readable image ({e})") from e
    img = _to_float(a, path)
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[..., 0]
    if gray and img.ndim == 3:
        img = np.clip(img[..., :3] @ np.array([0.299, 0.587, 0.114], dtype=np.float32), 0.0, 1.0)
    elif not gray and img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    return np.ascontiguousarray(img, dtype=np.float32)


def list_images(folder: str | Path) -> list[Path]:
    """Image files directly inside ``folder``, in sorted (deterministic) order."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ImageFileError(f"{folder}: not a folder")
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def load_folder(folder: str | Path, gray: bool = True) -> list[np.ndarray]:
    """Every image of ``folder`` (sorted by name); raises on the first unreadable file."""
    return [load_image(p, gray=gray) for p in list_images(folder)]
