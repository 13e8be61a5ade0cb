"""GAHBView: the geometry-adaptive harmonic basis — the SVD of the denoiser's Jacobian at an image.

At a (clean or noisy) image y and noise level σ, a bias-free denoiser acts as x̂(y) = A_y y. The
singular vectors of A (Kadkhodaie, Guth, Simoncelli & Mallat, ICLR 2024) are oscillating patterns
adapted to the image's contours; the spectrum decays fast, and tr A (the effective dimension)
shrinks as σ grows. Everything is computed by :mod:`explorer.jacobian` (``top_singular``,
``shrinkage``, ``effective_dim``, ``sum_sq_singular``, ``symmetry``, ``effective_dim_curve``) on a
worker thread, stage by stage, each stage shown as soon as it is ready.
"""
from __future__ import annotations

import io
import math
import threading
import time
from collections.abc import Callable
from typing import Any

import holoviews as hv
import numpy as np
import panel as pn
import param
import torch

from explorer import jacobian

from .export import downloads, npz_bytes, png_bytes
from .models import ModelPicker
from .models import sigma_arg as _sigma_arg
from .plots import diverging_image, gray_image
from .sources import ImageSource
from .tasks import LatestTask
from .text import alert, explanation, fmt_number, notify, show_alert
from .theme import ACCENT
from .toolview import ToolView

PER_PAGE = 16
GRID_COLS = 4
CURVE_SIGMAS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.4)
EXACT_MAX_N = 256  # up to this many pixels traces and norms come from the dense Jacobian
STAGES = ("images", "svd", "stats", "shrinkage", "curve")

EXPLANATION = r"""
Near an image \\(y\\) a bias-free denoiser is linear, \\(\hat x(y) = A y\\) with the Jacobian
\\(A = \partial\hat x/\partial y\\) (an \\(N\times N\\) matrix). Its singular value decomposition

$$A = \sum_k s_k u_k v_k^\top$$

shows what the denoiser keeps: directions with \\(s_k \approx 1\\) pass, directions with \\(s_k \approx 0\\) are
removed. The vectors \\(u_k\\) form a **geometry-adaptive harmonic basis** (GAHB): oscillations that follow the
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

Large images use matrix-free estimates: randomized block Krylov for the top vectors and Hutchinson probes
(± one standard error) for traces and norms. (Kadkhodaie, Guth, Simoncelli & Mallat, *Generalization in
diffusion models arises from geometry-adaptive harmonic representations*, ICLR 2024.)
"""


def _np(t: Any) -> np.ndarray:
    return t.detach().to("cpu", torch.float64).numpy() if isinstance(t, torch.Tensor) else np.asarray(t)


def partial_shrinkage(eigenvalues: np.ndarray, eigenvectors: np.ndarray, y: np.ndarray, terms: int) -> np.ndarray:
    """Σ_{k<terms} λ_k ⟨y, e_k⟩ e_k for eigenvectors (K, H, W) (the library's reconstruction uses all K)."""
    lam = np.asarray(eigenvalues, np.float64)[:terms]
    E = np.asarray(eigenvectors, np.float64)[:terms].reshape(len(lam), -1)
    coef = lam * (E @ np.asarray(y, np.float64).ravel())
    return (coef @ E).reshape(np.shape(y))


def _estimate_text(e: Any, digits: int = 3) -> str:
    if e is None:
        return "…"
    return fmt_number(e.value, digits) + (f" ± {fmt_number(e.stderr, 2)}" if e.stderr > 0 else " (exact)")


