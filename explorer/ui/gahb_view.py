"""GAHBView: the geometry-adaptive harmonic basis — the SVD of the denoiser's Jacobian at an image.

At a (clean or noisy) image y and noise level σ, a bias-free denoiser acts as x̂(y) = A_y y. The
singular vectors of A (Kadkhodaie, Guth, Simoncelli & Mallat, ICLR 2024) are oscillating patterns
adapted to the image's contours; the spectrum decays fast, and tr A (the effective dimension)
shrinks as σ grows. The parameters, the staged computation (:mod:`explorer.jacobian`, on a worker
thread, each stage shown as soon as it is ready, the bar moving with the Krylov steps) and the numbers
are :class:`~explorer.ui.gahb_state.GAHBState`; this module draws them.
"""
from __future__ import annotations

import io
from typing import Any

import holoviews as hv
import numpy as np
import panel as pn
import param

from .controls import bounded_input
from .export import downloads, npz_bytes, png_bytes
from .gahb_state import CURVE_SIGMAS, PER_PAGE, GAHBState, as_numpy, compute_stages  # noqa: F401
from .models import ModelPicker
from .plots import diverging_image, gray_image
from .sources import ImageSource
from .tasks import LatestTask
from .text import alert, explanation, fmt_number, notify, show_alert
from .theme import ACCENT
from .toolview import ToolView

GRID_COLS = 4

EXPLANATION = r"""
Near an image \\(y\\) a bias-free denoiser is linear, \\(\hat x(y) = A y\\) with the Jacobian
\\(A = \partial\hat x/\partial y\\) (an \\(N\times N\\) matrix). Its singular value decomposition

$$A = \sum_k s_k u_k v_k^\top$$

shows what the denoiser keeps: directions with \\(s_k \approx 1\\) pass, directions with \\(s_k \approx 0\\) are
removed. \\(A\\) is not a projection: \\(s_1 > 1\\) is common, directions along which \\(\hat x\\) changes faster than
\\(y\\) (a denoiser sharpens edges, and its filters are not averages with weights in [0, 1]). The vectors \\(u_k\\) form a **geometry-adaptive harmonic basis** (GAHB): oscillations that follow the
contours of the image.

- **Spectrum**: the top singular values \\(s_k\\) of \\(A\\) and eigenvalues \\(\lambda_k\\) of its symmetric part
  \\(A_s = (A + A^\top)/2\\), on log–log axes.
- **Effective dimension** \\(\mathrm{tr} A = \sum_i \partial\hat x_i/\partial y_i\\) (the degrees of freedom kept) and
  \\(\lVert A\rVert_F^2 = \sum_k s_k^2\\); both fall as \\(\sigma\\) grows (plot on the right).
- **Symmetry** \\(\lVert A - A^\top\rVert_F / \lVert A\rVert_F\\): 0 when \\(\hat x\\) is a gradient, as for an exact MMSE
  denoiser, \\(\hat x(y) = y + \sigma^2\nabla\log p_\sigma(y)\\).
- **Shrinkage**: with the eigenvectors \\(e_k\\) of \\(A_s\\) the denoiser shrinks each coefficient of \\(y\\) in its own
  adaptive basis,

$$\hat x_K = \sum_{k\le K} \lambda_k \langle y, e_k\rangle e_k \quad\longrightarrow\quad A_s y \approx \hat x(y) \quad (K \to N).$$

Large images use matrix-free estimates: one block Krylov (Lanczos) space of \\(A_s\\) gives both the top
eigenvectors (residuals ≤ 0.3 % of \\(\lambda_1\\)) and, by Rayleigh–Ritz on the same space, the top singular
vectors (lower bounds, within ~1–2 % for a nearly symmetric \\(A\\)); Hutchinson probes (± one standard error)
give traces and norms. The curve against σ uses the noise draw of \\(y\\), so at the marked σ it passes through the \\(\mathrm{tr} A\\) shown on the
left (other draws give other values: tr A depends on the noise realisation, not only on σ). (Kadkhodaie, Guth, Simoncelli & Mallat, *Generalization in
diffusion models arises from geometry-adaptive harmonic representations*, ICLR 2024.)
"""


