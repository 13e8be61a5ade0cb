"""The coarse-to-fine sampler as a web app: ``panel serve apps/sampler.py``.

The settings are mirrored in the URL (``?beta=0.2&size=32&chains=1``; the old ``batch=`` still works), so a
view can be bookmarked.
"""
import panel as pn

from explorer.ui.sampler_view import SamplerView
from explorer.ui.tasks import sync_url
from explorer.ui.theme import limit_torch_threads

pn.extension("mathjax", notifications=True)
limit_torch_threads()
view = SamplerView()
legacy = (pn.state.session_args or {}).get("batch")
if legacy and not (pn.state.session_args or {}).get("chains"):
    view.run.chains = int(legacy[0])
sync_url(view.run, ["beta", "h0", "sigma0", "sigma_L", "seed", "size", "chains"])
view.template().servable(title="Coarse-to-fine sampler · Denoiser Explorer")
