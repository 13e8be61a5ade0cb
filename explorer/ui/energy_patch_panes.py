"""The photograph panes of the Energies tool: −log p against local contrast and denoisability, and the map
of −log p over one photograph. The logic is :class:`~explorer.ui.energy_patch_state.EnergyPatchState`
(``view.state``), the drawings :mod:`explorer.ui.energy_patch_plots`; this module wires widgets to them."""
from __future__ import annotations

from typing import Any

import panel as pn

from .energy_patch_plots import correlation_text, map_figure, map_markdown, scatter_figure
from .energy_patch_state import MAP_SIZES, NO_DENOISER, EnergyPatchState
from .energy_state import EnergyState
from .models import model_names
from .tasks import LatestTask
from .text import alert, show_alert

SCATTER_HELP = ("Each dot is one image of the data set: its −log p (in the unit chosen above) against its **gradient "
                "energy** G = (1/d) Σ ‖∇x‖² (local contrast; forward differences inside the patch) and against its "
                "**denoising gain** PSNR(x̂, x) − PSNR(y, x), y = x + σz at σ = 25/255 (seeded noise). Guth, Kadkhodaie & "
                "Simoncelli find flat images the most probable and the least probable the hardest to denoise.")
OFF_HINT = ("*Tick “Compute them” under **Contrast, denoisability, map** in the sidebar to draw the scatter plots and "
            "the map.*")
MAP_HELP = ("−log p of every patch of the photograph (patches of the data set's image size, the model's quantity), "
            "drawn over it: each cell is the stride×stride square at the centre of its patch; the last "
            "(side − patch) mod stride rows and columns begin no patch.")


class EnergyPatchPanes(pn.viewable.Viewer):
    """Scatter plots (``gradient``, ``gain``, with ``correlations``) and the map (``map``, ``map_text``) of an
    :class:`~explorer.ui.energy_state.EnergyState`'s energies; :meth:`controls` are the sidebar widgets."""

    def __init__(self, energy: EnergyState, task_factory: Any = LatestTask, **params: Any):
        super().__init__(**params)
        self.state = s = EnergyPatchState(energy, task_factory=task_factory)
        hv_pane = dict(linked_axes=False, margin=(0, 5))
        self.gradient, self.gain, self.map = (pn.pane.HoloViews(None, **hv_pane) for _ in range(3))
        self.correlations = pn.pane.Markdown("", css_classes=["explorer-number"], margin=(0, 10))
        self.scatter_status = pn.pane.Markdown("", margin=(0, 10), styles={"color": "#555"})
        self.map_status = pn.pane.Markdown("", margin=(0, 10), styles={"color": "#555"})
        self.map_text = pn.pane.Markdown("", css_classes=["explorer-number"], margin=(0, 10), sizing_mode="stretch_width")
        self.scatter_alert, self.map_alert = alert(), alert()
        s.param.watch(lambda _e: self.refresh(), "revision")
        energy.param.watch(lambda _e: self.refresh(), ["unit", "revision"])
        s.param.watch(lambda e: setattr(self.scatter_status, "object", e.new), "scatter_status")
        s.param.watch(lambda e: setattr(self.map_status, "object", e.new), "map_status")
        s.param.watch(lambda e: show_alert(self.scatter_alert, e.new), "scatter_error")
        s.param.watch(lambda e: show_alert(self.map_alert, e.new), "map_error")
        self.refresh()

    def refresh(self) -> None:
        """Redraw the scatter plots and the map in the energies' unit."""
        s = self.state
        self.gradient.object, self.gain.object = scatter_figure(s, "gradient"), scatter_figure(s, "gain")
        has = self.gradient.object is not None
        self.correlations.object = (f"**−log p vs local contrast:** {correlation_text(s, 'gradient')}<br>"
                                    f"**−log p vs denoisability:** {correlation_text(s, 'gain')}") if has else ""
        self.map.object = map_figure(s)
        self.map_text.object = map_markdown(s) if s.active else OFF_HINT

    def controls(self) -> pn.Column:
        """The sidebar widgets: the denoiser of the gain, the map's photograph, size and stride."""
        s, w = self.state, dict(sizing_mode="stretch_width")
        denoiser = pn.widgets.Select.from_param(s.param.denoiser, name="Denoiser of the denoisability (σ = 25/255)",
                                                options=[*model_names(include_classical=True), NO_DENOISER], **w)
        return pn.Column(
            pn.pane.Markdown("**Contrast, denoisability, map**", margin=(10, 10, 0, 10)),
            pn.widgets.Checkbox.from_param(s.param.active, name="Compute them (a denoiser pass per image, "
                                           "a model pass per map patch)", **w), denoiser,
            pn.widgets.Select.from_param(s.param.photo, name="Photograph of the map", **w),
            pn.widgets.Select.from_param(s.param.map_size, name="Map: photograph resized to (centre square)",
                                         options=MAP_SIZES, **w),
            pn.widgets.Select.from_param(s.param.map_stride, name="Map: stride between patches (pixels)", **w),
            margin=0, **w)

    def __panel__(self) -> pn.viewable.Viewable:
        self.state.scatter_task.bind()
        self.state.map_task.bind()
        sw = dict(sizing_mode="stretch_width")
        return pn.Column(
            pn.pane.Markdown("#### −log p against local contrast and denoisability", margin=(10, 10, 0, 10)),
            pn.pane.Markdown(SCATTER_HELP, margin=(0, 10), styles={"color": "#555"}, **sw),
            self.scatter_alert, pn.Row(self.gradient, self.gain, **sw), self.correlations, self.scatter_status,
            pn.pane.Markdown("#### −log p over one photograph", margin=(10, 10, 0, 10)),
            pn.pane.Markdown(MAP_HELP, margin=(0, 10), styles={"color": "#555"}, **sw),
            self.map_alert, self.map, self.map_text, self.map_status, **sw)
