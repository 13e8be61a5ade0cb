"""RepresentationView: the sparse semantic representation φ inside a denoiser, and sampling guided by it
(Kadkhodaie, Mallat & Simoncelli 2025).

Pick a network, a block and the noise level σ_φ; φ of every item of a data set (MNIST digits with their labels,
or a folder's images or patches) is computed on the worker thread (cached on disk), then shown as k-means clusters
(image grids, click an image), a PCA plane, the clicked item's nearest neighbours in φ beside those in pixels, the
sparsity and selectivity of φ, the robustness of every block's φ against σ, and, on request, guided samples
towards the clicked item or its cluster (:mod:`explorer.ui.representation_state`).
"""
from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import holoviews as hv
import numpy as np
import panel as pn
import param

from explorer.guidance import STRENGTH
from explorer.representation import BOTTOM, block_names
from explorer.representation_stats import purity
from explorer.scheduler import Priority

from .controls import bounded_input
from .models import ModelPicker, model_names
from .representation_plots import (activity_plot, cluster_mosaic, labelled_mosaic, pca_plot, robustness_plot,
                                   selectivity_plot, sparsity_plot)
from .representation_state import (NEIGHBOURS, ROBUSTNESS_IMAGES, SAMPLES, TAU, Analysis, Guided, cluster_members,
                                   compute, sample_guided, tile_at)
from .tasks import LatestTask
from .text import alert, elapsed_text, explanation, fmt_number, notify, show_alert
from .toolview import ToolView

DEFAULT_MODEL = "bf-mnist"
DATA = {"MNIST training digits": "mnist:training", "MNIST held-out digits": "mnist:held-out",
        "a folder of images": "folder", "patches of a folder's images": "patches"}
PER_CLUSTER = 12  # images shown per cluster row
TILE_SCALE = 1.1  # screen pixels per image pixel in the cluster grid
EXPLANATION = r"""
Take a block $b$ of the network (a UNet's encoder blocks, its bottom block **mid**, its decoder blocks; a DnCNN's
layers) and average each of its channels $a_{b,c}$ over space: that vector is the image's **representation**

$$\varphi_{b,c}(y) = \frac{1}{H_b W_b}\sum_{i,j} a_{b,c}(y)[i,j], \qquad \varphi_b(x;\sigma_\varphi) = \frac1D\sum_{d=1}^{D}\varphi_b(x + \sigma_\varphi z_d),$$

read at the noise level $\sigma_\varphi$ and averaged over $D$ noise draws (Kadkhodaie, Mallat & Simoncelli,
*Unconditional CNN denoisers contain sparse semantic representations of images*, 2025).

**Clusters.** k-means (scikit-learn, k-means++ with 10 restarts) of φ, with every channel standardized (so each
channel weighs the same) or not, and of the raw pixels for comparison; the **purity** is the fraction of items in
their cluster's most frequent label. Click an image of a cluster to see its nearest neighbours in φ and in pixels.

**Sparsity and selectivity.** A channel is *on* for an image when $\varphi_c > \tau \max_{c'} \varphi_{c'}$ ($\tau$ = 0.1,
relative, so a contrast change, which scales φ of a bias-free network, changes nothing). Sparse: most channels are off
for a given image. Selective: each channel is on for few images, and (with labels) prefers one class:
$SI_c = (\mu_{max} - \mu_{rest})/(\mu_{max} + \mu_{rest})$ over the class means of $\varphi_c$.

**Robustness.** The correlation across channels of $\varphi_b(x + \sigma z)$ (one draw) with $\varphi_b(x)$, averaged
over images, for every block.

**Guided sampling.** Algorithm 1 with a step towards the target $\varphi^\star$ (the clicked item's φ, or its
cluster's mean φ), the gradient taken through the network:

$$y_t = y_{t-1} + h_t(d_t + g_t) + \gamma_t z_t, \qquad g_t = -\lambda\lVert d_t\rVert\,\frac{\nabla G(y_{t-1})}{\lVert\nabla G(y_{t-1})\rVert}, \qquad G(y) = \frac{\lVert\varphi_b(\hat x(y) + \sigma_\varphi z) - \varphi^\star\rVert^2}{\lVert\varphi^\star\rVert^2}.$$

Each sample is labelled with its distance $\lVert\varphi(\hat x) - \varphi^\star\rVert/\lVert\varphi^\star\rVert$ and, with labels,
the label of its nearest item in pixels.
"""


