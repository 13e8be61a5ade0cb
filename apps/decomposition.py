"""Denoising as a multiscale decomposition, x = fⁿ(x) + Σ r_k, as a web app: ``panel serve apps/decomposition.py``."""
import panel as pn

from explorer.ui.decomposition_view import DecompositionView
from explorer.ui.links import link_view
from explorer.ui.theme import limit_torch_threads

pn.extension("mathjax", notifications=True)
limit_torch_threads()
view = DecompositionView()
link_view(view, "decomposition")  # the settings live in the URL: a link reopens this view
view.template().servable(title="Multiscale decomposition · Denoiser Explorer")
