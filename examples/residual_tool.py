"""A complete new tool in under 40 lines: the noise a denoiser removes, r(y) = y − x̂(y)."""
import numpy as np
import panel as pn
import param

from explorer.ui.controls import bounded_input
from explorer.ui.models import ModelPicker
from explorer.ui.plots import diverging_image, gray_image
from explorer.ui.sources import ImageSource
from explorer.ui.toolview import ToolView


class ResidualView(ToolView):
    title = "Residual"
    sigma = param.Number(default=0.1, bounds=(0.0, 1.0), label="σ", doc="noise level, [0, 1] units")
    seed = param.Integer(default=0, bounds=(0, 10**6), doc="seed of the noise draw")

    def __init__(self, **params):
        super().__init__(**params)
        self.source, self.picker = ImageSource(), ModelPicker()

    def figures(self, sigma: float, seed: int, x: np.ndarray, model: str) -> pn.Row:
        y = x + sigma * np.random.default_rng(seed).standard_normal(x.shape).astype(np.float32)
        x_hat = self.picker.handle.denoise(y, sigma)
        return pn.Row(gray_image(y, "noisy y"), gray_image(x_hat, "denoised x̂(y)"),
                      diverging_image(y - x_hat, "residual y − x̂(y)"))

    def sidebar(self):
        return [self.picker, self.source, bounded_input(self, "sigma"), bounded_input(self, "seed")]

    def main(self):
        return pn.bind(self.figures, self.param.sigma, self.param.seed, self.source.param.image,
                       self.picker.param.model)


if __name__.startswith("bokeh"):  # panel serve examples/residual_tool.py
    pn.extension("mathjax", notifications=True)
    ResidualView().template().servable()
