"""The whole Denoiser Explorer as one multi-page app: ``panel serve apps/`` (this page at /main).

``?page=sampler`` (or inverse, filters, gahb, energy, toy2d, generalization, report, decomposition) opens a tool directly;
the open tool's settings follow in the URL under its name (``?page=filters&filters.sigma=0.2&filters.row=5``), so a
link reopens the same view (explorer.ui.links).
"""
import panel as pn

from explorer.ui.explorer_app import ExplorerApp
from explorer.ui.links import link_view
from explorer.ui.theme import limit_torch_threads

pn.extension("mathjax", "filedropper", notifications=True)  # filedropper: the upload widget (explorer.ui.sources.UploadBox)
limit_torch_threads()
app = ExplorerApp()
link_view(app, "main")
app.template().servable(title="Denoiser Explorer")
