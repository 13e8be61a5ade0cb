"""The property report of any denoiser (issue #20) as a web app: ``panel serve apps/report.py``."""
import panel as pn

from explorer.ui.report_view import ReportView
from explorer.ui.links import link_view
from explorer.ui.theme import limit_torch_threads

pn.extension("mathjax", notifications=True)
limit_torch_threads()
view = ReportView()
link_view(view, "report")  # the settings live in the URL: a link reopens this view
view.template().servable(title="Property report · Denoiser Explorer")
