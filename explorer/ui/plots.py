"""How images are drawn: HoloViews images in the house style, live bokeh panes, colour maps.

- :func:`image_element` — a bare hv.Image with pixel bounds, row 0 at the top.
- :func:`gray_image`, :func:`diverging_image` — gray in a fixed [0, 1] range, or a diverging map
  centred on 0; square pixels, no axis clutter.
- :class:`LiveImage` — the same look drawn with a bare bokeh figure whose pixels are swapped in place
  (for many updates per second).
- :func:`diverging_palette`, :func:`magnitude_palette`, :func:`to_rgb` — the RdBu_r colours and the
  sequential map of non-negative magnitudes (standard deviations, errors) as bokeh palettes, and an
  array as uint8 RGB (for PNG downloads).
- :data:`CHAIN_COLORS`, :data:`PLOT_PERIOD` — the colours of sampler chains and how often their σ_t / h_t
  plots refresh while playing (shared by the sampler and the inverse-problem tools; the predicted length
  of a run is :func:`explorer.sampling.predicted_steps`).
"""
from __future__ import annotations

from typing import Any

import holoviews as hv
import numpy as np
import panel as pn

from .theme import DIVERGING_CMAP, IMAGE_SIZE_PX

CHAIN_COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2"]
PLOT_PERIOD = 0.5  # seconds between σ_t / h_t plot refreshes while playing


# ------------------------------------------------------------------------------------------ HoloViews
def _frame(shape: tuple[int, ...], size: int) -> tuple[int, int]:
    h, w = int(shape[0]), int(shape[1])
    return size, max(8, int(round(size * h / w)))


def image_element(array: np.ndarray) -> hv.Image:
    """A bare hv.Image of an (H, W) array with pixel bounds (0, 0, W, H); row 0 at the top.

    Pixel (row i, column j) covers x ∈ [j, j + 1], y ∈ [H − i − 1, H − i] (see
    :func:`explorer.ui.mask.plot_to_pixel`).
    """
    a = np.asarray(array, dtype=np.float32)
    if a.ndim != 2:
        raise ValueError(f"expected an (H, W) image, got shape {a.shape}")
    h, w = a.shape
    return hv.Image(a, bounds=(0, 0, w, h), kdims=["x", "y"], vdims=["value"])


def gray_image(array: np.ndarray, title: str = "", size: int = IMAGE_SIZE_PX, **opts: Any) -> hv.Image:
    """A gray image in the fixed range [0, 1] (values outside are clipped by the colour map)."""
    a = np.asarray(array, dtype=np.float32)
    fw, fh = _frame(a.shape, size)
    style = dict(cmap="gray", clim=(0.0, 1.0), xaxis=None, yaxis=None, frame_width=fw, frame_height=fh,
                 data_aspect=None, title=title, toolbar=None, tools=["hover"], default_tools=[],
                 colorbar=False, show_frame=False, framewise=False, axiswise=True)
    style.update(opts)
    return image_element(a).opts(**style)


def diverging_image(array: np.ndarray, title: str = "", size: int = IMAGE_SIZE_PX, vmax: float | None = None,
                    colorbar: bool = True, **opts: Any) -> hv.Image:
    """A signed image (filter, singular vector, difference) in RdBu_r, symmetric clim ±max|v|."""
    a = np.asarray(array, dtype=np.float32)
    m = float(np.nanmax(np.abs(a))) if vmax is None else float(vmax)
    m = m if np.isfinite(m) and m > 0 else 1.0
    fw, fh = _frame(a.shape, size)
    style = dict(cmap=DIVERGING_CMAP, clim=(-m, m), xaxis=None, yaxis=None, frame_width=fw, frame_height=fh,
                 title=title, toolbar=None, tools=["hover"], default_tools=[], colorbar=colorbar,
                 show_frame=False, framewise=True, axiswise=True)
    style.update(opts)
    return image_element(a).opts(**style)


# ------------------------------------------------------------------------------------------ colours
_MAGNITUDE = np.array([(68, 1, 84), (72, 40, 120), (62, 74, 137), (49, 104, 142), (38, 130, 142), (31, 158, 137),
                       (53, 183, 121), (110, 206, 88), (181, 222, 43), (253, 231, 37)], dtype=np.float64)  # viridis anchors
_RDBU = np.array([(5, 48, 97), (33, 102, 172), (67, 147, 195), (146, 197, 222), (209, 229, 240), (247, 247, 247),
                  (253, 219, 199), (244, 165, 130), (214, 96, 77), (178, 24, 43), (103, 0, 31)], dtype=np.float64)


