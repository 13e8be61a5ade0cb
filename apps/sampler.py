"""The coarse-to-fine sampler as a web app: ``panel serve apps/sampler.py``.

The settings are mirrored in the URL (``?beta=0.2&size=32&batch=1``), so a view can be bookmarked.
"""
import panel as pn

from explorer.ui.sampler_view import SamplerView
from explorer.ui.tasks import sync_url
from explorer.ui.theme import limit_torch_threads

pn.extension("mathjax", notifications=True)
limit_torch_threads()
view = SamplerView()
sync_url(view, ["beta", "h0", "sigma0", "sigma_L", "seed", "size", "batch"])
view.template().servable(title="Coarse-to-fine sampler · Denoiser Explorer")
