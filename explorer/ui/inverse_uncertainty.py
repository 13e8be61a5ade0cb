"""The inverse tool's uncertainty row: the spread of the Algorithm 2 samples beside the Jacobian's map.

After a run, :meth:`ReconstructionUncertainty.submit` computes (off the event loop)
:meth:`~explorer.ui.inverse_state.InverseRun.uncertainty`: the per-pixel standard deviation of the
samples — the uncertainty of the reconstruction given the measurements — and the second-order
identity at the end of Algorithm 2, √(σ_T² diag(P A P)), each in its own colour scale, with their
correlation over the unmeasured pixels.
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import numpy as np
import panel as pn

from explorer.scheduler import Priority

from .plots import LiveImage
from .tasks import LatestTask
from .text import fmt_number

EXPLANATION = r"""
**Uncertainty of the reconstruction.** With several chains, the per-pixel standard deviation of the samples is
the uncertainty that the measurements leave. Beside it, the Jacobian identity at the end of Algorithm 2,
\\(\sqrt{\sigma_T^2\,\mathrm{diag}(P A P)}\\) with \\(P = I - MM^\top\\) (only the unmeasured directions are uncertain):
the posterior spread *left at the last noise level* \\(\sigma_T\\), hence much smaller; its correlation with the
samples' spread says whether the denoiser locates the uncertainty in the same places.
"""


class ReconstructionUncertainty:
    """Two magnitude maps (samples' spread, Jacobian std at σ_T) and their numbers, computed after a run."""

    def __init__(self, size: int = 190):
        self.spread = LiveImage((8, 8), "spread of the samples (std)", size=size, kind="magnitude",
                                colorbar=True, value_label="std")
        self.jacobian = LiveImage((8, 8), "Jacobian std at σ_T: √(σ_T² diag PAP)", size=size, kind="magnitude",
                                  colorbar=True, value_label="std")
        for image in (self.spread, self.jacobian):
            image.figure.title.text_font_size = "9pt"
        self.text = pn.pane.Markdown("", css_classes=["explorer-number"], margin=(0, 10), sizing_mode="stretch_width")
        self.result: dict[str, Any] | None = None
        self.layout = pn.Column(pn.Row(self.spread, self.jacobian, margin=0), self.text, visible=False,
                                sizing_mode="stretch_width")
        self.task = LatestTask(self._compute, self._render, self._failed, name="inverse-uncertainty",
                               priority=Priority.BULK)

    def bind(self) -> None:
        self.task.bind()

    def submit(self, run: Any, handle: Any) -> None:
        """Compute the maps of ``run`` (an :class:`~explorer.ui.inverse_state.InverseRun` that has finished)."""
        if run.sampler is None or int(run.chains) < 2:
            self.clear()
            return
        self.text.object = "Computing the uncertainty maps…"
        self.layout.visible = True
        self.task.submit(dict(run=run, handle=handle))

    def clear(self) -> None:
        self.task.cancel()
        self.result = None
        self.layout.visible = False

    def _compute(self, req: dict[str, Any], stop: threading.Event, publish: Callable[[Any], None]) -> None:
        publish(req["run"].uncertainty(req["handle"]))

    def _failed(self, e: BaseException) -> None:
        self.text.object = f"⚠️ No uncertainty map: {type(e).__name__}: {e}"

    def _render(self, u: dict[str, Any]) -> None:
        self.result = u
        self.spread.update(u["spread"])
        self.jacobian.update(u["jacobian"])
        where = "unmeasured pixels" if u["unknown"] is not None else "all pixels"
        self.text.object = (f"{u['chains']} samples · median spread {fmt_number(float(np.median(u['spread'])))}, median "
                            f"Jacobian std {fmt_number(float(np.median(u['jacobian'])))} at σ_T = {fmt_number(u['sigma_T'])} "
                            f"([0,1] units; ratio {fmt_number(u['ratio'])}) · correlation of the two maps over the {where}: "
                            f"r = {fmt_number(u['correlation'])}")

    def arrays(self) -> dict[str, np.ndarray]:
        """The maps for the NPZ download (none before they are computed)."""
        if self.result is None:
            return {}
        return dict(samples_spread=self.result["spread"], jacobian_std_at_sigma_T=self.result["jacobian"])

    @property
    def shown(self) -> SimpleNamespace:
        """What is on screen: ``spread``, ``jacobian`` (the drawn arrays), ``text``, ``visible``."""
        return SimpleNamespace(spread=self.spread.array, jacobian=self.jacobian.array, text=self.text.object,
                               visible=self.layout.visible)
