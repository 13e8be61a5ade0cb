"""Linear inverse problems with Algorithm 2 as a web app: ``panel serve apps/inverse.py``.

The model, the image and the settings are mirrored in the URL (``?kind=super-resolution&size=32&chains=2``; the
old ``samples=`` still works), so a link reopens the view (explorer.ui.links; a drawn mask is not in it).
"""
import panel as pn

from explorer.ui.inverse_view import InverseView
from explorer.ui.links import link_view
from explorer.ui.theme import limit_torch_threads

pn.extension("mathjax", notifications=True)
limit_torch_threads()
view = InverseView()
legacy = (pn.state.session_args or {}).get("samples")
if legacy and not (pn.state.session_args or {}).get("chains"):
    view.run.chains = int(legacy[0])
link_view(view, "inverse")
view.template().servable(title="Inverse problems · Denoiser Explorer")