def to_rgb(array: np.ndarray, kind: str = "gray", vmax: float | None = None) -> np.ndarray:
    """uint8 (H, W, 3) of an image: 'gray' clipped to [0, 1], 'diverging' RdBu_r at ±max|v|, 'magnitude'
    (non-negative values) in the sequential map on [0, vmax] (default max v)."""
    a = np.asarray(array, dtype=np.float64)
    if kind == "magnitude":
        top = float(np.nanmax(a)) if vmax is None and a.size else float(vmax or 0.0)
        u = np.clip(np.nan_to_num(a) / (top if top > 0 else 1.0), 0, 1) * (len(_MAGNITUDE) - 1)
        lo = np.clip(np.floor(u).astype(int), 0, len(_MAGNITUDE) - 2)
        frac = (u - lo)[..., None]
        rgb = _MAGNITUDE[lo] * (1 - frac) + _MAGNITUDE[lo + 1] * frac
    elif kind == "diverging":
        m = np.nanmax(np.abs(a)) if a.size else 1.0
        u = (np.nan_to_num(a) / (m if m > 0 else 1.0) + 1) / 2 * (len(_RDBU) - 1)
        lo = np.clip(np.floor(u).astype(int), 0, len(_RDBU) - 2)
        frac = (u - lo)[..., None]
        rgb = _RDBU[lo] * (1 - frac) + _RDBU[lo + 1] * frac
    else:
        g = np.clip(np.nan_to_num(a), 0, 1) * 255
        rgb = np.repeat(g[..., None], 3, axis=-1)
    return np.round(rgb).astype(np.uint8)


# ------------------------------------------------------------------------------------------ live images
def _palette(anchors: np.ndarray, n: int) -> list[str]:
    at = np.linspace(0, len(anchors) - 1, n)
    channels = [np.interp(at, np.arange(len(anchors)), anchors[:, k]) for k in range(3)]
    return ["#%02x%02x%02x" % tuple(int(round(v[i])) for v in channels) for i in range(n)]


def diverging_palette(n: int = 256) -> list[str]:
    """RdBu_r (blue negative, white 0, red positive) with ``n`` colours, interpolated from ColorBrewer's RdBu11."""
    return _palette(_RDBU, n)


def magnitude_palette(n: int = 256) -> list[str]:
    """The sequential map of non-negative magnitudes (dark purple 0 → yellow max, viridis-like), ``n`` colours."""
    return _palette(_MAGNITUDE, n)


