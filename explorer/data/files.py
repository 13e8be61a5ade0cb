"""Image files and folders: PNG/JPEG/TIFF/BMP, 8/16-bit, gray/RGB/RGBA/palette → float32 in [0, 1]."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif", ".pgm", ".ppm", ".webp")
MAX_PIXELS = 4096 * 4096


class ImageFileError(ValueError):
    """An image file that cannot be used; the message names the file and the problem."""


def _to_float(a: np.ndarray, path: Path) -> np.ndarray:
    if a.dtype == np.uint8:
        return a.astype(np.float32) / 255.0
    if a.dtype == np.uint16:
        return a.astype(np.float32) / 65535.0
    if a.dtype in (np.int32, np.uint32):  # Pillow's 'I' mode: 16-bit PNGs arrive as int32
        top = 65535.0 if a.max(initial=0) > 255 else 255.0
        return np.clip(a.astype(np.float32) / top, 0.0, 1.0)
    if a.dtype == bool:
        return a.astype(np.float32)
    if np.issubdtype(a.dtype, np.floating):
        a = a.astype(np.float32)
        if not np.isfinite(a).all():
            raise ImageFileError(f"{path}: image contains NaN or Inf values")
        lo, hi = float(a.min()), float(a.max())
        return a if lo >= 0.0 and hi <= 1.0 else (a - lo) / max(hi - lo, 1e-12)
    raise ImageFileError(f"{path}: unsupported pixel type {a.dtype}")


def load_image(path: str | Path, gray: bool = True) -> np.ndarray:
    """Read an image file as float32 in [0, 1]: (H, W) if ``gray`` (ITU-R 601 luma), else (H, W, 3).

    Alpha is dropped (composited on black is *not* done: the colour channels are kept as stored);
    palette images are expanded. Raises :class:`ImageFileError` naming the file for anything unusable:
    missing, empty, truncated, not an image, larger than 4096×4096, or with non-finite values.
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
            if im.mode == "P":
                im = im.convert("RGBA" if "transparency" in im.info else "RGB")
            if im.mode in ("RGBA", "LA", "PA"):
                im = im.convert("RGB" if im.mode == "RGBA" else "L")
            if im.mode in ("CMYK", "YCbCr", "HSV", "LAB", "1"):
                im = im.convert("RGB" if im.mode != "1" else "L")
            a = np.asarray(im)
    except ImageFileError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise ImageFileError(f"{path}: not a readable image ({e})") from e
    img = _to_float(a, path)
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[..., 0]
    if gray and img.ndim == 3:
        img = img[..., :3] @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
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
