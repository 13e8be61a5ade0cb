"""The geometry-adaptive harmonic basis (SVD of the Jacobian) as a web app: ``panel serve apps/gahb.py``."""
import panel as pn

from explorer.ui.common import limit_torch_threads
from explorer.ui.gahb_view import GAHBView

pn.extension("mathjax", notifications=True)
limit_torch_threads()
GAHBView().template().servable(title="GAHB · Denoiser Explorer")
