"""Denoising and sampling in 2-D (the teaching picture) as a web app: ``panel serve apps/toy2d.py``."""
import panel as pn

from explorer.ui.theme import limit_torch_threads
from explorer.ui.toy2d_view import Toy2DView

pn.extension("mathjax", notifications=True)
limit_torch_threads()
Toy2DView().template().servable(title="Toy 2-D · Denoiser Explorer")