class GAHBView(ToolView, GAHBState):
    """The SVD of the Jacobian of a denoiser at an image: spectrum, singular vectors, effective dimension,
    symmetry, the effective dimension against σ, and the shrinkage reconstruction.

    Parameters and results: :class:`~explorer.ui.gahb_state.GAHBState`. Widgets: ``terms_slider``,
    ``page_slider``, ``progress_bar``, ``status``, ``numbers``, ``shrink_text`` and the plot panes.
    """

    title = "Geometry-adaptive harmonic basis"

    def __init__(self, model: str | None = None, image_source: ImageSource | None = None, **params: Any):
        super().__init__(**params)
        self.picker = ModelPicker(model=model, include_classical=True)
        self.source = image_source or ImageSource(sizes=[16, 32, 64], size=32)
        self.reset_results(min(int(self.k), self.source.image.size if self.source.image is not None else 1))
        self.task = LatestTask(compute_stages, self._render, self._on_error, self._on_done, name="gahb")

        self.alert_pane = alert()
        self.progress_bar = pn.indicators.Progress(value=0, max=100, sizing_mode="stretch_width", height=12,
                                                   bar_color="primary", margin=(4, 5))
        self.status = pn.pane.Markdown("", margin=(0, 10), styles={"color": "#555"})
        self._stop = pn.widgets.Button(label="■ Stop", color="warning", width=90, disabled=True)
        self._stop.on_click(lambda _e: self.stop())
        self._recompute = pn.widgets.Button(label="↻ Recompute", color="primary", variant="outline", width=120)
        self._recompute.on_click(lambda _e: self.compute())
        self.numbers = pn.pane.Markdown("", css_classes=["explorer-number"], sizing_mode="stretch_width", margin=(0, 10))
        self.images_pane = pn.pane.HoloViews(None, linked_axes=False, margin=0)
        self.spectrum_pane = pn.pane.HoloViews(None, linked_axes=False, sizing_mode="stretch_width", min_height=300)
        self.curve_pane = pn.pane.HoloViews(None, linked_axes=False, sizing_mode="stretch_width", min_height=300)
        self.grid_pane = pn.pane.HoloViews(None, linked_axes=False, margin=0)
        self.page_slider = pn.widgets.IntSlider.from_param(self.param.page, name="Page of the grid", width=220,
                                                           visible=False)
        self.terms_slider = pn.widgets.IntSlider.from_param(self.param.terms, name="Shrinkage terms K",
                                                            sizing_mode="stretch_width")
        self.grid_label = pn.pane.Markdown("", margin=(0, 10), styles={"color": "#555"})
        self.shrink_pane = pn.pane.HoloViews(None, linked_axes=False, margin=0)
        self.shrink_text = pn.pane.Markdown("", css_classes=["explorer-number"], margin=(0, 10))

        self.source.param.watch(lambda _e: self.compute(), "image")
        self.picker.param.watch(lambda _e: self.compute(), "model")
        self.compute()

    # ------------------------------------------------------------------ requests
    @param.depends("sigma", "seed", "k", "probes", "curve", watch=True)
    def compute(self) -> None:
        """Start (or restart) the computation for the current image, model and parameters."""
        handle = self.picker.handle
        if handle is None or self.source.image is None:
            show_alert(self.alert_pane, self.picker.error or "No image.")
            return
        show_alert(self.alert_pane, "")
        req = self.request(handle, self.source.image)
        self.page_slider.visible = req["k"] > PER_PAGE
        self._stop.disabled = False
        self.status.object = "Computing…"
        self.task.submit(req)

    def stop(self) -> None:
        """Cancel the computation after its current stage (results so far stay on screen)."""
        self.task.cancel()
        self._stop.disabled = True
        self.status.object = "Stopped. " + self.timing_text()

    @param.depends("progress", watch=True)
    def _show_progress(self) -> None:
        self.progress_bar.value = int(self.progress)

    def _on_error(self, e: BaseException) -> None:
        show_alert(self.alert_pane, f"The computation failed: {type(e).__name__}: {e}")
        notify(f"GAHB computation failed: {e}")
        self._stop.disabled = True

    def _on_done(self) -> None:
        self._stop.disabled = True
        if not self.alert_pane.visible:
            self.progress = 100
            self.status.object = "Done. " + self.timing_text()

    # ------------------------------------------------------------------ display (event loop)
    def _render(self, msg: dict[str, Any]) -> None:
        stage = self.apply(msg)
        self.status.object = f"Computing… ({msg['progress']} %) " + self.timing_text()
        if stage == "progress":
            return
        if stage == "images":
            self.images_pane.object = (
                gray_image(self.y, title="y (σ = %s)" % fmt_number(self.sigma), size=200)
                + gray_image(self.xhat, title="denoised x̂(y)", size=200)).opts(toolbar=None)
        elif stage == "svd":
            self._show_spectrum()
            self._show_grid()
        elif stage == "shrinkage":
            self._show_spectrum()
            self._show_shrinkage()
        if stage in ("stats", "curve"):
            self._show_curve()
        self.numbers.object = self.numbers_text()

    def _show_spectrum(self) -> None:
        layers = []
        if self.svd is not None:
            s = as_numpy(self.svd.values)
            ks = np.arange(1, len(s) + 1)
            layers.append(hv.Curve((ks, s), "k", "value", label="singular values sₖ of A").opts(color=ACCENT, line_width=2))
            layers.append(hv.Scatter((ks, s), "k", "value", label="singular values sₖ of A").opts(color=ACCENT, size=5))
        if self.shrink is not None:
            lam = as_numpy(self.shrink.eigenvalues)
            ks = np.arange(1, len(lam) + 1)
            pos = lam > 0
            layers.append(hv.Scatter((ks[pos], lam[pos]), "k", "value", label="eigenvalues λₖ of A_s (> 0)").opts(
                color="#d62728", size=6, marker="triangle"))
        if not layers:
            return
        self.spectrum_pane.object = hv.Overlay(layers).opts(
            logx=True, logy=True, xlabel="index k (log scale)", ylabel="sₖ, λₖ (log scale)",
            title="Top of the spectrum of the Jacobian A", legend_position="bottom_left", show_grid=True,
            responsive=True, min_height=300, toolbar=None, tools=["hover"])

    @param.depends("page", "vectors", watch=True)
    def _show_grid(self) -> None:
        if self.svd is None:
            return
        s = as_numpy(self.svd.values)
        _, letter = self.vector_stack()
        items = self.grid_arrays()
        imgs = [diverging_image(v, title=f"{letter}{_sub(k)} · s = {fmt_number(s[k - 1])}", size=112, colorbar=False,
                                fontsize={"title": "9pt"}) for k, v in items]
        self.grid_pane.object = hv.Layout(imgs).cols(GRID_COLS).opts(toolbar=None, shared_axes=False)
        lo, hi = items[0][0], items[-1][0]
        self.grid_label.object = (f"Singular vectors {letter}{_sub(lo)}…{letter}{_sub(hi)} of {len(s)} computed "
                                   f"(each in its own symmetric colour range ±max|·|, red > 0 > blue).")

    @param.depends("terms", watch=True)
    def _show_shrinkage(self) -> None:
        rec = self.shrinkage_image()
        if rec is None:
            return
        K = int(self.terms)
        lam = as_numpy(self.shrink.eigenvalues)
        e_last = as_numpy(self.shrink.eigenvectors)[K - 1, 0]
        self.shrink_pane.object = (
            gray_image(self.y, title="noisy y", size=170)
            + gray_image(rec, title=f"Σ over {K} terms", size=170)
            + gray_image(self.xhat, title="denoiser x̂(y)", size=170)
            + diverging_image(e_last, title=f"e_{K} (λ = {fmt_number(lam[K - 1])})", size=170, colorbar=False)
        ).opts(toolbar=None, shared_axes=False)
        self.shrink_text.object = self.shrinkage_text()

    def _show_curve(self) -> None:
        d = self.curve_data
        if not d["sigma"]:
            return
        order = np.argsort(d["sigma"])
        sig = np.asarray(d["sigma"])[order]
        tr, fro = np.asarray(d["trace"])[order], np.asarray(d["sum_sq"])[order]
        tse, fse = np.asarray(d["trace_se"])[order], np.asarray(d["sum_sq_se"])[order]
        layers = [
            hv.Curve((sig, tr), "σ", "dimension", label="tr A").opts(color=ACCENT, line_width=2),
            hv.Scatter((sig, tr), "σ", "dimension", label="tr A").opts(color=ACCENT, size=6),
            hv.Curve((sig, fro), "σ", "dimension", label="‖A‖²_F = Σ sₖ²").opts(color="#d62728", line_width=2),
            hv.Scatter((sig, fro), "σ", "dimension", label="‖A‖²_F = Σ sₖ²").opts(color="#d62728", size=6),
        ]
        if np.any(tse > 0):
            layers.append(hv.ErrorBars((sig, tr, tse), "σ", ["dimension", "err"]).opts(color=ACCENT))
            layers.append(hv.ErrorBars((sig, fro, fse), "σ", ["dimension", "err"]).opts(color="#d62728"))
        if self.sigma > 0:
            layers.append(hv.VLine(float(self.sigma), label="current σ").opts(color="#888", line_dash="dashed"))
        self.curve_pane.object = hv.Overlay(layers).opts(
            logx=True, logy=True, xlabel="noise std σ ([0,1] units, log scale)",
            ylabel="effective dimension (log scale)", title=f"Effective dimension against σ (N = {self.y.size})",
            legend_position="top_right", show_grid=True, responsive=True, min_height=300, toolbar=None,
            tools=["hover"], xticks=[(s, f"{s:g}") for s in sig])

    # ------------------------------------------------------------------ downloads
    def png(self) -> io.BytesIO:
        panels: list[tuple] = []
        if self.y is not None:
            panels += [("y", self.y), ("x_hat(y)", self.xhat)]
        rec = self.shrinkage_image()
        if rec is not None:
            panels.append((f"shrinkage, {self.terms} terms", rec))
        V, letter = self.vector_stack()
        panels += [(f"{letter}{k + 1}", V[k], "diverging") for k in range(min(len(V), 12))]
        return png_bytes(panels, min_size=128, columns=5)

    def npz(self) -> io.BytesIO:
        arrays: dict[str, Any] = dict(clean=self.source.image, y=self.y, x_hat=self.xhat)
        if self.svd is not None:
            arrays.update(singular_values=self.svd.values, U=self.svd.U, V=self.svd.V)
        if self.shrink is not None:
            arrays.update(eigenvalues=self.shrink.eigenvalues, eigenvectors=self.shrink.eigenvectors,
                          shrinkage_all_terms=self.shrink.reconstruction, shrinkage_shown=self.shrinkage_image())
        if self.curve_data["sigma"]:
            arrays.update({f"curve_{k}": np.asarray(v) for k, v in self.curve_data.items()})
        stats = {k: (v._asdict() if hasattr(v, "_asdict") else v) for k, v in self.stats.items()}
        params = dict(model=self.picker.model, image=self.source.label, sigma=self.sigma, seed=self.seed, k=self.k,
                      terms=self.terms, probes=self.probes, stats=stats, sigma_hat=self.sigma_hat)
        return npz_bytes(arrays, params)

    def basename(self) -> str:
        return f"gahb_{self.picker.model}_{self.source.label or 'image'}_sigma{self.sigma:g}".replace(" ", "_")

    # ------------------------------------------------------------------ layout
    def sidebar(self) -> pn.Column:
        w = dict(sizing_mode="stretch_width")
        return pn.Column(
            self.picker,
            self.source,
            pn.pane.Markdown("**Noise**", margin=(10, 10, 0, 10)),
            pn.widgets.FloatSlider.from_param(self.param.sigma, name="σ (noise std, [0,1] units; 0 = clean)",
                                              format="0.000", throttled=True, **w),
            bounded_input(self, "seed", "Noise seed", **w),
            pn.pane.Markdown("**Computation**", margin=(10, 10, 0, 10)),
            pn.widgets.Select.from_param(self.param.k, name="Singular vectors computed (k)", **w),
            bounded_input(self, "probes", "Hutchinson probes (large images)", **w),
            pn.widgets.Checkbox.from_param(self.param.curve, name="Effective dimension against σ", **w),
            **w)

    def main(self) -> pn.Column:
        self.task.bind()
        page = self.page_slider
        vec = pn.widgets.RadioButtonGroup.from_param(self.param.vectors, button_type="primary",
                                                     button_style="outline", width=260)
        terms = self.terms_slider
        return pn.Column(
            self.alert_pane,
            pn.Card(pn.Row(self._recompute, self._stop, pn.Column(self.progress_bar, self.status, **_sw()), **_sw()),
                    hide_header=True, sizing_mode="stretch_width"),
            # FlexBoxes, not Rows: nested in a parent layout (a notebook cell's tool row), a bokeh Row left an
            # image grid (hv.Layout) beside a plot unpainted; these also wrap the plot below in a narrow cell
            pn.FlexBox(pn.Column(self.images_pane, self.numbers, width=430), _beside(self.spectrum_pane), **_sw()),
            pn.FlexBox(pn.Column(pn.pane.Markdown("#### Singular vectors", margin=(0, 10)), pn.Row(vec, page),
                                 self.grid_pane, self.grid_label, width=560),
                       _beside(self.curve_pane), **_sw()),
            pn.Column(pn.pane.Markdown("#### Adaptive shrinkage in the eigenbasis of A_s", margin=(0, 10)),
                      terms, self.shrink_pane, self.shrink_text, **_sw()),
            downloads(self.png, self.npz, self.basename),
            explanation(EXPLANATION, title="The geometry-adaptive harmonic basis"),
            **_sw())


def _sw() -> dict[str, Any]:
    return dict(sizing_mode="stretch_width")


def _beside(plot: pn.viewable.Viewable) -> pn.Column:
    """A plot that takes the rest of its FlexBox's line, or a line of its own when less than 300 px are left."""
    return pn.Column(plot, styles={"flex": "1 1 300px"}, margin=0, **_sw())


_SUB = str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉")


def _sub(k: int) -> str:
    return str(k).translate(_SUB)
