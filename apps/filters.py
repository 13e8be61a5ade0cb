"""Adaptive filters (Jacobian rows) as a web app: ``panel serve apps/filters.py``."""
import panel as pn

from explorer.ui.filters_view import FiltersView
from explorer.ui.theme import limit_torch_threads

pn.extension("mathjax", notifications=True)
limit_torch_threads()
FiltersView().template().servable(title="Adaptive filters · Denoiser Explorer")
