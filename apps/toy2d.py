"""Denoising and sampling in 2-D (the teaching picture) as a web app: ``panel serve apps/toy2d.py``."""
import panel as pn

from explorer.ui.links import link_view
from explorer.ui.theme import limit_torch_threads
from explorer.ui.toy2d_view import Toy2DView

pn.extension("mathjax", notifications=True)
limit_torch_threads()
view = Toy2DView()
link_view(view, "toy2d")  # the settings live in the URL: a link reopens this view
view.template().servable(title="Toy 2-D · Denoiser Explorer")