class RepresentationView(ToolView):
    """φ of a data set in one block of the ``picker``'s network, its clusters, statistics and guided samples.

    Results: ``analysis`` (:class:`~explorer.ui.representation_state.Analysis`), ``robustness`` ({block: {σ: corr}}),
    ``guided`` (:class:`~explorer.ui.representation_state.Guided`). What the page shows: :attr:`shown`.
    :meth:`select` (or a click on the cluster grid) sets the query item; :meth:`sample` draws guided samples.
    """

    title = "Semantic representation"

    block = param.Selector(objects=[BOTTOM], default=BOTTOM, doc="The block whose channel averages are φ")
    sigma = param.Number(default=0.5, bounds=(0.0, 1.0), step=0.05, doc="σ_φ: the noise level φ is read at ([0,1] units)")
    draws = param.Integer(default=4, bounds=(1, 16), doc="D: noise draws φ is averaged over (1 when σ_φ = 0)")
    data = param.Selector(objects=list(DATA), default="MNIST training digits", doc="The items whose φ is computed")
    folder = param.String(default="", doc="The folder of images (for a folder or its patches)")
    count = param.Integer(default=1000, bounds=(20, 9500), doc="How many items (the first ones)")
    k = param.Integer(default=10, bounds=(2, 20), doc="k: the number of k-means clusters")
    standardize = param.Boolean(default=True, doc="Cluster φ with every channel standardized (z-scores)")
    color_by = param.Selector(objects=["label", "cluster"], default="label", doc="The colours of the PCA plane")
    query = param.Integer(default=0, bounds=(0, None), doc="The item whose neighbours (and target) are shown")
    target = param.Selector(objects=["the clicked item", "its cluster's mean φ"], default="the clicked item")
    strength = param.Number(default=STRENGTH, bounds=(0.0, 4.0), step=0.1,
                            doc="λ: the guidance step as a fraction of the denoiser's step")
    seed = param.Integer(default=0, bounds=(0, 99_999), doc="Seed of the guided sampler's noise")

    def __init__(self, model: str | None = None, **params: Any):
        super().__init__(**params)
        names = model_names(include_classical=False)
        first = model or (DEFAULT_MODEL if DEFAULT_MODEL in names else (names[0] if names else None))
        self.picker = ModelPicker(model=first, include_classical=False)
        self.analysis: Analysis | None = None
        self.robustness: dict[str, dict[float, float]] = {}
        self.guided: Guided | None = None
        self.request: dict[str, Any] = {}
        sw = dict(sizing_mode="stretch_width")
        self.alert_pane = alert()
        self._block_note = pn.pane.Markdown("", styles={"color": "#555", "font-size": "0.85em"}, margin=(0, 10))
        self._status = pn.pane.Markdown("", css_classes=["explorer-number"], margin=(0, 10), **sw)
        self._progress = pn.indicators.Progress(value=0, max=1, height=12, margin=(4, 5), **sw)
        self._stop_button = pn.widgets.Button(label="■ Stop", color="warning", width=90, disabled=True)
        self._stop_button.on_click(lambda _e: self.stop())
        self._sample_button = pn.widgets.Button(label=f"▶ {SAMPLES} guided samples", color="primary", **sw)
        self._sample_button.on_click(lambda _e: self.sample())
        self._purity = pn.pane.Markdown("", css_classes=["explorer-number"], margin=(0, 10), **sw)
        self._clusters = pn.pane.HoloViews(None, margin=(0, 5), linked_axes=False)
        self._pca = pn.pane.HoloViews(None, margin=(0, 5), linked_axes=False)
        self._neighbours = pn.pane.HoloViews(None, margin=(0, 5), linked_axes=False)
        self._stats = pn.pane.HoloViews(None, margin=(0, 5), linked_axes=False)
        self._robust = pn.pane.HoloViews(None, margin=(0, 5), linked_axes=False)
        self._guided_pane = pn.pane.HoloViews(None, margin=(0, 5), linked_axes=False)
        self._guided_text = pn.pane.Markdown("Press ▶ to draw guided samples towards the clicked item.",
                                             margin=(0, 10), **sw)
        self.tap: hv.streams.Tap | None = None
        self._members: list[np.ndarray] = []
        self.task = LatestTask(compute, self._render, self._on_error, name="representation",
                               priority=Priority.BULK)
        self.sampler = LatestTask(sample_guided, self._render_guided, self._on_sample_error, name="guided-sampling",
                                  priority=Priority.STREAMING)
        self.picker.param.watch(lambda _e: self._model_changed(), "model")
        self._model_changed()

    # ------------------------------------------------------------------ work
    def _model_changed(self) -> None:
        handle = self.picker.handle
        try:
            names = block_names(handle) if handle is not None else []
        except ValueError as e:
            names = []
            show_alert(self.alert_pane, f"{self.picker.model}: {e}")
        note = "" if not names or BOTTOM in names else (
            f"{self.picker.model} has no bottom block '{BOTTOM}' (it never downsamples): its blocks are {', '.join(names)}.")
        self._block_note.object = note
        if not names:
            self.param.block.objects = [self.block]
            return
        self.param.block.objects = names
        block = self.block if self.block in names else (BOTTOM if BOTTOM in names else names[-1])
        if block != self.block:
            self.block = block  # submits
        else:
            self.submit()

    def _source(self) -> str:
        kind = DATA[self.data]
        if kind == "folder":
            return self.folder
        if kind == "patches":
            return f"patches:{self.folder}"
        return kind

    @param.depends("block", "sigma", "draws", "data", "folder", "count", "k", "standardize", watch=True)
    def submit(self) -> None:
        """Compute φ of the data set and its analysis (superseding a computation in progress)."""
        if DATA[self.data] in ("folder", "patches") and not self.folder.strip():
            self._status.object = "Type the path of a folder of images in the sidebar."
            return
        request = dict(model=self.picker.model, data=self._source(), count=int(self.count), block=self.block,
                       sigma=float(self.sigma), draws=int(self.draws) if self.sigma > 0 else 1, k=int(self.k),
                       standardize=bool(self.standardize))
        if request == self.request and (self.task.running or self.analysis is not None):
            return  # nothing that matters changed (a folder typed while the digits are shown)
        self.request = request
        show_alert(self.alert_pane, "")
        self._progress.max, self._progress.value = int(self.count), 0
        self._status.object = f"Computing φ of {self.count} items in block {self.block}…"
        self._stop_button.disabled = False
        self.task.submit(self.request)

    def stop(self) -> None:
        """Stop the computation in progress (what is shown stays)."""
        self.task.cancel()
        self.sampler.cancel()
        self._stop_button.disabled = True
        self._sample_button.disabled = self.analysis is None
        self._status.object = "Stopped."

    def _on_error(self, e: BaseException) -> None:
        show_alert(self.alert_pane, f"φ could not be computed: {type(e).__name__}: {e}")
        notify(f"Representation failed: {e}")
        self._stop_button.disabled = True
        self._status.object = ""

    def select(self, index: int) -> None:
        """Make item ``index`` the query (its neighbours, the guided samples' target)."""
        n = len(self.analysis.data) if self.analysis is not None else None
        self.query = int(np.clip(index, 0, (n or 1) - 1))

    def sample(self) -> None:
        """Draw guided samples towards the query item (or its cluster's mean φ)."""
        if self.analysis is None:
            return
        self._sample_button.disabled = True
        self._stop_button.disabled = False
        self._guided_text.object = f"Sampling {SAMPLES} images guided towards item #{self.query}…"
        self.sampler.submit(dict(analysis=self.analysis, index=int(self.query),
                                 centroid=self.target != "the clicked item", strength=float(self.strength),
                                 seed=int(self.seed)))

    def _on_sample_error(self, e: BaseException) -> None:
        show_alert(self.alert_pane, f"Guided sampling failed: {type(e).__name__}: {e}")
        notify(f"Guided sampling failed: {e}")
        self._sample_button.disabled = self.analysis is None
        self._stop_button.disabled = True

    # ------------------------------------------------------------------ display (event loop)
    def _render(self, payload: dict[str, Any]) -> None:
        if "progress" in payload:
            done, total = payload["progress"]
            self._progress.max, self._progress.value = total, done
            return
        if "analysis" in payload:
            self.analysis = payload["analysis"]
            if self.query >= len(self.analysis.data):
                self.query = 0
            with pn.io.hold():
                self._show_analysis()
            self._status.object = (f"φ of {len(self.analysis.data)} items ({self.analysis.data.source}) in block "
                                   f"{self.analysis.block}: {self.analysis.phi.shape[1]} channels, computed or read "
                                   f"from the cache in {elapsed_text(self.analysis.seconds)}. Robustness of every "
                                   f"block on {ROBUSTNESS_IMAGES} items…")
            self._sample_button.disabled = False
            return
        if "robustness" in payload:
            self.robustness = payload["robustness"]
            self._robust.object = robustness_plot(self.robustness, self.request["block"])
            return
        self._stop_button.disabled = True
        self._status.object = self._status.object.replace(f" Robustness of every block on {ROBUSTNESS_IMAGES} items…",
                                                          f" Done in {elapsed_text(payload['done'])}.")

    def _show_analysis(self) -> None:
        a = self.analysis
        what = "standardized φ" if a.standardized else "φ"
        if a.purity is not None:
            self._purity.object = (f"Cluster purity against the labels, k = {len(a.clusters.centroids)}: "
                                   f"**{fmt_number(a.purity)}** for k-means on {what} ({a.block}, σ_φ = "
                                   f"{fmt_number(a.sigma)}), **{fmt_number(a.pixel_purity)}** on the pixels "
                                   f"(one single cluster: {fmt_number(purity(np.zeros(len(a.data)), a.data.classes))}).")
        else:
            self._purity.object = f"{len(a.data)} items without labels: {len(a.clusters.centroids)} clusters of {what}."
        members = cluster_members(a, PER_CLUSTER)
        fig = cluster_mosaic(a, members, PER_CLUSTER, TILE_SCALE)
        self._members = members
        self.tap = hv.streams.Tap(source=fig, x=None, y=None)
        self.tap.add_subscriber(self._on_tap)
        self._clusters.object = fig
        stats = [sparsity_plot(a, TAU), activity_plot(a)]
        selectivity = selectivity_plot(a)
        if selectivity is not None:
            stats.append(selectivity)
        self._stats.object = hv.Layout(stats).cols(3).opts(shared_axes=False, toolbar=None)
        self._show_query()

    def _on_tap(self, x: float | None = None, y: float | None = None, **_: Any) -> None:
        if x is None or y is None or self.analysis is None:
            return
        tile = tile_at(x, y, self.analysis.data.images.shape[1:], len(self._members), PER_CLUSTER)
        if tile is not None and tile[1] < len(self._members[tile[0]]):
            self.select(int(self._members[tile[0]][tile[1]]))

    @param.depends("query", "color_by", watch=True)
    def _show_query(self) -> None:
        a = self.analysis
        if a is None:
            return
        q = int(min(self.query, len(a.data) - 1))
        self._pca.object = pca_plot(a, self.color_by, q)
        near = a.neighbours(q)
        label = (lambda i: f"{a.data.classes[i]} · ") if a.data.classes is not None else (lambda i: "")
        rows = []
        for key, what in (("phi", "standardized φ" if a.standardized else "φ"), ("pixels", "pixels")):
            idx, dist = near[key]
            images = np.concatenate([a.data.images[q:q + 1], a.data.images[idx]])
            cols = [f"query {label(q)}#{q}"] + [f"{label(i)}d = {fmt_number(d, 3)}" for i, d in zip(idx, dist)]
            rows.append(labelled_mosaic(images, len(images), 2.0, f"Nearest in {what}", col_labels=cols,
                                        xlabel=("label · " if a.data.classes is not None else "") +
                                        f"Euclidean distance to the query in {what}"))
        self._neighbours.object = hv.Layout(rows).cols(1).opts(shared_axes=False, toolbar=None)

    def _render_guided(self, payload: dict[str, Any]) -> None:
        if "progress" in payload:
            self._guided_text.object = f"Sampling {SAMPLES} images guided towards item #{self.query}: step {payload['progress']}…"
            return
        g: Guided = payload["guided"]
        self.guided = g
        self._sample_button.disabled = False
        self._stop_button.disabled = not self.task.running
        images = g.images if g.target is None else np.concatenate([g.target[None], g.images])
        labels = [f"{fmt_number(d, 2)}" + (f" · {lab}" if g.labels is not None else "")
                  for d, lab in zip(g.distances, g.labels or [None] * len(g.distances))]
        if g.target is not None:
            labels = ["target"] + labels
        what = "‖φ(x̂) − φ*‖/‖φ*‖" + (" · label of the nearest item in pixels" if g.labels is not None else "")
        row = labelled_mosaic(images, len(images), 2.5, f"Guided samples towards {g.target_text}", col_labels=labels,
                              xlabel=what)
        self._guided_pane.object = hv.Layout([row]).opts(shared_axes=False, toolbar=None)  # (a lone figure was cut)
        agree = ""
        if g.labels is not None and g.target is not None and self.analysis is not None:
            want = self.analysis.data.classes[self.query].item()
            agree = f" {sum(lab == want for lab in g.labels)} of {len(g.labels)} nearest items have the target's label {want}."
        self._guided_text.object = (f"{len(g.images)} samples, λ = {fmt_number(self.strength)}, seed {self.seed}, "
                                    f"{g.steps} steps in {elapsed_text(g.seconds)}; median ‖φ(x̂) − φ*‖/‖φ*‖ = "
                                    f"{fmt_number(float(np.median(g.distances)), 3)}.{agree}")

    @property
    def shown(self) -> SimpleNamespace:
        """What the page shows: ``status``, ``alert`` ('' when hidden), ``purity`` (the line), ``block_note``,
        ``blocks`` (offered), ``clusters`` (the grid image's array and its row labels), ``pca`` (the plot's
        xlabel, ylabel), ``neighbours`` (per row: column labels), ``stats`` (the titles), ``robustness`` (curve
        labels), ``guided`` (its column labels and text)."""
        def ticks(el: Any, axis: str) -> list[str]:
            return [t for _, t in (el.opts.get().kwargs.get(axis) or [])] if el is not None else []

        clusters = self._clusters.object
        pca = self._pca.object
        near = self._neighbours.object
        stats = self._stats.object
        robust = self._robust.object
        guided = self._guided_pane.object
        return SimpleNamespace(
            status=self._status.object, alert=self.alert_pane.object if self.alert_pane.visible else "",
            purity=self._purity.object, block_note=self._block_note.object, blocks=list(self.param.block.objects),
            clusters=None if clusters is None else SimpleNamespace(image=clusters.data, rows=ticks(clusters, "yticks"),
                                                                   clim=clusters.opts.get().kwargs["clim"]),
            pca=None if pca is None else SimpleNamespace(xlabel=pca.opts.get().kwargs["xlabel"],
                                                        ylabel=pca.opts.get().kwargs["ylabel"]),
            neighbours=[] if near is None else [ticks(el, "xticks") for el in near],
            stats=[] if stats is None else [el.opts.get().kwargs.get("title") for el in stats],
            robustness=[] if robust is None else sorted({el.label for el in robust}),
            guided=SimpleNamespace(labels=[] if guided is None else ticks(guided[0] if isinstance(guided, hv.Layout) else guided, "xticks"),
                                  text=self._guided_text.object))

    # ------------------------------------------------------------------ layout
    def sidebar(self) -> pn.Column:
        sw = dict(sizing_mode="stretch_width")
        head = lambda text: pn.pane.Markdown(f"**{text}**", margin=(10, 10, 0, 10))  # noqa: E731
        folder = pn.widgets.TextInput.from_param(self.param.folder, name="Folder path", placeholder="/path/to/images", **sw)
        return pn.Column(
            head("Network"), self.picker,
            head("Representation φ"), pn.widgets.Select.from_param(self.param.block, name="Block", **sw), self._block_note,
            pn.widgets.FloatSlider.from_param(self.param.sigma, name="σ_φ, the noise level φ is read at", format="0.00",
                                              **sw),
            bounded_input(self, "draws", "D, noise draws averaged", **sw),
            head("Data set"), pn.widgets.Select.from_param(self.param.data, name="Items", **sw), folder,
            bounded_input(self, "count", "Items (the first ones)", step=100, **sw),
            head("Clusters"), bounded_input(self, "k", "k, k-means clusters", **sw),
            pn.widgets.Checkbox.from_param(self.param.standardize, name="Standardize the channels of φ"),
            pn.widgets.RadioButtonGroup.from_param(self.param.color_by, name="PCA colours", **sw),
            bounded_input(self, "query", "Query item (or click a cluster image)", **sw),
            head("Guided sampling"), pn.widgets.Select.from_param(self.param.target, name="Target φ*", **sw),
            pn.widgets.FloatSlider.from_param(self.param.strength, name="λ, guidance strength", format="0.0", **sw),
            bounded_input(self, "seed", "Seed", **sw), self._sample_button,
            pn.Row(self._stop_button, self._progress, **sw), **sw)

    def main(self) -> pn.Column:
        self.task.bind()
        self.sampler.bind()
        sw = dict(sizing_mode="stretch_width")
        return pn.Column(self.alert_pane, self._status, self._purity,
                         pn.FlexBox(self._clusters, self._pca, **sw),
                         pn.pane.Markdown("#### The query's nearest neighbours", margin=(0, 10)), self._neighbours,
                         pn.pane.Markdown("#### Sparsity and selectivity of φ", margin=(0, 10)), self._stats,
                         pn.pane.Markdown("#### Robustness to noise, every block", margin=(0, 10)), self._robust,
                         pn.pane.Markdown("#### Guided sampling", margin=(0, 10)), self._guided_text, self._guided_pane,
                         explanation(EXPLANATION, title="The representation inside a denoiser"), **sw)
