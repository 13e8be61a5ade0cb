"""The sparse semantic representation inside a denoiser, and sampling guided by it, as a web app:
``panel serve apps/representation.py``."""
import panel as pn

from explorer.ui.links import link_view
from explorer.ui.representation_view import RepresentationView
from explorer.ui.theme import limit_torch_threads

pn.extension("mathjax", notifications=True)
limit_torch_threads()
view = RepresentationView()
link_view(view, "representation")  # the settings live in the URL: a link reopens this view
view.template().servable(title="Semantic representation · Denoiser Explorer")
