"""Panel tools of the Denoiser Explorer.

Every tool is a :class:`~explorer.ui.toolview.ToolView` (a :class:`panel.viewable.Viewer`) whose
state lives in ``param`` parameters, so the same object works in ``panel serve`` and in a notebook
(:func:`notebook` once, then display it: it loads every resource inline, so it works offline; importing
these modules publishes nothing into a notebook). The shared pieces, one job per module:

- :mod:`~explorer.ui.theme` — names, colours, sizes, the page template;
- :mod:`~explorer.ui.text` — Markdown/LaTeX, explanation cards, alerts and toasts, number formats;
- :mod:`~explorer.ui.plots` — HoloViews images in the house style, live bokeh images, colour maps;
- :mod:`~explorer.ui.models` — the shared model handles and the model picker;
- :mod:`~explorer.ui.sources` — the image source (built-in, synthetic, upload, kept sample);
- :mod:`~explorer.ui.controls` — the Step / Play / Pause / Reset controls;
- :mod:`~explorer.ui.tasks` — the background runner (latest request wins, progress, stop);
- :mod:`~explorer.ui.export` — PNG / NPZ downloads;
- :mod:`~explorer.ui.toolview` — the sidebar-beside-main layout of every tool;
- :mod:`~explorer.ui.notebook` — :func:`notebook`, the one call a Jupyter notebook needs.

A view never imports another view. Tools are imported lazily, e.g.
``from explorer.ui.sampler_view import SamplerView``, so importing this package stays cheap.
"""
from .notebook import notebook

__all__ = ["notebook", "controls", "export", "mask", "models", "plots", "sources", "tasks", "text", "theme", "toolview",
           "sampler_view", "inverse_view"]