class LiveImage(pn.viewable.Viewer):
    """A gray (or diverging, or magnitude) image pane for live updates: ``update(array)`` only swaps the pixel data.

    Same look as :func:`gray_image` / :func:`diverging_image` (fixed clim [0, 1], or symmetric ±max|v|
    for ``kind="diverging"``, or [0, vmax] for ``kind="magnitude"``; square pixels, no axes), but drawn with a bare bokeh figure whose data
    source is replaced in place, so an update costs microseconds of Python instead of a HoloViews
    re-render (what a sampler showing many steps per second, or a click-to-filter, needs). A new
    shape re-frames the figure. ``show_marker`` circles a pixel and ``show_box`` outlines a square
    window around it, both in the image's pixel coordinates (row 0 at the top).
    """

    def __init__(self, shape: tuple[int, int], title: str = "", size: int = IMAGE_SIZE_PX, kind: str = "gray",
                 clim: tuple[float, float] | None = None, nan_color: str = "#f3f3f3", colorbar: bool = False,
                 value_label: str = "value", marker_color: str = "#19d219", box_color: str = "#333333", **params: Any):
        super().__init__(**params)
        from bokeh.models import ColorBar, ColumnDataSource, HoverTool, LinearColorMapper
        from bokeh.palettes import gray
        from bokeh.plotting import figure

        h, w = int(shape[0]), int(shape[1])
        fw, fh = _frame((h, w), size)
        self.shape = (h, w)
        self.size = size
        palette = {"diverging": diverging_palette(), "magnitude": magnitude_palette()}.get(kind) or gray(256)
        lo, hi = clim if clim is not None else ((-1.0, 1.0) if kind == "diverging" else (0.0, 1.0))
        self.mapper = LinearColorMapper(palette=palette, low=lo, high=hi, nan_color=nan_color)
        self.source = ColumnDataSource(dict(image=[np.full((h, w), np.nan, np.float32)]))
        fig = figure(title=title, frame_width=fw, frame_height=fh, x_range=(0, w), y_range=(0, h),
                     toolbar_location=None, tools="", match_aspect=True, min_border=2,
                     output_backend="webgl")  # webgl draws pixels unsmoothed, like HoloViews
        self._glyph = fig.image(image="image", source=self.source, x=0, y=0, dw=w, dh=h, color_mapper=self.mapper)
        fig.add_tools(HoverTool(tooltips=[(value_label, "@image{0.0000}")], renderers=[self._glyph]))
        if colorbar:
            fig.add_layout(ColorBar(color_mapper=self.mapper, width=12, padding=3, label_standoff=4,
                                    major_label_text_font_size="8pt", title=value_label,
                                    title_text_font_size="8pt", title_text_font_style="normal"), "right")
            fig.min_border_right = 92  # the colour bar and its tick labels: stays wide enough when the range changes
        # the outer size the frame needs (else a Row lays each figure out at bokeh's default 600 × 600 px)
        border = {side: getattr(fig, f"min_border_{side}") or fig.min_border or 0 for side in ("left", "right", "top", "bottom")}
        fig.width = fw + border["left"] + border["right"]
        fig.height = fh + border["top"] + border["bottom"] + 26  # + the title
        fig.axis.visible = False
        fig.grid.visible = False
        fig.outline_line_color = None
        fig.title.text_font_size = "11pt"
        self.figure = fig
        self.kind = kind
        self._marker_source = ColumnDataSource(dict(x=[], y=[]))
        self._box_source = ColumnDataSource(dict(left=[], right=[], bottom=[], top=[]))
        self._marker = fig.scatter("x", "y", source=self._marker_source, marker="circle", size=13, fill_alpha=0,
                                   line_width=2.5, line_color=marker_color).glyph
        self._box = fig.quad(left="left", right="right", bottom="bottom", top="top", source=self._box_source,
                             fill_alpha=0, line_color=box_color, line_dash="dashed", line_width=1.2).glyph
        self._pane = pn.pane.Bokeh(fig, margin=(0, 4))

    def _reframe(self, shape: tuple[int, int]) -> None:
        h, w = shape
        fw, fh = _frame(shape, self.size)
        self.figure.update(frame_width=fw, frame_height=fh)
        self.figure.x_range.update(start=0, end=w)
        self.figure.y_range.update(start=0, end=h)
        self._glyph.glyph.update(dw=w, dh=h)
        self.shape = shape

    def update(self, array: np.ndarray, vmax: float | None = None) -> None:
        """Show a new (H, W) array (row 0 at the top); ``vmax`` is the top of a magnitude map (default max)."""
        a = np.asarray(array, dtype=np.float32)
        if a.ndim != 2:
            raise ValueError(f"expected an (H, W) image, got shape {a.shape}")
        if a.shape != self.shape:
            self._reframe(a.shape)
        if self.kind == "diverging":
            m = float(np.nanmax(np.abs(a))) if a.size and not np.isnan(a).all() else 1.0
            m = m if np.isfinite(m) and m > 0 else 1.0
            self.mapper.update(low=-m, high=m)
        elif self.kind == "magnitude":
            m = float(np.nanmax(a)) if vmax is None and a.size and not np.isnan(a).all() else float(vmax or 0.0)
            self.mapper.update(low=0.0, high=m if np.isfinite(m) and m > 0 else 1.0)
        self.source.data = dict(image=[np.ascontiguousarray(a[::-1])])  # bokeh draws row 0 at the bottom

    def show_marker(self, pixel: tuple[int, int]) -> None:
        """Circle pixel (row, col)."""
        self._marker_source.data = dict(x=[pixel[1] + 0.5], y=[self.shape[0] - pixel[0] - 0.5])

    def show_box(self, pixel: tuple[int, int], half: int) -> None:
        """Outline the (2·half + 1)² window centred on pixel (row, col)."""
        i, j, h = pixel[0], pixel[1], self.shape[0]
        self._box_source.data = dict(left=[j - half], right=[j + half + 1], bottom=[h - i - 1 - half],
                                     top=[h - i + half])

    @property
    def array(self) -> np.ndarray:
        return np.asarray(self.source.data["image"][0])[::-1]

    @property
    def marker_pixel(self) -> tuple[int, int] | None:
        """The circled pixel (row, col), or None."""
        xs, ys = self._marker_source.data["x"], self._marker_source.data["y"]
        return (int(self.shape[0] - ys[0] - 0.5), int(xs[0] - 0.5)) if len(xs) else None

    def __panel__(self) -> pn.viewable.Viewable:
        return self._pane
