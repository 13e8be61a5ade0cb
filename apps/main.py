"""The whole Denoiser Explorer as one multi-page app: ``panel serve apps/`` (this page at /main).

``?page=sampler`` (or inverse, filters, gahb, energy, toy2d, generalization, report, decomposition) opens a tool directly.
"""
import panel as pn

from explorer.ui.explorer_app import ExplorerApp
from explorer.ui.tasks import sync_url
from explorer.ui.theme import limit_torch_threads

pn.extension("mathjax", "filedropper", notifications=True)  # filedropper: the upload widget (explorer.ui.sources.UploadBox)
limit_torch_threads()
app = ExplorerApp()
sync_url(app, ["page"])
app.template().servable(title="Denoiser Explorer")
