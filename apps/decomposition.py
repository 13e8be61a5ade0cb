"""Denoising as a multiscale decomposition, x = fⁿ(x) + Σ r_k, as a web app: ``panel serve apps/decomposition.py``."""
import panel as pn

from explorer.ui.decomposition_view import DecompositionView
from explorer.ui.theme import limit_torch_threads

pn.extension("mathjax", notifications=True)
limit_torch_threads()
DecompositionView().template().servable(title="Multiscale decomposition · Denoiser Explorer")
