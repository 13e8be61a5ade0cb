"""A line plot for live updates: ``update(key, x, y)`` only swaps one line's data.

The sampler and inverse-problem tools redraw σ_t and h_t while a run plays. As a HoloViews DynamicMap
each refresh rebuilt the overlay and its bokeh models on the server's event loop (with 15 sessions playing,
over half of the time the loop held Python's lock went to these refreshes, and every click waited behind
them). Here the figure, its axes, legend and fixed lines are built once; a refresh replaces the data of a
line's ``ColumnDataSource`` and moves the x-range's end, which costs microseconds of Python and one small
patch to the browser.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import panel as pn


class LiveCurves(pn.viewable.Viewer):
    """A bokeh figure of fixed lines (:meth:`add_line`), a horizontal reference (:meth:`add_level`) and
    live lines (:meth:`add_live`, then :meth:`update`), with labelled axes, a legend, a hover readout and
    (``toolbar``) pan / zoom / save tools.

    ``y_range`` is fixed (a log axis never flips or rescales while a run plays); :meth:`set_x_range`
    widens the iteration axis as the run grows.
    """

    def __init__(self, title: str, xlabel: str, ylabel: str, y_range: tuple[float, float],
                 x_range: tuple[float, float] = (0.0, 1.0), log_y: bool = False, min_height: int = 300,
                 legend_location: str = "top_right", hover: bool = True, toolbar: bool = True, **params: Any):
        super().__init__(**params)
        from bokeh.models import HoverTool, Range1d
        from bokeh.plotting import figure

        fig = figure(title=title, x_axis_label=xlabel, y_axis_label=ylabel, y_axis_type="log" if log_y else "linear",
                     x_range=Range1d(*x_range), y_range=Range1d(*y_range), tools="pan,wheel_zoom,box_zoom,reset,save",
                     toolbar_location="right" if toolbar else None, sizing_mode="stretch_width", min_height=min_height, height=min_height)
        fig.title.text_font_size = "11pt"
        self._hover = HoverTool(tooltips=[(xlabel.split(" (")[0], "@x{0}"), (ylabel.split(" (")[0], "@y{0.0000}")],
                                renderers=[]) if hover else None
        if self._hover is not None:
            fig.add_tools(self._hover)
        self.figure = fig
        self._legend_location = legend_location
        self._sources: dict[str, Any] = {}
        self._pane = pn.pane.Bokeh(fig, sizing_mode="stretch_width", min_height=min_height)

    def _line(self, x: np.ndarray, y: np.ndarray, label: str, color: str, width: float, dash: str, alpha: float):
        from bokeh.models import ColumnDataSource

        source = ColumnDataSource(dict(x=np.asarray(x, dtype=float), y=np.asarray(y, dtype=float)))
        kw = dict(legend_label=label) if label else {}
        renderer = self.figure.line("x", "y", source=source, line_color=color, line_width=width, line_dash=dash,
                                    line_alpha=alpha, **kw)
        if label:
            self.figure.legend.location = self._legend_location
            self.figure.legend.label_text_font_size = "9pt"
            self.figure.legend.background_fill_alpha = 0.7
        if self._hover is not None:
            self._hover.renderers = [*self._hover.renderers, renderer]
        return source

    def add_line(self, x: np.ndarray, y: np.ndarray, label: str = "", color: str = "black", width: float = 1.5,
                 dash: str = "solid", alpha: float = 1.0) -> None:
        """A line that stays as drawn (an earlier run, a designed schedule)."""
        self._line(x, y, label, color, width, dash, alpha)

    def add_level(self, y: float, label: str, color: str = "#888", dash: str = "dotted", width: float = 1.0) -> None:
        """A horizontal reference at ``y`` across any x-range, with its legend entry."""
        from bokeh.models import Span

        self.figure.add_layout(Span(location=float(y), dimension="width", line_color=color, line_dash=dash,
                                    line_width=width))
        self.figure.line([np.nan], [np.nan], line_color=color, line_dash=dash, line_width=width, legend_label=label)

    def add_live(self, key: str, label: str, color: str, width: float = 2.2) -> None:
        """A line whose data :meth:`update` replaces (empty until then)."""
        if key in self._sources:
            raise ValueError(f"a live line named {key!r} exists already")
        self._sources[key] = self._line(np.zeros(0), np.zeros(0), label, color, width, "solid", 1.0)

    def update(self, key: str, x: np.ndarray, y: np.ndarray) -> None:
        """Replace the data of live line ``key`` (NaN in ``y`` leaves a gap: a chain that stopped)."""
        x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
        if x.shape != y.shape or x.ndim != 1:
            raise ValueError(f"x and y must be 1-d and of one length, got {x.shape} and {y.shape}")
        self._sources[key].data = dict(x=x, y=y)

    def set_x_range(self, start: float, end: float) -> None:
        """Show iterations ``start`` to ``end`` (the run grew past its prediction)."""
        if (self.figure.x_range.start, self.figure.x_range.end) != (start, end):
            self.figure.x_range.update(start=float(start), end=float(end))

    def data(self, key: str) -> tuple[np.ndarray, np.ndarray]:
        """What live line ``key`` shows now: (x, y)."""
        d = self._sources[key].data
        return np.asarray(d["x"]), np.asarray(d["y"])

    @property
    def x_range(self) -> tuple[float, float]:
        return float(self.figure.x_range.start), float(self.figure.x_range.end)

    def __panel__(self) -> pn.viewable.Viewable:
        return self._pane
