"""Panel tools of the Denoiser Explorer.

Every tool is a :class:`panel.viewable.Viewer` whose state lives in ``param`` parameters, so the same
object works in ``panel serve`` and in a notebook (``pn.extension()`` and then display it). The
shared pieces (template, image plots, model picker, image source, run controls, downloads and the
background worker) live in :mod:`explorer.ui.common`. Tools are imported lazily, e.g.
``from explorer.ui.sampler_view import SamplerView``, so importing this package stays cheap.
"""

__all__ = ["common", "mask", "sampler_view", "inverse_view"]
