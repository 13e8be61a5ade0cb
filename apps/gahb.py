"""The geometry-adaptive harmonic basis (SVD of the Jacobian) as a web app: ``panel serve apps/gahb.py``."""
import panel as pn

from explorer.ui.gahb_view import GAHBView
from explorer.ui.links import link_view
from explorer.ui.theme import limit_torch_threads

pn.extension("mathjax", notifications=True)
limit_torch_threads()
view = GAHBView()
link_view(view, "gahb")  # the settings live in the URL: a link reopens this view
view.template().servable(title="GAHB · Denoiser Explorer")
