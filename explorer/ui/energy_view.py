"""EnergyView: the energies −log p(x) of a data set under an energy model trained by dual score matching.

An energy network U_θ(y, t) (Guth, Kadkhodaie & Simoncelli, NeurIPS 2025; :mod:`explorer.energy`)
gives the negative log-likelihood of a clean image, NLL(x) = U_θ(x, t_min) + log Z. This tool computes
it for every image of a data set (the MNIST held-out or training digits of :mod:`explorer.data.registry`,
patches of the built-in photographs, a folder) with :func:`explorer.energies.compute_energies` on a
worker thread, chunk by chunk (progress bar, Stop, an on-disk cache shared with ``python -m
explorer.energies``), and shows the histogram in nats, nats/dim, bits/dim or dB/dim with its
maximum-likelihood Gumbel fit, the energies of reference images (constant gray, uniform noise), the
lowest- and highest-energy images, the images of a clicked bin, and where one chosen image (uploaded or
built-in) falls.

Which quantity is shown is the model card's (:func:`explorer.energy.nll_quantity`, named above the
summary and on the axis): for a model trained on dequantized 8-bit data (``energy-mnist``) the discrete
8-bit −log P(x), the uniform-dequantization bound over 8 seeded draws; otherwise the continuous density
−log p(x) on [0,1]^d. Every model call goes through the model's :class:`explorer.handle.ModelHandle`
(its lock serializes the sessions).

The logic lives in :class:`explorer.ui.energy_state.EnergyState` (``view.state``), the drawings and
texts in :mod:`explorer.ui.energy_plots`; this module only wires widgets to them.
"""
from __future__ import annotations

from functools import partial
from typing import Any

import holoviews as hv
import panel as pn
import param

import explorer
from explorer.scheduler import Priority

from .controls import bounded_input
from .energy_plots import (TILE, basename, bin_markdown, failures_markdown, histogram_figure, npz_export,
                           png_export, probe_markdown, summary_markdown, tiles)
from .energy_data import PATCH_DATASETS
from .energy_patch_panes import EnergyPatchPanes
from .energy_state import EXTREMES, MAX_BIN_IMAGES, EnergyState
from .export import downloads
from .models import ModelPicker, get_handle, model_names
from .plots import gray_image
from .sources import UPLOAD_MAX_MB, UploadBox
from .tasks import LatestTask
from .text import alert, explanation, notify, show_alert
from .toolview import ToolView

DEFAULT_MODEL = "energy-mnist"
BIN_COLS = 12
UPLOAD_HINT = (f"PNG / JPEG / TIFF / BMP / GIF / WebP / PGM, up to {UPLOAD_MAX_MB} MB. Converted to gray, "
               "centre-cropped and resized to the data set's image size.")
SUMMARY_CSS = """
table { font-size: 0.86em; border-collapse: collapse; width: 100%; }
th, td { padding: 1px 6px !important; }
h4 { margin: 0.1em 0 0.3em 0; }
"""

