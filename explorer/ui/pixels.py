"""Pixels on a plot: which pixel a click hit, a pixel's centre, the window around it, its circle marker.

Images are drawn with bounds (0, 0, W, H) and row 0 on top (:func:`explorer.ui.plots.image_element`), so
pixel (row i, column j) covers x ∈ [j, j + 1], y ∈ [H − i − 1, H − i].
"""
from __future__ import annotations

import holoviews as hv
import numpy as np

MARKER_COLOR = "#19d219"


def plot_to_pixel_index(x: float, y: float, shape: tuple[int, int]) -> tuple[int, int]:
    """A click at plot point (x, y) on an image with bounds (0, 0, W, H), row 0 on top → pixel (row, col)."""
    h, w = int(shape[0]), int(shape[1])
    col = int(np.clip(np.floor(x), 0, w - 1))
    row = int(np.clip(np.floor(h - y), 0, h - 1))
    return row, col


def pixel_centre(pixel: tuple[int, int], shape: tuple[int, int]) -> tuple[float, float]:
    """Plot coordinates of the centre of pixel (row, col)."""
    return pixel[1] + 0.5, shape[0] - pixel[0] - 0.5


def centred_crop(a: np.ndarray, pixel: tuple[int, int], half: int) -> np.ndarray:
    """The (2·half + 1)² window of ``a`` centred on ``pixel``; outside the image is NaN."""
    h, w = a.shape
    i, j = pixel
    out = np.full((2 * half + 1, 2 * half + 1), np.nan, dtype=np.float32)
    i0, i1, j0, j1 = max(i - half, 0), min(i + half + 1, h), max(j - half, 0), min(j + half + 1, w)
    out[i0 - (i - half): i1 - (i - half), j0 - (j - half): j1 - (j - half)] = a[i0:i1, j0:j1]
    return out


def marker(pixel: tuple[int, int], shape: tuple[int, int], color: str = MARKER_COLOR) -> hv.Points:
    x, y = pixel_centre(pixel, shape)
    return hv.Points([(x, y)], kdims=["x", "y"]).opts(marker="circle", size=13, fill_alpha=0, line_color=color,
                                                      line_width=2.5, tools=[])
