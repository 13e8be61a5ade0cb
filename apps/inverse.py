"""Linear inverse problems with Algorithm 2 as a web app: ``panel serve apps/inverse.py``.

The settings are mirrored in the URL (``?kind=super-resolution&size=32&chains=2``; the old ``samples=``
still works).
"""
import panel as pn

from explorer.ui.inverse_view import InverseView
from explorer.ui.tasks import sync_url
from explorer.ui.theme import limit_torch_threads

pn.extension("mathjax", notifications=True)
limit_torch_threads()
view = InverseView()
legacy = (pn.state.session_args or {}).get("samples")
if legacy and not (pn.state.session_args or {}).get("chains"):
    view.run.chains = int(legacy[0])
sync_url(view.source, ["size", "builtin"])
sync_url(view.run, ["kind", "fraction", "factor", "beta", "h0", "sigma_L", "chains", "seed"])
view.template().servable(title="Inverse problems · Denoiser Explorer")