EXPLANATION = r"""
An **energy model** $U_\theta(y, t)$ is a network trained to be $-\log p_t(y)$ up to a constant, where $p_t$ is
the image density blurred by Gaussian noise of variance $t = \sigma^2$. It is built from a bias-free score network
$s_\theta$,

$$U_\theta(y, t) = \tfrac12\langle y, s_\theta(y, t)\rangle \qquad (\text{here with } y \text{ centred on the data mean, plus a learned function of } t),$$

and trained by **dual score matching**: its space score $-\nabla_y U_\theta$ must denoise (Tweedie/Miyasawa) and its
time score $\partial_t U_\theta$ must obey the heat equation, which ties the noise levels together. The constant is
fixed once at a large noise level, where $p_T$ is nearly Gaussian, giving $\log Z$ and the negative log-likelihood

$$\mathrm{NLL}(x) = -\log p(x) = U_\theta(x, t_{\min}) + \log Z \quad \text{(nats per image)}.$$

- **Which likelihood** (named above the summary and on the axis): a model trained on dequantized 8-bit images,
  $x + u$ with $u \sim U[0, 2^{-8})^d$ (its card says so; `energy-mnist`), is shown as the **discrete 8-bit**
  $-\log P(x)$, where $P(x) = \int_{[0,2^{-8})^d} p(x+u)\,du$ is the probability of the image's bin. By Jensen's inequality
  $-\log P(x) \le \mathbb{E}_u[-\log p(x+u)] + 8\,d\ln 2$ (the uniform-dequantization bound), estimated by the mean over
  8 seeded draws of $u$ per image ($\pm$ its standard error in the summary); in bits/dim it is directly comparable
  with the "bits/dim" of other 8-bit models. Other models show the **continuous density** $-\log p(x)$ on $[0,1]^d$ at
  the image itself, which can be negative (a density can exceed 1) and is not a discrete likelihood.
- **Units**: per image in nats; per dimension ($d = C\cdot H\cdot W$ values) in nats/dim $= \mathrm{NLL}/d$,
  bits/dim $= \mathrm{NLL}/(d\ln 2)$ or dB/dim $= 10\cdot\mathrm{NLL}/(d\ln 10)$ ($-10\log_{10}$ of the probability, per
  dimension). MNIST digits are zero-padded to 32×32: $d = 1024$, of which 240 values are always 0, so their
  bits/dim are per padded pixel and not comparable with results on 28×28 MNIST.
- **MNIST**: the last 500 digits are **held out** (no model here trained on them); the first 9500 are the
  **training digits** of `bf-mnist` and `energy-mnist`, so their energies are in-sample.
- **Histogram**: how many images have each energy (click a bar to see its images). The curve is the
  maximum-likelihood **Gumbel** fit, $f(x) = \tfrac1\beta e^{-z - e^{-z}}$, $z = (x-\mu)/\beta$ (mirrored when the
  energies are skewed to the left), scaled to image counts.
- **References**: constant images (black, mid-gray, white) and uniform-noise images of the same size; markers
  outside the range of the data are drawn as arrows at the edge, with their value.
- **Your image**: an uploaded (or built-in) photograph, converted to gray and centre-cropped and resized to the
  size of the data set's images, placed on the histogram (red). A note says how the file was converted
  (transparency composited over white, colour to gray, a constant image); images under 8×8 pixels are refused.

A model that is not normalized yet ($\log Z$ unknown) shows relative energies $U_\theta(x, t_{\min})$.
(Guth, Kadkhodaie & Simoncelli, *Learning normalized image densities via dual score matching*, NeurIPS 2025.)
"""


def is_energy_card(card: dict[str, Any]) -> bool:
    kind = str(card.get("kind", card.get("type", ""))).lower()
    return kind == "energy" or "energy" in card or str(card.get("architecture", "")).lower().startswith("energy")


def energy_model_names() -> list[str]:
    """Catalog energy models (``energy-mnist`` first) and registered handles whose model has ``nll``."""
    try:
        cards = {c["name"]: c for c in explorer.catalog()}
    except Exception:
        cards = {}
    names = []
    for n in model_names(include_classical=False):
        if n in cards:
            ok = is_energy_card(cards[n])
        else:  # a registered handle: already built
            try:
                ok = callable(getattr(getattr(get_handle(n), "model", None), "nll", None))
            except Exception:
                ok = False
        if ok:
            names.append(n)
    if DEFAULT_MODEL in names:
        names.remove(DEFAULT_MODEL)
        names.insert(0, DEFAULT_MODEL)
    return names