class GAHBView(ToolView):
    """The SVD of the Jacobian of a denoiser at an image: spectrum, singular vectors, effective dimension,
    symmetry, the effective dimension against σ, and the shrinkage reconstruction.

    Parameters: ``sigma`` (noise added to the clean image; 0 = the clean image itself), ``seed``,
    ``k`` (how many singular vectors / eigenvectors are computed), ``vectors`` (left u or right v),
    ``page`` (which page of the grid), ``terms`` (terms of the shrinkage sum), ``probes``
    (Hutchinson probes). Results: ``svd``, ``shrink``, ``stats`` (dict of Estimates), ``curve``.
    """

    title = "Geometry-adaptive harmonic basis"

    sigma = param.Number(default=0.1, bounds=(0.0, 0.5), step=0.005,
                         doc="σ: std of the noise added to the clean image ([0,1] units); 0 = the clean image")
    seed = param.Integer(default=0, bounds=(0, None), doc="Seed of the noise draw")
    k = param.Selector(objects=[4, 8, 16, 32, 64, 128, 256], default=16, doc="Number of singular vectors computed")
    vectors = param.Selector(objects=["u (output side)", "v (input side)"], default="u (output side)",
                             doc="Which singular vectors the grid shows")
    page = param.Integer(default=1, bounds=(1, 1), doc="Page of the singular-vector grid")
    terms = param.Integer(default=16, bounds=(1, 16), doc="Terms K of the shrinkage sum")
    probes = param.Integer(default=32, bounds=(4, 256), doc="Hutchinson probes for traces and norms")
    curve = param.Boolean(default=True, doc="Also compute the effective dimension against σ")

    def __init__(self, model: str | None = None, image_source: ImageSource | None = None, **params: Any):
        super().__init__(**params)
        self.picker = ModelPicker(model=model, include_classical=True)
        self.source = image_source or ImageSource(sizes=[16, 32, 64], size=32)
        self.y: np.ndarray | None = None
        self.xhat: np.ndarray | None = None
        self.sigma_hat: float | None = None
        self.svd: Any = None
        self.shrink: Any = None
        self.stats: dict[str, Any] = {}
        self.curve_data: dict[str, list[float]] = dict(sigma=[], trace=[], sum_sq=[], trace_se=[], sum_sq_se=[])
        self.stage_seconds: dict[str, float] = {}
        self.task = LatestTask(self._compute, self._render, self._on_error, self._on_done, name="gahb")

        self._alert = alert()
        self._progress = pn.indicators.Progress(value=0, max=100, sizing_mode="stretch_width", height=12,
                                                bar_color="primary", margin=(4, 5))
        self._status = pn.pane.Markdown("", margin=(0, 10), styles={"color": "#555"})
        self._stop = pn.widgets.Button(label="■ Stop", color="warning", width=90, disabled=True)
        self._stop.on_click(lambda _e: self.stop())
        self._recompute = pn.widgets.Button(label="↻ Recompute", color="primary", variant="outline", width=120)
        self._recompute.on_click(lambda _e: self.compute())
        self._numbers = pn.pane.Markdown("", css_classes=["explorer-number"], sizing_mode="stretch_width", margin=(0, 10))
        self._images_pane = pn.pane.HoloViews(None, linked_axes=False, margin=0)
        self._spectrum_pane = pn.pane.HoloViews(None, linked_axes=False, sizing_mode="stretch_width", min_height=300)
        self._curve_pane = pn.pane.HoloViews(None, linked_axes=False, sizing_mode="stretch_width", min_height=300)
        self._grid_pane = pn.pane.HoloViews(None, linked_axes=False, margin=0)
        self._page_slider = pn.widgets.IntSlider.from_param(self.param.page, name="Page of the grid", width=220,
                                                            visible=False)
        self._grid_label = pn.pane.Markdown("", margin=(0, 10), styles={"color": "#555"})
        self._shrink_pane = pn.pane.HoloViews(None, linked_axes=False, margin=0)
        self._shrink_text = pn.pane.Markdown("", css_classes=["explorer-number"], margin=(0, 10))

        self.source.param.watch(lambda _e: self.compute(), "image")
        self.picker.param.watch(lambda _e: self.compute(), "model")
        self.compute()

    # ------------------------------------------------------------------ requests
    @param.depends("sigma", "seed", "k", "probes", "curve", watch=True)
    def compute(self) -> None:
        """Start (or restart) the computation for the current image, model and parameters."""
        handle = self.picker.handle
        if handle is None or self.source.image is None:
            show_alert(self._alert, self.picker.error or "No image.")
            return
        show_alert(self._alert, "")
        x = self.source.image
        z = np.random.default_rng(int(self.seed)).standard_normal(x.shape).astype(np.float32)
        y = (x + np.float32(self.sigma) * z).astype(np.float32)
        k = min(int(self.k), y.size)
        self.svd, self.shrink, self.stats = None, None, {}
        self.curve_data = dict(sigma=[], trace=[], sum_sq=[], trace_se=[], sum_sq_se=[])
        self.stage_seconds = {}
        self.param.terms.bounds = (1, k)
        pages = max(1, math.ceil(k / PER_PAGE))
        self.param.page.bounds = (1, max(2, pages))  # a slider needs start < end; hidden when one page
        with param.parameterized.discard_events(self):
            self.terms = k
            self.page = min(self.page, pages)
        self._page_slider.visible = pages > 1
        self._stop.disabled = False
        self._progress.value = 0
        self._status.object = "Computing…"
        self.task.submit(dict(handle=handle, name=self.picker.model, x=x, y=y, sigma=float(self.sigma), k=k,
                              probes=int(self.probes), seed=int(self.seed), curve=bool(self.curve)))

    def stop(self) -> None:
        """Cancel the computation after its current stage (results so far stay on screen)."""
        self.task.cancel()
        self._stop.disabled = True
        self._status.object = "Stopped. " + self._timing_text()

    # ------------------------------------------------------------------ computation (worker thread)
    def _compute(self, req: dict[str, Any], stop: threading.Event, publish: Callable[[Any], None]) -> None:
        h, y, k = req["handle"], req["y"], req["k"]
        s_arg = _sigma_arg(h, req["sigma"])
        n = y.size
        method = "exact" if n <= EXACT_MAX_N else "hutchinson"
        n_curve = len(CURVE_SIGMAS) if req["curve"] else 0
        total = 4 + n_curve
        done = 0

        def stage(name: str, fn: Callable[[], Any]) -> Any:
            nonlocal done
            t0 = time.perf_counter()
            value = fn()
            done += 1
            publish(dict(stage=name, value=value, seconds=time.perf_counter() - t0,
                         progress=int(100 * done / total)))
            return value

        def images() -> dict[str, Any]:
            xhat = np.asarray(h.denoise(y, s_arg), np.float32)
            s_hat = float(h.estimate_sigma(h.to_tensor(y), s_arg)[0])
            return dict(y=y, xhat=xhat, sigma_hat=s_hat)

        stage("images", images)
        if stop.is_set():
            return

        def stats() -> dict[str, Any]:
            kw = dict(method=method, probes=req["probes"], sigma=s_arg, seed=req["seed"])
            return dict(trace=jacobian.effective_dim(h, y, **kw), sum_sq=jacobian.sum_sq_singular(h, y, **kw),
                        symmetry=jacobian.symmetry(h, y, **kw), method=method)

        stage("svd", lambda: jacobian.top_singular(h, y, k, sigma=s_arg, seed=req["seed"]))
        if stop.is_set():
            return
        stage("stats", stats)
        if stop.is_set():
            return
        stage("shrinkage", lambda: jacobian.shrinkage(h, y, k, sigma=s_arg, seed=req["seed"]))
        for s in CURVE_SIGMAS[:n_curve]:
            if stop.is_set():
                return
            # one σ at a time (same seed ⇒ the same noise draw z for every σ, as one call would use)
            stage("curve", lambda s=s: jacobian.effective_dim_curve(h, req["x"], [s], seed=req["seed"],
                                                                    method=method, probes=req["probes"]))

    def _on_error(self, e: BaseException) -> None:
        show_alert(self._alert, f"The computation failed: {type(e).__name__}: {e}")
        notify(f"GAHB computation failed: {e}")
        self._stop.disabled = True

    def _on_done(self) -> None:
        self._stop.disabled = True
        if not self._alert.visible:
            self._progress.value = 100
            self._status.object = "Done. " + self._timing_text()

    def _timing_text(self) -> str:
        names = dict(images="x̂", stats="traces", svd="top-k SVD", shrinkage="eigen-shrinkage", curve="curve")
        return " · ".join(f"{names[k]} {v:.1f} s" for k, v in self.stage_seconds.items())

    # ------------------------------------------------------------------ display (event loop)
    def _render(self, msg: dict[str, Any]) -> None:
        stage, value = msg["stage"], msg["value"]
        self.stage_seconds[stage] = self.stage_seconds.get(stage, 0.0) + msg["seconds"]
        self._progress.value = msg["progress"]
        self._status.object = f"Computing… ({msg['progress']} %) " + self._timing_text()
        if stage == "images":
            self.y, self.xhat, self.sigma_hat = value["y"], value["xhat"], value["sigma_hat"]
            self._images_pane.object = (
                gray_image(self.y, title="y (σ = %s)" % fmt_number(self.sigma), size=200)
                + gray_image(self.xhat, title="denoised x̂(y)", size=200)).opts(toolbar=None)
        elif stage == "stats":
            self.stats = value
        elif stage == "svd":
            self.svd = value
            self._show_spectrum()
            self._show_grid()
        elif stage == "shrinkage":
            self.shrink = value
            self._show_spectrum()
            self._show_shrinkage()
        elif stage == "curve":
            c = value
            self.curve_data["sigma"].append(float(c.sigmas[0]))
            self.curve_data["trace"].append(float(c.trace[0]))
            self.curve_data["sum_sq"].append(float(c.sum_sq[0]))
            self.curve_data["trace_se"].append(float(c.trace_stderr[0]))
            self.curve_data["sum_sq_se"].append(float(c.sum_sq_stderr[0]))
            self._show_curve()
        self._show_numbers()

    def _show_numbers(self) -> None:
        if self.y is None:
            return
        n = self.y.size
        st = self.stats
        lines = [f"**N = {n}** pixels · noise σ = {fmt_number(self.sigma)} · "
                 f"σ̂ = {fmt_number(self.sigma_hat)} (noise std estimated from the residual, [0,1] units)"]
        if st:
            how = "exact (dense Jacobian)" if st["method"] == "exact" else f"Hutchinson, {self.probes} probes, ± 1 s.e."
            lines += [f"**effective dimension** tr A = {_estimate_text(st['trace'])} "
                      f"(degrees of freedom kept, of N = {n}; {how})",
                      f"‖A‖²_F = Σₖ sₖ² = {_estimate_text(st['sum_sq'])}",
                      f"**symmetry** ‖A − Aᵀ‖_F / ‖A‖_F = {_estimate_text(st['symmetry'])} (0 = symmetric)"]
        else:
            lines.append("effective dimension, symmetry: computing…")
        if self.svd is not None:
            s = _np(self.svd.values)
            lines.append(f"top singular values s₁ = {fmt_number(s[0])}, s_{len(s)} = {fmt_number(s[-1])}")
        self._numbers.object = "<br>".join(lines)

    def _show_spectrum(self) -> None:
        layers = []
        if self.svd is not None:
            s = _np(self.svd.values)
            ks = np.arange(1, len(s) + 1)
            layers.append(hv.Curve((ks, s), "k", "value", label="singular values sₖ of A").opts(color=ACCENT, line_width=2))
            layers.append(hv.Scatter((ks, s), "k", "value", label="singular values sₖ of A").opts(color=ACCENT, size=5))
        if self.shrink is not None:
            lam = _np(self.shrink.eigenvalues)
            ks = np.arange(1, len(lam) + 1)
            pos = lam > 0
            layers.append(hv.Scatter((ks[pos], lam[pos]), "k", "value", label="eigenvalues λₖ of A_s (> 0)").opts(
                color="#d62728", size=6, marker="triangle"))
        if not layers:
            return
        self._spectrum_pane.object = hv.Overlay(layers).opts(
            logx=True, logy=True, xlabel="index k (log scale)", ylabel="sₖ, λₖ (log scale)",
            title="Top of the spectrum of the Jacobian A", legend_position="bottom_left", show_grid=True,
            responsive=True, min_height=300, toolbar=None, tools=["hover"])

    def _vector_stack(self) -> tuple[np.ndarray, str]:
        if self.svd is None:
            return np.zeros((0, 1, 1)), ""
        left = self.vectors.startswith("u")
        V = _np(self.svd.U if left else self.svd.V)[:, 0]
        return V, "u" if left else "v"

    def grid_arrays(self) -> list[tuple[int, np.ndarray]]:
        """(k, vector image) for the vectors on the current page (k counted from 1)."""
        V, _ = self._vector_stack()
        first = min(int(self.page) - 1, max(0, (len(V) - 1) // PER_PAGE)) * PER_PAGE
        return [(first + i + 1, V[first + i]) for i in range(min(PER_PAGE, len(V) - first))]

    @param.depends("page", "vectors", watch=True)
    def _show_grid(self) -> None:
        if self.svd is None:
            return
        s = _np(self.svd.values)
        _, letter = self._vector_stack()
        items = self.grid_arrays()
        imgs = [diverging_image(v, title=f"{letter}{_sub(k)} · s = {fmt_number(s[k - 1])}", size=112, colorbar=False,
                                fontsize={"title": "9pt"}) for k, v in items]
        self._grid_pane.object = hv.Layout(imgs).cols(GRID_COLS).opts(toolbar=None, shared_axes=False)
        lo, hi = items[0][0], items[-1][0]
        self._grid_label.object = (f"Singular vectors {letter}{_sub(lo)}…{letter}{_sub(hi)} of {len(s)} computed "
                                   f"(each in its own symmetric colour range ±max|·|, red > 0 > blue).")

    def shrinkage_image(self) -> np.ndarray | None:
        """x̂_K = Σ_{k≤K} λ_k ⟨y, e_k⟩ e_k for K = ``terms``."""
        if self.shrink is None or self.y is None:
            return None
        return partial_shrinkage(_np(self.shrink.eigenvalues), _np(self.shrink.eigenvectors)[:, 0], self.y,
                                 int(self.terms)).astype(np.float32)

    @param.depends("terms", watch=True)
    def _show_shrinkage(self) -> None:
        rec = self.shrinkage_image()
        if rec is None:
            return
        K = int(self.terms)
        lam = _np(self.shrink.eigenvalues)
        e_last = _np(self.shrink.eigenvectors)[K - 1, 0]
        self._shrink_pane.object = (
            gray_image(self.y, title="noisy y", size=170)
            + gray_image(rec, title=f"Σ over {K} terms", size=170)
            + gray_image(self.xhat, title="denoiser x̂(y)", size=170)
            + diverging_image(e_last, title=f"e_{K} (λ = {fmt_number(lam[K - 1])})", size=170, colorbar=False)
        ).opts(toolbar=None, shared_axes=False)
        err = np.linalg.norm(rec - self.xhat) / max(np.linalg.norm(self.xhat), 1e-12)
        coef = lam[:K] * (_np(self.shrink.eigenvectors)[:K, 0].reshape(K, -1) @ self.y.ravel().astype(np.float64))
        self._shrink_text.object = (f"x̂_K = Σ_(k≤K) λₖ⟨y, eₖ⟩eₖ with **K = {K}** of {len(lam)} computed terms · "
                                    f"‖x̂_K − x̂(y)‖ / ‖x̂(y)‖ = {fmt_number(err)} · "
                                    f"λ_K⟨y, e_K⟩ = {fmt_number(coef[-1])}")

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
        self._curve_pane.object = hv.Overlay(layers).opts(
            logx=True, logy=True, xlabel="noise std σ ([0,1] units, log scale)",
            ylabel="effective dimension (log scale)", title=f"Effective dimension against σ (N = {self.y.size})",
            legend_position="top_right", show_grid=True, responsive=True, min_height=300, toolbar=None,
            tools=["hover"], xticks=[(s, f"{s:g}") for s in sig])

    # ------------------------------------------------------------------ downloads
    def _png(self) -> io.BytesIO:
        panels: list[tuple] = []
        if self.y is not None:
            panels += [("y", self.y), ("x_hat(y)", self.xhat)]
        rec = self.shrinkage_image()
        if rec is not None:
            panels.append((f"shrinkage, {self.terms} terms", rec))
        V, letter = self._vector_stack()
        panels += [(f"{letter}{k + 1}", V[k], "diverging") for k in range(min(len(V), 12))]
        return png_bytes(panels, min_size=128, columns=5)

    def _npz(self) -> io.BytesIO:
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

    def _basename(self) -> str:
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
            pn.widgets.IntInput.from_param(self.param.seed, name="Noise seed", **w),
            pn.pane.Markdown("**Computation**", margin=(10, 10, 0, 10)),
            pn.widgets.Select.from_param(self.param.k, name="Singular vectors computed (k)", **w),
            pn.widgets.IntInput.from_param(self.param.probes, name="Hutchinson probes (large images)", **w),
            pn.widgets.Checkbox.from_param(self.param.curve, name="Effective dimension against σ", **w),
            **w)

    def main(self) -> pn.Column:
        self.task.bind()
        page = self._page_slider
        vec = pn.widgets.RadioButtonGroup.from_param(self.param.vectors, button_type="primary",
                                                     button_style="outline", width=260)
        terms = pn.widgets.IntSlider.from_param(self.param.terms, name="Shrinkage terms K", sizing_mode="stretch_width")
        return pn.Column(
            self._alert,
            pn.Card(pn.Row(self._recompute, self._stop, pn.Column(self._progress, self._status, **_sw()), **_sw()),
                    hide_header=True, sizing_mode="stretch_width"),
            pn.Row(pn.Column(self._images_pane, self._numbers, width=430), self._spectrum_pane, **_sw()),
            pn.Row(pn.Column(pn.pane.Markdown("#### Singular vectors", margin=(0, 10)), pn.Row(vec, page),
                             self._grid_pane, self._grid_label, width=560),
                   self._curve_pane, **_sw()),
            pn.Column(pn.pane.Markdown("#### Adaptive shrinkage in the eigenbasis of A_s", margin=(0, 10)),
                      terms, self._shrink_pane, self._shrink_text, **_sw()),
            downloads(self._png, self._npz, self._basename),
            explanation(EXPLANATION, title="The geometry-adaptive harmonic basis"),
            **_sw())


def _sw() -> dict[str, Any]:
    return dict(sizing_mode="stretch_width")


_SUB = str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉")


def _sub(k: int) -> str:
    return str(k).translate(_SUB)
