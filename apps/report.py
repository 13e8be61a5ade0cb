"""The property report of any denoiser (issue #20) as a web app: ``panel serve apps/report.py``."""
import panel as pn

from explorer.ui.report_view import ReportView
from explorer.ui.theme import limit_torch_threads

pn.extension("mathjax", notifications=True)
limit_torch_threads()
ReportView().template().servable(title="Property report · Denoiser Explorer")
