"""The posterior standard deviation of a denoiser beside its actual error (the filters tool's uncertainty row).

For a least-squares denoiser Cov[x | y] = σ² ∂x̂/∂y (:mod:`explorer.posterior`), so the map
√(σ² A_ii) is what the denoiser "expects" its error to be at each pixel; where the clean image is
known the actual error |x̂ − x| is shown beside it in the same colour scale, with the calibration: the
fraction of pixels whose error is within 1 and 2 posterior standard deviations (0.683 and 0.954 for a
Gaussian posterior). :func:`uncertainty` computes these numbers; :class:`UncertaintyRow` draws them.
"""
from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import panel as pn

from explorer.posterior import check_against_error, posterior_std

from .plots import LiveImage
from .text import fmt_number

UNCERTAINTY_TEXT = r"""
**Posterior uncertainty.** For a least-squares denoiser the Jacobian is the posterior covariance up to the noise
variance, \\(\mathrm{Cov}[x \mid y] = \sigma^2 \partial\hat x/\partial y\\) (the second-order Miyasawa/Tweedie
identity), so \\(\sqrt{\sigma^2 A_{ii}}\\) is the error the denoiser expects at pixel \\(i\\). Its diagonal is estimated
matrix-free by coloured probing with random signs (period 4, 4 sign draws: 64 Jacobian-vector products). Beside it,
in the same colour scale, the actual error \\(|\hat x - x|\\); *within 1σ / 2σ* is the fraction of pixels whose error
is at most 1 / 2 posterior standard deviations (0.683 / 0.954 for a calibrated Gaussian posterior). The map is only
meaningful for a least-squares denoiser; a classical filter's Jacobian is not a covariance.
"""


def uncertainty(handle: Any, noisy: np.ndarray, sigma: float, sigma_arg: float | None, denoised: np.ndarray,
                clean: np.ndarray | None) -> dict[str, Any]:
    """std = √(σ² diag A) at ``noisy`` (σ the true noise level; ``sigma_arg`` is what the denoiser is told, as
    for its filters), the actual error |x̂ − x| and the calibration
    {1: fraction within 1 std, 2: within 2 std}, as (H, W) arrays and numbers."""
    ps = posterior_std(handle, noisy, sigma, told=sigma_arg)  # the Jacobian the filters are rows of
    std = ps.std.numpy().reshape(np.shape(noisy)).astype(np.float32)
    out: dict[str, Any] = dict(std=std, sigma=sigma, method=ps.diagonal.method,
                               negative=float((ps.diagonal.diagonal < 0).float().mean()),
                               median_std=float(np.median(std)), error=None, calibration=None, rmse=None)
    if clean is not None:
        check = check_against_error(std, denoised, clean)
        out.update(error=check.error, calibration=check.calibration, rmse=check.rmse, predicted_rmse=check.predicted_rmse)
    return out


class UncertaintyRow:
    """Two small magnitude images (posterior std, actual error) sharing one colour scale, and their numbers."""

    def __init__(self, shape: tuple[int, int], size: int = 120):
        self.std = LiveImage(shape, "posterior std √(σ²Aᵢᵢ)", size=size, kind="magnitude", value_label="std")
        self.error = LiveImage(shape, "actual error |x̂ − x|", size=size, kind="magnitude", value_label="|error|")
        for image in (self.std, self.error):
            image.figure.title.text_font_size = "8.5pt"  # the titles fit the small frames
        self.text = pn.pane.Markdown("", css_classes=["explorer-number"], margin=(0, 6), width=255)
        self.layout = pn.Column(pn.Row(self.std, self.error, margin=0), self.text, margin=0)

    def show(self, u: dict[str, Any]) -> None:
        """Draw one :func:`uncertainty` result; both maps use [0, the 99th percentile of either]."""
        arrays = [u["std"]] + ([u["error"]] if u["error"] is not None else [])
        top = float(np.percentile(np.concatenate([a.ravel() for a in arrays]), 99)) or 1.0
        self.std.update(u["std"], vmax=top)
        if u["error"] is not None:
            self.error.update(u["error"], vmax=top)
        self.text.object = self.numbers(u, top)

    @property
    def shown(self) -> SimpleNamespace:
        """What is on screen: ``std`` and ``error`` (the drawn arrays) and ``text``."""
        return SimpleNamespace(std=self.std.array, error=self.error.array, text=self.text.object)

    def show_message(self, text: str) -> None:
        self.text.object = text

    @staticmethod
    def numbers(u: dict[str, Any], top: float) -> str:
        lines = [f"colour scale 0 – {fmt_number(top)} ([0,1] units) · median posterior std = {fmt_number(u['median_std'])}"]
        if u["calibration"] is not None:
            c = u["calibration"]
            lines.append(f"RMS error = {fmt_number(u['rmse'])} · predicted √mean(σ²Aᵢᵢ) = {fmt_number(u['predicted_rmse'])}")
            lines.append(f"error within 1σ: {c[1.0]:.3f} (Gaussian 0.683) · within 2σ: {c[2.0]:.3f} (0.954)")
        if u["negative"] > 0:
            lines.append(f"{100 * u['negative']:.1f} % of Aᵢᵢ < 0 (clipped to 0: A is not exactly a covariance)")
        return "<br>".join(lines)