class EnergyView(ToolView):
    """Energies of a data set under an energy model: histogram (+ Gumbel fit, references), extremes,
    the images of a clicked bin, one chosen image placed on the histogram.

    ``state`` (:class:`~explorer.ui.energy_state.EnergyState`) holds the parameters (``dataset``,
    ``count``, ``unit``, ``probe``… passed through the constructor) and the results; the view's public
    panes show them: ``histogram`` (its click stream ``tap``), ``summary``, ``lowest`` / ``highest``,
    ``bin_title`` / ``bin_images``, ``probe_image`` / ``probe_text``, and ``upload`` (the shared
    :class:`~explorer.ui.sources.UploadBox`).
    """

    title = "Energies of images"

    def __init__(self, model: str | None = None, **params: Any):
        state_params = {k: params.pop(k) for k in list(params) if k in EnergyState.param and k != "name"}
        super().__init__(**params)
        self.picker = ModelPicker(model=model, include_classical=False)
        names = energy_model_names()
        chosen = model or (names[0] if names else None)
        if chosen is not None and chosen not in names:
            names = [chosen, *names]
        self.picker.param.model.objects = names
        self.picker.model = chosen
        self.picker._select.name = "Energy model"
        self.state = EnergyState(task_factory=partial(LatestTask, priority=Priority.BULK), **state_params)
        self.patches = EnergyPatchPanes(self.state)  # contrast, denoisability and the map (photograph views)

        sw = dict(sizing_mode="stretch_width")
        self.alert, self.note, self.failures, self.probe_alert = alert(), alert("warning"), alert("warning"), alert()
        self.probe_note = alert("info")
        self.progress = pn.indicators.Progress(value=0, max=100, height=12, bar_color="primary", margin=(4, 5), **sw)
        self.status = pn.pane.Markdown("", margin=(0, 10), styles={"color": "#555"})
        self.run_button = pn.widgets.Button(label="▶ Compute energies", color="primary", width=170)
        self.run_button.on_click(lambda _e: self.state.compute())
        self.stop_button = pn.widgets.Button(label="■ Stop", color="warning", width=90, disabled=True)
        self.stop_button.on_click(lambda _e: self.state.stop())
        self.histogram = pn.pane.HoloViews(None, linked_axes=False, min_height=400, min_width=520, **sw)
        self.tap: hv.streams.Tap | None = None
        self.summary = pn.pane.Markdown("", css_classes=["explorer-number"], width=390, margin=(0, 10),
                                        stylesheets=[SUMMARY_CSS])
        self.bin_title = pn.pane.Markdown(bin_markdown(self.state), margin=(0, 10), **sw)
        self.bin_images, self.lowest, self.highest, self.probe_image = (
            pn.pane.HoloViews(None, linked_axes=False, margin=0) for _ in range(4))
        self.probe_text = pn.pane.Markdown("", css_classes=["explorer-number"], margin=(0, 10), **sw)
        self.upload = UploadBox(self.state.load_upload, hint=UPLOAD_HINT)

        s = self.state
        s.param.watch(lambda *_e: self._show_run(), ["status", "progress", "running"])
        s.param.watch(lambda e: self._say(self.alert, e.new), "error")
        s.param.watch(lambda e: show_alert(self.note, e.new), "note")
        s.param.watch(lambda e: self._say(self.probe_alert, e.new), "probe_error")
        s.param.watch(lambda e: show_alert(self.probe_note, e.new), "probe_note")
        s.param.watch(lambda *_e: self.refresh(), ["revision", "unit", "bins", "show_all_references"])
        s.param.watch(lambda _e: self._show_selection(), "selected_bin")
        self.picker.param.watch(lambda _e: self._use_model(), "model")
        self._use_model()

    # ------------------------------------------------------------------ state → widgets
    def _use_model(self) -> None:
        """Hand the chosen model to the state and compute."""
        handle = self.picker.handle
        with param.parameterized.discard_events(self.state):
            self.state.param.update(handle=handle, model_name=self.picker.model or "", model_error=self.picker.error)
        self.state.compute()

    @staticmethod
    def _say(pane: pn.pane.Alert, text: str) -> None:
        show_alert(pane, text)
        if text:
            notify(text)

    def _show_run(self) -> None:
        s = self.state
        self.status.object, self.progress.value = s.status, s.progress
        self.run_button.disabled, self.stop_button.disabled = s.running, not s.running

    def refresh(self) -> None:
        """Redraw everything that depends on the energies (unit, bins, selection, the chosen image)."""
        s = self.state
        self._show_histogram()
        self.summary.object = summary_markdown(s)
        if s.values().size:
            low, high = s.extremes()
            self.lowest.object, self.highest.object = tiles(s, low, EXTREMES), tiles(s, high, EXTREMES)
        else:
            self.lowest.object = self.highest.object = None
        self._show_bin()
        show_alert(self.failures, failures_markdown(s))
        img = s.probe_image
        self.probe_image.object = None if img is None else gray_image(
            img, title=f"{s.probe_label} ({img.shape[0]}×{img.shape[1]})", size=150, fontsize={"title": "9pt"})
        self.probe_text.object = probe_markdown(s)

    def _show_selection(self) -> None:
        self._show_histogram()
        self._show_bin()

    def _show_histogram(self) -> None:
        fig = histogram_figure(self.state)
        self.tap = None if fig is None else hv.streams.Tap(source=fig, x=None, y=None)
        if self.tap is not None:
            self.tap.add_subscriber(lambda x=None, y=None, **_: self.state.select_at(x))
        self.histogram.object = fig

    def _show_bin(self) -> None:
        self.bin_title.object = bin_markdown(self.state)
        shown = self.state.selected_indices()[:MAX_BIN_IMAGES] if self.state.selected_bin is not None else []
        self.bin_images.object = tiles(self.state, shown, BIN_COLS, TILE)

    # ------------------------------------------------------------------ layout
    def sidebar(self) -> pn.Column:
        s, w = self.state, dict(sizing_mode="stretch_width")
        folder = pn.widgets.TextInput.from_param(s.param.folder, name="Folder path", placeholder="/path/to/images", **w)
        patches = pn.widgets.Checkbox.from_param(s.param.folder_patches, name="Cut into patches", **w)

        cutting = pn.Column(pn.widgets.Select.from_param(s.param.stride, name="Patch stride (pixels)", **w),
                            bounded_input(s, "per_image", label="Patches per photograph at most", step=4, **w), margin=0, **w)

        @pn.depends(s.param.dataset)
        def folder_widgets(dataset: str) -> pn.viewable.Viewable:
            return pn.Column(folder, patches, margin=0, **w) if dataset == "image folder" else pn.Spacer(height=0)

        @pn.depends(s.param.dataset, s.param.folder_patches)
        def cutting_widgets(dataset: str, folder_patches: bool) -> pn.viewable.Viewable:
            cut = dataset in PATCH_DATASETS or (dataset == "image folder" and folder_patches)
            return cutting if cut else pn.Spacer(height=0)

        return pn.Column(
            self.picker,
            pn.pane.Markdown("**Data set**", margin=(10, 10, 0, 10)),
            pn.widgets.Select.from_param(s.param.dataset, name="Images", **w),
            folder_widgets,
            pn.widgets.Select.from_param(s.param.patch, name="Patch / resized size (pixels per side)", **w),
            cutting_widgets,
            bounded_input(s, "count", label="Number of images (the first N)", step=100, **w),
            pn.widgets.Select.from_param(s.param.draws, name="Dequantization draws per image (8-bit models)", **w),
            pn.widgets.Checkbox.from_param(s.param.use_cache, name="Use the on-disk energy cache", **w),
            pn.pane.Markdown("**Display**", margin=(10, 10, 0, 10)),
            pn.widgets.RadioButtonGroup.from_param(s.param.unit, name="", color="primary", variant="outline", **w),
            pn.widgets.Select.from_param(s.param.bins, name="Histogram bins", **w),
            pn.widgets.Checkbox.from_param(s.param.show_all_references, name="Widen the axis to every reference", **w),
            pn.pane.Markdown("**One image on the histogram**", margin=(10, 10, 0, 10)),
            pn.widgets.Select.from_param(s.param.probe, name="Image", **w),
            self.upload, self.probe_alert, self.probe_note, self.probe_image, self.probe_text,
            self.patches.controls(),
            **w)

    def main(self) -> pn.Column:
        self.state.task.bind()
        sw = dict(sizing_mode="stretch_width")
        return pn.Column(
            self.alert,
            pn.Card(pn.Row(self.run_button, self.stop_button, pn.Column(self.progress, self.status, **sw), **sw),
                    hide_header=True, **sw),
            self.note,
            pn.Row(self.histogram, self.summary, **sw),
            pn.Row(pn.Column(pn.pane.Markdown(f"#### {EXTREMES} lowest energies (most probable)", margin=(0, 10)),
                             self.lowest),
                   pn.Spacer(width=20),
                   pn.Column(pn.pane.Markdown(f"#### {EXTREMES} highest energies (least probable)", margin=(0, 10)),
                             self.highest), **sw),
            pn.Column(self.bin_title, self.bin_images, **sw),
            self.patches,
            self.failures,
            downloads(lambda: png_export(self.state), lambda: npz_export(self.state), lambda: basename(self.state)),
            explanation(EXPLANATION, title="Energies: −log p(x) from dual score matching"),
            **sw)
