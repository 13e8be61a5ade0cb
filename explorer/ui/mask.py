"""Drawing an inpainting mask: pure functions from strokes and rectangles to boolean pixel masks.

Conventions. An (H, W) image is shown by :func:`explorer.ui.plots.image_element` with bounds
(0, 0, W, H) and row 0 at the top, so a plot point (x, y) is the continuous pixel position
(column, row) = (x, H − y) (:func:`plot_to_pixel`); pixel (i, j) occupies [j, j + 1] × [i, i + 1]
and its centre is (j + ½, i + ½).

The user paints *holes* (pixels that are not observed). The :class:`~explorer.measurements.Inpainting`
operator takes the complementary mask ``observed = ~holes`` (:func:`observed_mask`).

- :func:`stroke_mask`: the pixels whose centre lies within ``radius`` pixels of a polyline (a
  brush stroke; a single point is a disc).
- :func:`rect_mask`: the pixels whose centre lies inside an axis-aligned rectangle.
- :func:`apply_region`: paint (add to the holes) or erase (remove from the holes).
- :func:`replay`: the holes produced by a list of drawing operations, in order.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

PAINT, ERASE = "paint", "erase"


def plot_to_pixel(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray,
                  height: int) -> tuple[np.ndarray, np.ndarray]:
    """Plot coordinates (bounds (0, 0, W, H), row 0 on top) → continuous (column, row) positions."""
    return np.asarray(x, dtype=np.float64), float(height) - np.asarray(y, dtype=np.float64)


def _check_shape(shape: Sequence[int]) -> tuple[int, int]:
    if len(shape) != 2 or any(int(s) != s or s < 1 for s in shape):
        raise ValueError(f"mask shape must be (H, W) positive integers, got {tuple(shape)!r}")
    return int(shape[0]), int(shape[1])


def stroke_mask(shape: Sequence[int], cols: Sequence[float], rows: Sequence[float], radius: float) -> np.ndarray:
    """Boolean (H, W): pixels whose centre is within ``radius`` of the polyline through (cols, rows).

    Positions are continuous pixel coordinates (column, row). Non-finite points are dropped; an empty
    stroke gives an empty mask. ``radius`` ≥ 0 (in pixels; radius 0.5 marks every pixel the
    line passes through the centre of, and the pixel under a single click).
    """
    h, w = _check_shape(shape)
    if not np.isfinite(radius) or radius < 0:
        raise ValueError(f"brush radius must be a finite number >= 0, got {radius!r}")
    c = np.asarray(cols, dtype=np.float64).ravel()
    r = np.asarray(rows, dtype=np.float64).ravel()
    if c.shape != r.shape:
        raise ValueError(f"stroke has {c.size} columns but {r.size} rows")
    keep = np.isfinite(c) & np.isfinite(r)
    c, r = c[keep], r[keep]
    out = np.zeros((h, w), dtype=bool)
    if c.size == 0:
        return out
    pc, pr = np.meshgrid(np.arange(w) + 0.5, np.arange(h) + 0.5)  # pixel centres (col, row)
    r2 = radius * radius + 1e-9
    segments = [(c[0], r[0], c[0], r[0])] if c.size == 1 else zip(c[:-1], r[:-1], c[1:], r[1:])
    for c0, r0, c1, r1 in segments:
        # only look at the bounding box of the segment grown by the radius
        j0 = max(int(np.floor(min(c0, c1) - radius - 0.5)), 0)
        j1 = min(int(np.ceil(max(c0, c1) + radius + 0.5)), w)
        i0 = max(int(np.floor(min(r0, r1) - radius - 0.5)), 0)
        i1 = min(int(np.ceil(max(r0, r1) + radius + 0.5)), h)
        if j0 >= j1 or i0 >= i1:
            continue
        qc, qr = pc[i0:i1, j0:j1], pr[i0:i1, j0:j1]
        dc, dr = c1 - c0, r1 - r0
        length2 = dc * dc + dr * dr
        t = 0.0 if length2 == 0 else np.clip(((qc - c0) * dc + (qr - r0) * dr) / length2, 0.0, 1.0)
        d2 = (qc - (c0 + t * dc)) ** 2 + (qr - (r0 + t * dr)) ** 2
        out[i0:i1, j0:j1] |= d2 <= r2
    return out


def rect_mask(shape: Sequence[int], col0: float, row0: float, col1: float, row1: float) -> np.ndarray:
    """Boolean (H, W): pixels whose centre lies in the rectangle with corners (col0, row0), (col1, row1)."""
    h, w = _check_shape(shape)
    out = np.zeros((h, w), dtype=bool)
    vals = np.array([col0, row0, col1, row1], dtype=np.float64)
    if not np.isfinite(vals).all():
        return out
    ca, cb = sorted((col0, col1))
    ra, rb = sorted((row0, row1))
    cols = np.arange(w) + 0.5
    rows = np.arange(h) + 0.5
    out[np.ix_((rows >= ra) & (rows <= rb), (cols >= ca) & (cols <= cb))] = True
    return out


def apply_region(holes: np.ndarray, region: np.ndarray, mode: str = PAINT) -> np.ndarray:
    """Paint ``region`` into the holes (mode 'paint') or erase it from them (mode 'erase'); a new array."""
    if mode == PAINT:
        return holes | region
    if mode == ERASE:
        return holes & ~region
    raise ValueError(f"mode must be {PAINT!r} or {ERASE!r}, got {mode!r}")


@dataclass
class Stroke:
    """A freehand brush stroke in continuous pixel coordinates."""

    cols: list[float]
    rows: list[float]
    radius: float
    mode: str = PAINT

    def region(self, shape: Sequence[int]) -> np.ndarray:
        return stroke_mask(shape, self.cols, self.rows, self.radius)


@dataclass
class Rect:
    """A rectangle in continuous pixel coordinates."""

    col0: float
    row0: float
    col1: float
    row1: float
    mode: str = PAINT

    def region(self, shape: Sequence[int]) -> np.ndarray:
        return rect_mask(shape, self.col0, self.row0, self.col1, self.row1)


@dataclass
class MaskDrawing:
    """The holes of an (H, W) image: a starting mask plus drawing operations, replayable and invertible."""

    shape: tuple[int, int]
    base: np.ndarray | None = None
    ops: list[Stroke | Rect] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.shape = _check_shape(self.shape)
        if self.base is None:
            self.base = np.zeros(self.shape, dtype=bool)
        self.base = np.asarray(self.base, dtype=bool)
        if self.base.shape != self.shape:
            raise ValueError(f"base mask has shape {self.base.shape}, expected {self.shape}")
        self._holes = replay(self.shape, self.ops, self.base)

    @property
    def holes(self) -> np.ndarray:
        """Boolean (H, W), True where a pixel is hidden (not observed)."""
        return self._holes.copy()

    @property
    def observed(self) -> np.ndarray:
        return ~self._holes

    def add(self, op: Stroke | Rect) -> np.ndarray:
        self.ops.append(op)
        self._holes = apply_region(self._holes, op.region(self.shape), op.mode)
        return self.holes

    def clear(self) -> np.ndarray:
        self.base = np.zeros(self.shape, dtype=bool)
        self.ops = []
        self._holes = self.base.copy()
        return self.holes

    def invert(self) -> np.ndarray:
        self.base = ~self._holes
        self.ops = []
        self._holes = self.base.copy()
        return self.holes

    def set(self, holes: np.ndarray) -> np.ndarray:
        holes = np.asarray(holes, dtype=bool)
        if holes.shape != self.shape:
            raise ValueError(f"mask has shape {holes.shape}, expected {self.shape}")
        self.base, self.ops, self._holes = holes.copy(), [], holes.copy()
        return self.holes


def replay(shape: Sequence[int], ops: Iterable[Stroke | Rect], base: np.ndarray | None = None) -> np.ndarray:
    """The holes after applying ``ops`` in order to ``base`` (default: no holes)."""
    shape = _check_shape(shape)
    holes = np.zeros(shape, dtype=bool) if base is None else np.asarray(base, dtype=bool).copy()
    for op in ops:
        holes = apply_region(holes, op.region(shape), op.mode)
    return holes


def observed_mask(holes: np.ndarray) -> np.ndarray:
    """The Inpainting operator's mask: True where observed (= not a hole)."""
    return ~np.asarray(holes, dtype=bool)


def preset_mask(shape: Sequence[int], kind: str) -> np.ndarray:
    """Holes of a ready-made mask: 'centre square' (the middle quarter of the area), 'stripes', 'none'."""
    h, w = _check_shape(shape)
    holes = np.zeros((h, w), dtype=bool)
    if kind == "centre square":
        holes[h // 4: h - h // 4, w // 4: w - w // 4] = True
    elif kind == "stripes":
        period = max(h // 8, 2)
        holes[(np.arange(h) // (period // 2 or 1)) % 2 == 1, :] = True
    elif kind != "none":
        raise ValueError(f"unknown preset mask {kind!r}")
    return holes
