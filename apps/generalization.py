"""Memorization vs generalization (Kadkhodaie et al., ICLR 2024) as a web app: ``panel serve apps/generalization.py``."""
import panel as pn

from explorer.ui.generalization_view import GeneralizationView
from explorer.ui.links import link_view
from explorer.ui.theme import limit_torch_threads

pn.extension("mathjax", notifications=True)
limit_torch_threads()
view = GeneralizationView()
link_view(view, "generalization")  # the settings live in the URL: a link reopens this view
view.template().servable(title="Generalization · Denoiser Explorer")
