"""Energies −log p(x) of a data set under an energy model, as a web app: ``panel serve apps/energy.py``."""
import panel as pn

from explorer.ui.common import limit_torch_threads
from explorer.ui.energy_view import EnergyView

pn.extension("mathjax", notifications=True)
limit_torch_threads()
EnergyView().template().servable(title="Energies · Denoiser Explorer")
