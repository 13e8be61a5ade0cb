"""Built-in photographs: the images scikit-image ships inside its package, as gray float32 in [0, 1].

Only files that live in the installed ``skimage/data`` folder are offered, read directly from that
folder with :func:`explorer.data.files.load_image`, so nothing is ever fetched from the network
(scikit-image downloads its larger images with pooch; those are not listed here). Colour images are
converted with ITU-R 601 luma, Y = 0.299 R + 0.587 G + 0.114 B.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import skimage.data
from PIL import Image

from .files import load_image

SKIMAGE_DATA_DIR = Path(skimage.data.__file__).resolve().parent

# name -> file inside skimage/data; real photographs and textures (no drawings, phantoms, masks).
_FILES = {
    "camera": "camera.png",
    "astronaut": "astronaut.png",
    "coffee": "coffee.png",
    "chelsea": "chelsea.png",
    "moon": "moon.png",
    "page": "page.png",
    "text": "text.png",
    "coins": "coins.png",
    "rocket": "rocket.jpg",
    "brick": "brick.png",
    "grass": "grass.png",
    "gravel": "gravel.png",
    "immunohistochemistry": "ihc.png",
    "hubble_deep_field": "hubble_deep_field.jpg",
    "retina": "retina.jpg",
    "motorcycle": "motorcycle_left.png",
    "cell": "cell.png",
}

BUILTIN_IMAGES: tuple[str, ...] = tuple(n for n, f in _FILES.items() if (SKIMAGE_DATA_DIR / f).is_file())


def builtin_path(name: str) -> Path:
    """File of the built-in image ``name`` (always inside the installed scikit-image package)."""
    if name not in BUILTIN_IMAGES:
        raise ValueError(f"unknown built-in image {name!r}; valid names: {', '.join(BUILTIN_IMAGES)}")
    return SKIMAGE_DATA_DIR / _FILES[name]


@lru_cache(maxsize=64)
def _load(name: str, size: int | None) -> np.ndarray:
    img = load_image(builtin_path(name), gray=True)
    return img if size is None else square_resize(img, size)


def _check_size(size: object) -> int:
    if not isinstance(size, (int, np.integer)) or isinstance(size, bool) or size < 1:
        raise ValueError(f"size must be a positive integer, got {size!r}")
    return int(size)


def square_resize(img: np.ndarray, size: int) -> np.ndarray:
    """Centre crop of the largest square, then resized to ``size`` × ``size``.

    With s = min(H, W) the crop is ``img[(H-s)//2 : (H-s)//2 + s, (W-s)//2 : (W-s)//2 + s]``. When
    ``size <= s`` it is area-downsampled (PIL ``BOX``: each output pixel is the mean of the input
    pixels its footprint covers); when ``size > s`` it is upsampled with PIL ``BICUBIC`` and clipped
    to [0, 1].
    """
    size = _check_size(size)
    if img.ndim != 2:
        raise ValueError(f"expected a 2-D gray image, got shape {img.shape}")
    h, w = img.shape
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    crop = np.ascontiguousarray(img[top : top + s, left : left + s], dtype=np.float32)
    if size == s:
        return crop
    method = Image.Resampling.BOX if size < s else Image.Resampling.BICUBIC
    out = np.asarray(Image.fromarray(crop, mode="F").resize((size, size), method), dtype=np.float32)
    return np.clip(out, 0.0, 1.0)


def builtin_image(name: str, size: int | None = None) -> np.ndarray:
    """The built-in photograph ``name`` as an (H, W) float32 gray image in [0, 1].

    With ``size`` the result is :func:`square_resize` (centre square crop, then area-downsampled) and
    has shape (size, size). Results are cached; each call returns a fresh copy.
    """
    return _load(name, None if size is None else _check_size(size)).copy()


def builtin_images(size: int | None = None) -> dict[str, np.ndarray]:
    """Every built-in photograph, ``{name: image}`` in the order of :data:`BUILTIN_IMAGES`."""
    return {name: builtin_image(name, size) for name in BUILTIN_IMAGES}
