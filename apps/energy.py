"""Energies −log p(x) of a data set under an energy model, as a web app: ``panel serve apps/energy.py``."""
import panel as pn

from explorer.ui.energy_view import EnergyView
from explorer.ui.links import link_view
from explorer.ui.theme import limit_torch_threads

pn.extension("mathjax", "filedropper", notifications=True)
limit_torch_threads()
view = EnergyView()
link_view(view, "energy")  # the settings live in the URL: a link reopens this view
view.template().servable(title="Energies · Denoiser Explorer")
