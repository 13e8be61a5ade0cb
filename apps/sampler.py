"""The coarse-to-fine sampler as a web app: ``panel serve apps/sampler.py``.

The model and the settings are mirrored in the URL (``?beta=0.2&seed=4&size=32&chains=1``; the old ``batch=``
still works), so a link reopens the view (explorer.ui.links).
"""
import panel as pn

from explorer.ui.links import link_view
from explorer.ui.sampler_view import SamplerView
from explorer.ui.theme import limit_torch_threads

pn.extension("mathjax", notifications=True)
limit_torch_threads()
view = SamplerView()
with view.batched_changes():  # the old batch= and the link's settings set up one sampler, not one each
    legacy = (pn.state.session_args or {}).get("batch")
    if legacy and not (pn.state.session_args or {}).get("chains"):
        view.run.chains = int(legacy[0])
    link_view(view, "sampler")
view.template().servable(title="Coarse-to-fine sampler · Denoiser Explorer")
