"""Adaptive filters (Jacobian rows) as a web app: ``panel serve apps/filters.py``."""
import panel as pn

from explorer.ui.filters_view import FiltersView
from explorer.ui.links import link_view
from explorer.ui.theme import limit_torch_threads

pn.extension("mathjax", notifications=True)
limit_torch_threads()
view = FiltersView()
link_view(view, "filters")  # the settings live in the URL: a link reopens this view
view.template().servable(title="Adaptive filters · Denoiser Explorer")
