"""The explorer's tools in a Jupyter notebook, offline: :func:`notebook`, one call before any tool is shown.

``pn.extension()`` and ``hv.extension("bokeh")`` load BokehJS and Panel's JavaScript from their CDNs by default,
so on a machine without internet every output stays blank; and MathJax is only bundled when ``"mathjax"`` is
in the *first* load (a later ``pn.extension("mathjax")`` only reloads Panel's models). :func:`notebook` makes
that first load, with every resource inline (in the notebook's outputs: it works air-gapped), and then sets
up HoloViews' bokeh plotting without loading BokehJS again.
Importing :mod:`explorer.ui` modules publishes nothing into the notebook
(:mod:`~explorer.ui.theme` selects HoloViews' bokeh backend without ``hv.extension``), so the order of the
imports does not matter; only this call must come before the first tool or plot is displayed.
"""
from __future__ import annotations

import weakref
from typing import Any

#: The Panel extensions the tools use: LaTeX in the explanation cards, the chunked upload of the image source.
EXTENSIONS = ("mathjax", "filedropper")


def notebook(*extensions: str, **config: Any) -> None:
    """Load everything the explorer's tools need into this notebook, inline (no network needed).

    Call it once, in an early cell, before a tool or a HoloViews plot is displayed::

        import explorer.ui
        explorer.ui.notebook()
        from explorer.ui.filters_view import FiltersView
        FiltersView()

    ``extensions`` are further Panel extensions to load (besides :data:`EXTENSIONS`); ``config`` goes to
    ``pn.extension`` (e.g. ``notifications=True``). Once per kernel: after a restart, run it again.
    """
    import holoviews as hv  # (here, so that importing explorer.ui stays cheap)
    import panel as pn

    from . import theme  # noqa: F401  (HoloViews' bokeh backend, the house settings; publishes nothing)

    hv.extension.inline = True  # HoloViews' own notebook load (display hooks, comms) stays inline too
    # First Panel, in one cell: BokehJS, MathJax and Panel's models in one inline bundle. hv.extension then
    # only registers HoloViews' display hooks and reloads Panel's models (same cell: no second BokehJS).
    pn.extension(*EXTENSIONS, *[e for e in extensions if e not in EXTENSIONS], inline=True, **config)
    hv.extension("bokeh", logo=False)
    _inline_updated_stylesheets()


def _inline_updated_stylesheets() -> None:
    """Keep a pane's stylesheets inline after its first render (installed once per kernel).

    Panel (1.9) inlines the stylesheets of a notebook output when it is first rendered, but each later
    update of a pane (a Markdown pane's new text: every status line of a running tool) sends its
    stylesheets again as links to Panel's CDN: offline each update then logs "Failed to load resource"
    and the pane loses its styles. The update's properties come from ``Reactive._get_properties``; this
    wraps it so that, while ``pn.config.inline`` is set, those links become the same files inline, one
    stylesheet model per document and file (an unchanged list is then not sent again).
    """
    from bokeh.models import ImportedStyleSheet
    from panel import config
    from panel.io.notebook import replace_inline_css
    from panel.reactive import Reactive

    original = Reactive._get_properties
    if getattr(original, "inlines_stylesheets", False):
        return
    cache: weakref.WeakKeyDictionary[Any, dict[str, Any]] = weakref.WeakKeyDictionary()

    def inline(sheet: Any, doc: Any) -> Any:
        if not isinstance(sheet, ImportedStyleSheet) or doc is None:
            return sheet
        sheets = cache.setdefault(doc, {})
        if sheet.url not in sheets:
            sheets[sheet.url] = replace_inline_css(sheet)
        return sheets[sheet.url]

    def _get_properties(self: Reactive, doc: Any) -> dict[str, Any]:
        properties = original(self, doc)
        if config.inline and "stylesheets" in properties:
            properties["stylesheets"] = [inline(s, doc) for s in properties["stylesheets"]]
        return properties

    _get_properties.inlines_stylesheets = True  # type: ignore[attr-defined]
    Reactive._get_properties = _get_properties  # type: ignore[method-assign]
