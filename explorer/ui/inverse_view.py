"""InverseView: linear inverse problems with the prior implicit in a denoiser (Algorithm 2), live.

Pick an image and a measurement (inpainting with a mask drawn on the image, random pixels,
super-resolution, spectral low-pass, random basis); the view shows the measurement, the
pseudo-inverse baseline M x_c, and several samples of Algorithm 2 (``explorer.Sampler`` with a
measurement operator) as they converge, their mean, and PSNR/SSIM of each against the original.
The mask drawing is rasterised by the pure functions of :mod:`explorer.ui.mask`.
"""
from __future__ import annotations

import io
import math
import threading
import time
from typing import Any

import holoviews as hv
import numpy as np
import panel as pn
import param
import torch

import explorer
from explorer import measurements as meas
from explorer.metrics import psnr, ssim

from .controls import RunControls
from .export import downloads, npz_bytes, png_bytes
from .mask import ERASE, PAINT, MaskDrawing, Rect, Stroke, observed_mask, plot_to_pixel, preset_mask
from .models import ModelPicker
from .plots import CHAIN_COLORS, PLOT_PERIOD, LiveImage, diverging_image, gray_image, image_element, predicted_steps
from .sources import ImageSource
from .tasks import BackgroundWorker
from .text import elapsed_text, explanation, fmt_number, notify
from .toolview import ToolView

MEASUREMENTS = ("inpainting (draw the mask)", "random pixels", "super-resolution", "spectral low-pass", "random basis")
HOLE_COLOR = "#e4572e"
CANVAS_PX = 360
PANEL_PX = 190

EXPLANATION = r"""
A linear measurement keeps $m$ numbers $x_c = M^\top x$ of an image $x$ of $N$ pixels ($M$ is $N\times m$
with orthonormal columns). Everything orthogonal to the columns of $M$ is lost; the **pseudo-inverse**
$M x_c$ fills it with zeros. Algorithm 2 fills it from the prior implicit in the denoiser: each step
moves along the denoiser's residual $f(y) = \hat x(y) - y$ off the measured subspace and towards the
measurements on it,

$$d_t = (I - MM^\top) f(y_{t-1}) + M\,(x_c - M^\top y_{t-1}),\qquad y_t = y_{t-1} + h_t d_t + \gamma_t z_t,$$

with the same step size $h_t$, noise injection $\gamma_t$ (set by $\beta$) and stopping level $\sigma_L$ as
the sampler. Different seeds give different **samples** consistent with the measurements; their
**mean** approximates the MMSE estimate (higher PSNR, blurrier). PSNR $=10\log_{10}(1/\mathrm{MSE})$ dB
and SSIM (Wang et al. 2004) are measured against the original.

For inpainting, paint the pixels to **hide** with the brush (drag on the image) or rectangles
(drag a box); *Restore* mode paints pixels back. (Kadkhodaie & Simoncelli 2021.)
"""


class InverseView(ToolView):
    """Solve a linear inverse problem with Algorithm 2 and compare samples to the pseudo-inverse.

    The mask of the inpainting measurement is drawn on the image: ``tool`` 'brush' (freehand, radius
    ``brush_radius`` pixels) or 'rectangle'; ``paint_mode`` 'hide' adds pixels to the holes,
    'restore' removes them; :meth:`clear_mask`, :meth:`invert_mask`, :meth:`preset` edit it as a whole.
    ``measurement`` is the operator the next run uses (built from the current settings).
    """

    title = "Inverse problems (Algorithm 2)"

    kind = param.Selector(objects=list(MEASUREMENTS), default=MEASUREMENTS[0], doc="Measurement")
    fraction = param.Number(default=0.1, bounds=(0.01, 1.0), step=0.01, doc="p: fraction of values kept")
    factor = param.Selector(objects=[2, 4, 8], default=4, doc="Super-resolution factor")
    measurement_seed = param.Integer(default=0, bounds=(0, None), doc="Seed of the random measurement")
    tool = param.Selector(objects=["brush", "rectangle"], default="brush", doc="Drawing tool")
    paint_mode = param.Selector(objects=["hide pixels", "restore pixels"], default="hide pixels")
    brush_radius = param.Number(default=3.0, bounds=(0.5, 32.0), step=0.5, doc="Brush radius (pixels)")
    beta = param.Number(default=0.1, bounds=(0.01, 1.0), step=0.01, doc="β: fraction of noise removed per step")
    h0 = param.Number(default=0.01, bounds=(0.001, 0.5), step=0.001, doc="h₀: initial step size")
    sigma0 = param.Number(default=1.0, bounds=(0.05, 2.0), step=0.05)
    sigma_L = param.Number(default=0.01, bounds=(0.002, 0.2), step=0.001)
    samples = param.Integer(default=3, bounds=(1, 6), doc="Number of samples (chains)")
    seed = param.Integer(default=0, bounds=(0, None), doc="Seed of the sampler's noise")
    max_steps = param.Integer(default=2000, bounds=(1, 100_000))
    render_period = param.Integer(default=120, bounds=(20, 2000))

    def __init__(self, model: str | None = None, **params: Any):
        source_params = {k: params.pop(k) for k in ("size", "builtin", "source", "synthetic") if k in params}
        super().__init__(**params)
        self.picker = ModelPicker(model=model)
        self.source = ImageSource(**source_params)
        self.controls = RunControls(play_label="▶ Run Algorithm 2")
        self.worker = BackgroundWorker(self._render_state, period=self.render_period, name="inverse")
        self.sampler: explorer.Sampler | None = None
        self.measurement: meas.Measurement | None = None
        self.x_c: torch.Tensor | None = None
        self.baseline: np.ndarray | None = None
        self.metrics: dict[str, tuple[float, float]] = {}
        self.error = ""
        self._dirty = True
        self._elapsed = 0.0
        self._play_started: float | None = None
        self._hist_t: list[int] = []
        self._hist_sigma: list[np.ndarray] = []
        self._plots_at = 0.0
        n = int(self.source.size)
        self.drawing = MaskDrawing((n, n), base=preset_mask((n, n), "centre square"))

        # widgets and panes
        self._alert = pn.pane.Alert("", alert_type="danger", visible=False, sizing_mode="stretch_width")
        self._stats = pn.pane.Markdown("", sizing_mode="stretch_width", css_classes=["explorer-number"], margin=(0, 10))
        self._describe = pn.pane.Markdown("", sizing_mode="stretch_width", styles={"color": "#444"}, margin=(0, 10))
        self._metrics_md = pn.pane.Markdown("", sizing_mode="stretch_width", margin=(0, 10))
        self._canvas = pn.pane.HoloViews(None, margin=(0, 5), css_classes=["explorer-canvas"])
        self._top = pn.FlexBox(margin=0, sizing_mode="stretch_width")
        self._samples_box = pn.FlexBox(margin=0, sizing_mode="stretch_width")
        self._sigma_pane = pn.pane.HoloViews(None, sizing_mode="stretch_width", min_height=220)
        self._draw_tools = self._make_draw_tools()

        self.controls.on("step", self.step)
        self.controls.on("play", self.play)
        self.controls.on("pause", self.pause)
        self.controls.on("reset", self.reset)
        self.picker.param.watch(lambda _e: self._invalidate(), "model")
        self.source.param.watch(self._image_changed, "image")
        self._build_all()

    # ------------------------------------------------------------------ set-up
    @property
    def image(self) -> np.ndarray:
        return self.source.image

    @property
    def size(self) -> int:
        return int(self.image.shape[0])

    def make_measurement(self) -> meas.Measurement:
        """The operator M of the current settings (for inpainting: the drawn mask, True = observed)."""
        shape = (1, self.size, self.size)
        if self.kind == MEASUREMENTS[0]:
            return meas.Inpainting(torch.from_numpy(observed_mask(self.drawing.holes)))
        if self.kind == "random pixels":
            return meas.RandomPixels(shape, float(self.fraction), seed=int(self.measurement_seed))
        if self.kind == "super-resolution":
            return meas.SuperResolution(shape, int(self.factor))
        if self.kind == "spectral low-pass":
            return meas.SpectralLowPass(shape, float(self.fraction))
        return meas.RandomBasis(shape, float(self.fraction), seed=int(self.measurement_seed))

    def _update_measurement(self) -> None:
        """Rebuild M, x_c = Mᵀx and the pseudo-inverse (cheap; no denoiser call)."""
        self._set_error("")
        try:
            self.measurement = self.make_measurement()
        except ValueError as e:
            self.measurement, self.x_c, self.baseline = None, None, None
            self._set_error(f"Cannot build the measurement: {e}")
            return
        x = torch.from_numpy(self.image)[None, None]
        self.x_c = self.measurement.forward(x)
        self.baseline = self.measurement.pseudo_inverse(self.x_c)[0, 0].numpy()
        self._describe.object = f"**Measurement:** {self.measurement.describe()}" + self._degenerate_note()

    def _degenerate_note(self) -> str:
        """A note when the measurement keeps every value (nothing to infer) or none (plain synthesis)."""
        m, n = self.x_c.shape[-1], int(np.prod(self.measurement.shape))
        if m == n:
            return " — nothing is hidden: Algorithm 2 returns the image itself (draw a hole to inpaint)."
        if m == 0:
            return " — everything is hidden: Algorithm 2 is then plain synthesis from the prior (Algorithm 1)."
        return ""

    def _set_error(self, text: str) -> None:
        self.error = text
        self._alert.object = text
        self._alert.visible = bool(text)
        if text:
            notify(text)

    def build_sampler(self) -> explorer.Sampler | None:
        """A fresh Algorithm-2 sampler for the current image, measurement and parameters."""
        handle = self.picker.handle
        if handle is None:
            self._set_error(self.picker.error)
            return None
        if self.measurement is None:
            self._update_measurement()
            if self.measurement is None:
                return None
        try:
            sampler = explorer.Sampler(
                handle, shape=(int(self.samples), 1, self.size, self.size), measurement=self.measurement,
                x_c=self.x_c, beta=float(self.beta), h0=float(self.h0), sigma0=float(self.sigma0),
                sigma_L=float(self.sigma_L), seed=int(self.seed), max_steps=int(self.max_steps), snapshot_every=None)
        except ValueError as e:
            self._set_error(f"Cannot start Algorithm 2: {e}")
            return None
        self._set_error("")
        return sampler

    def _invalidate(self, *_: Any) -> None:
        """The problem changed: stop a run, recompute the measurement, forget the samples."""
        self.worker.stop(wait=True)
        self._dirty = True
        self.sampler = None
        self._hist_t, self._hist_sigma = [], []
        self._elapsed = 0.0
        self._update_measurement()
        self._refresh_static()
        self._render_samples(None)
        self.controls.progress = 0
        steps = predicted_steps(self.sigma0, self.h0, self.beta, self.sigma_L, self.max_steps)
        self.controls.status = f"Ready: {self.samples} sample(s), ≈{steps} steps predicted. Press Step or Run."

    @param.depends("kind", "fraction", "factor", "measurement_seed", "beta", "h0", "sigma0", "sigma_L", "samples",
                   "seed", "max_steps", watch=True)
    def _params_changed(self) -> None:
        self._invalidate()
        self._draw_tools.visible = self.kind == MEASUREMENTS[0]

    def _image_changed(self, event: param.parameterized.Event) -> None:
        n = self.size
        if self.drawing.shape != (n, n):
            old = self.drawing.holes
            # keep the drawn mask, resampled to the new size (nearest neighbour)
            idx = (np.arange(n) * old.shape[0] // n)
            self.drawing = MaskDrawing((n, n), base=old[np.ix_(idx, idx)])
        self._build_canvas()
        self._invalidate()

    # ------------------------------------------------------------------ drawing
    def _make_draw_tools(self) -> pn.Column:
        w = dict(sizing_mode="stretch_width")
        tool = pn.widgets.RadioButtonGroup.from_param(self.param.tool, color="primary", variant="outline", **w)
        mode = pn.widgets.RadioButtonGroup.from_param(self.param.paint_mode, color="primary", variant="outline", **w)
        radius = pn.widgets.FloatSlider.from_param(self.param.brush_radius, label="Brush radius (pixels)", **w)
        clear = pn.widgets.Button(label="Clear", color="light", **w)
        invert = pn.widgets.Button(label="Invert", color="light", **w)
        centre = pn.widgets.Button(label="Square", color="light", **w)
        clear.on_click(lambda _e: self.clear_mask())
        invert.on_click(lambda _e: self.invert_mask())
        centre.on_click(lambda _e: self.preset("centre square"))
        return pn.Column(pn.pane.Markdown("**Draw the mask** (on the image; red = hidden)", margin=(10, 10, 0, 10)),
                         tool, mode, radius, pn.Row(clear, invert, centre, **w), **w)

    @property
    def holes(self) -> np.ndarray:
        """Boolean (H, W): True where the inpainting mask hides a pixel."""
        return self.drawing.holes

    def _mask_edited(self) -> None:
        self._holes_pipe.send(self._holes_layer())
        if self.kind == MEASUREMENTS[0]:
            self._invalidate()

    def clear_mask(self) -> None:
        self.drawing.clear()
        self._mask_edited()

    def invert_mask(self) -> None:
        self.drawing.invert()
        self._mask_edited()

    def preset(self, kind: str) -> None:
        self.drawing.set(preset_mask(self.drawing.shape, kind))
        self._mask_edited()

    def _mode(self) -> str:
        return PAINT if self.paint_mode == "hide pixels" else ERASE

    def add_stroke(self, xs: Any, ys: Any) -> None:
        """A brush stroke in plot coordinates (what the FreehandDraw stream reports)."""
        cols, rows = plot_to_pixel(xs, ys, self.size)
        if cols.size == 0:
            return
        self.drawing.add(Stroke(list(cols), list(rows), float(self.brush_radius), self._mode()))
        self._mask_edited()

    def add_rect(self, x0: float, y0: float, x1: float, y1: float) -> None:
        """A rectangle in plot coordinates (what the BoundsXY stream reports)."""
        (c0, c1), (r0, r1) = plot_to_pixel([x0, x1], [y0, y1], self.size)
        self.drawing.add(Rect(c0, r0, c1, r1, self._mode()))
        self._mask_edited()

    def _on_freehand(self, data: dict[str, Any] | None = None, **_: Any) -> None:
        data = data or {}
        xs, ys = data.get("xs") or [], data.get("ys") or []
        if not xs:
            return
        # num_objects=1: the stream holds the latest stroke (possibly still growing); painting is idempotent
        sx, sy = list(xs[-1]), list(ys[-1])
        if not sx:
            return
        self.add_stroke(sx, sy)

    def _on_bounds(self, bounds: tuple[float, float, float, float] | None = None, **_: Any) -> None:
        if bounds is None or self.tool != "rectangle":
            return
        self.add_rect(*bounds)

    def _holes_layer(self) -> np.ndarray:
        return np.where(self.drawing.holes, 1.0, np.nan).astype(np.float32)

    @param.depends("tool", watch=True)
    def _tool_changed(self) -> None:
        self._build_canvas()

    def _build_canvas(self) -> None:
        """The drawing canvas: the original, the holes in red, the freehand path and a box selection."""
        n = self.size
        img = gray_image(self.image, "Original — draw the pixels to hide", size=CANVAS_PX,
                         tools=["box_select"], toolbar="right")
        self._holes_pipe = hv.streams.Pipe(data=self._holes_layer())
        holes = hv.DynamicMap(lambda data: image_element(data).opts(
            cmap=[HOLE_COLOR], alpha=0.55, clipping_colors={"NaN": (0, 0, 0, 0)}, clim=(0, 1), xaxis=None,
            yaxis=None), streams=[self._holes_pipe])
        path = hv.Path([]).opts(line_color="#ffffff", line_alpha=0.8, line_width=1.5, xaxis=None, yaxis=None)
        self.freehand = hv.streams.FreehandDraw(source=path, num_objects=1, styles={})
        self.freehand.add_subscriber(self._on_freehand)
        self.box = hv.streams.BoundsXY(source=img, bounds=None)
        self.box.add_subscriber(self._on_bounds)
        active = ["freehand_draw"] if self.tool == "brush" else ["box_select"]
        canvas = (img * holes * path).opts(
            hv.opts.Overlay(active_tools=active, toolbar="right", xlim=(0, n), ylim=(0, n)))
        self._canvas.object = canvas

    # ------------------------------------------------------------------ panels
    def _measurement_image(self) -> hv.Element:
        """What was measured, in picture form."""
        m = self.measurement
        n = self.size
        if m is None:
            return gray_image(np.full((n, n), np.nan, np.float32), "Measurement", size=PANEL_PX)
        if isinstance(m, meas.Inpainting):
            shown = np.where(m.mask[0].numpy(), self.image, np.nan).astype(np.float32)
            return gray_image(shown, f"Measured pixels ({100 * m.m / m.n:.0f}%)", size=PANEL_PX,
                              clipping_colors={"NaN": HOLE_COLOR})
        if isinstance(m, meas.SuperResolution):
            s = m.factor
            low = (self.x_c.reshape(n // s, n // s) / s).numpy()
            return gray_image(low, f"Low-resolution image ({n // s}×{n // s})", size=PANEL_PX)
        if isinstance(m, meas.SpectralLowPass):
            coeffs = meas.dct2(torch.from_numpy(self.image)[None, None].double())[0, 0]
            kept = meas.dct2(m.adjoint(torch.ones(1, m.m, dtype=torch.float64)))[0, 0].abs() > 0.5
            logc = torch.log10(coeffs.abs() + 1e-6).numpy()
            logc = np.where(kept.numpy(), logc, np.nan)
            return diverging_image(logc.astype(np.float32), "log₁₀|DCT coefficient| kept", size=PANEL_PX,
                                   cmap="viridis", clim=(float(np.nanmin(logc)), float(np.nanmax(logc))),
                                   clipping_colors={"NaN": "#eeeeee"}, colorbar=False)
        v = self.x_c[0].numpy()
        side = int(math.ceil(math.sqrt(v.size)))
        grid = np.full(side * side, np.nan, np.float32)
        grid[: v.size] = v
        return diverging_image(grid.reshape(side, side), f"The {v.size} measured numbers", size=PANEL_PX,
                               clipping_colors={"NaN": "#eeeeee"}, colorbar=False)

    def _refresh_static(self) -> None:
        """Original, measurement and pseudo-inverse panels (they change only with the problem)."""
        n = self.size
        panels = [pn.pane.HoloViews(self._measurement_image(), margin=(0, 4))]
        if self.baseline is not None:
            title = "Pseudo-inverse M x_c"
            panels.append(pn.pane.HoloViews(gray_image(self.baseline, title, size=PANEL_PX), margin=(0, 4)))
        if self.kind != MEASUREMENTS[0]:
            panels.insert(0, pn.pane.HoloViews(gray_image(self.image, "Original", size=PANEL_PX), margin=(0, 4)))
        self._top[:] = panels
        self.metrics = {}
        if self.baseline is not None:
            self.metrics["pseudo-inverse"] = (psnr(self.baseline, self.image), ssim(self.baseline, self.image))
        self._build_samples(n)
        self._update_metrics_table()

    def _build_samples(self, n: int) -> None:
        self._sample_panes = [LiveImage((n, n), f"Sample {i + 1}: x̂(y_t)", size=PANEL_PX)
                              for i in range(int(self.samples))]
        self._mean_pane = LiveImage((n, n), f"Mean of the {self.samples} samples", size=PANEL_PX)
        items = list(self._sample_panes) + ([self._mean_pane] if int(self.samples) > 1 else [])
        self._samples_box[:] = items
        self._sigma_pipe = hv.streams.Pipe(data=dict(t=np.zeros(0), sigma=np.zeros((0, int(self.samples)))))
        self._sigma_pane.object = hv.DynamicMap(self._sigma_plot, streams=[self._sigma_pipe])

    def _sigma_plot(self, data: dict[str, Any]) -> hv.Overlay:
        steps = min(int(self.max_steps), predicted_steps(self.sigma0, self.h0, self.beta, self.sigma_L,
                                                         self.max_steps) + 5)
        pred = explorer.sampling.predicted_sigmas(float(self.sigma0), float(self.h0), float(self.beta), steps).numpy()
        layers = [hv.Curve((np.arange(1, steps + 2), pred), "iteration t", "σ_t", label="predicted σ̄ₜ").opts(
            color="black", line_dash="dashed")]
        for j in range(int(self.samples)):
            s = data["sigma"][:, j] if data["sigma"].size else np.zeros(0)
            layers.append(hv.Curve((data["t"], s), "iteration t", "σ_t", label=f"sample {j + 1}").opts(
                color=CHAIN_COLORS[j % len(CHAIN_COLORS)], line_width=2))
        return hv.Overlay(layers).opts(
            logy=True, responsive=True, min_height=220, show_grid=True, legend_position="top_right",
            xlabel="iteration t", ylabel="σ_t (noise std, log)", toolbar=None,
            title="Effective noise level σ_t", ylim=(max(float(self.sigma_L) * 0.5, 1e-4), float(self.sigma0) * 1.6),
            xlim=(0, steps + 1), framewise=False)

    def _update_metrics_table(self) -> None:
        if not self.metrics:
            self._metrics_md.object = ""
            return
        rows = ["| image | PSNR (dB, vs original) | SSIM (vs original) |", "|---|---|---|"]
        for k, (p, s) in self.metrics.items():
            rows.append(f"| {k} | {fmt_number(p, 4)} | {s:.3f} |")
        self._metrics_md.object = "\n".join(rows)

    def _render_samples(self, state: Any) -> None:
        if state is None:
            return
        xh = state.x_hat.detach().to("cpu", torch.float32).numpy()[:, 0]
        base = {k: v for k, v in self.metrics.items() if k == "pseudo-inverse"}
        for j in range(min(len(self._sample_panes), xh.shape[0])):
            self._sample_panes[j].update(xh[j])
            base[f"sample {j + 1}"] = (psnr(xh[j], self.image), ssim(xh[j], self.image))
        if xh.shape[0] > 1:
            mean = xh.mean(axis=0)
            self._mean_pane.update(mean)
            base["mean of samples"] = (psnr(mean, self.image), ssim(mean, self.image))
        self.metrics = base
        self._update_metrics_table()

    def _render_state(self, state: Any) -> None:
        """Show a sampler state (on the event loop)."""
        if state is None:
            return
        now = time.perf_counter()
        with pn.io.hold():
            self._render_samples(state)
            if not self.worker.running or now - self._plots_at >= PLOT_PERIOD:
                self._push_sigma()
                self._plots_at = now
            sig = state.sigma.detach().cpu().numpy()
            self._render_stats(state, sig)

    def _push_sigma(self) -> None:
        n = min(len(self._hist_t), len(self._hist_sigma))  # the worker may append meanwhile
        self._sigma_pipe.send(dict(t=np.asarray(self._hist_t[:n], float),
                                   sigma=np.stack(self._hist_sigma[:n]) if n
                                   else np.zeros((0, int(self.samples)))))

    def _render_stats(self, state: Any, sig: np.ndarray) -> None:
        lo = math.log(self.sigma0) - math.log(self.sigma_L)
        frac = (math.log(self.sigma0) - math.log(max(float(np.nanmax(sig)), 1e-12))) / lo if lo > 0 else 0
        self.controls.progress = int(np.clip(100 * frac, 0, 100)) if state.t else 0
        wall = self._elapsed + (time.perf_counter() - self._play_started if self._play_started else 0.0)
        self._stats.object = (f"**step t = {state.t}** · wall time {elapsed_text(wall)} · "
                              f"max σ_t = {fmt_number(float(np.nanmax(sig)))} (noise std, [0,1] units) · "
                              f"h_t = {fmt_number(state.h)}")
        if self.worker.running:
            self.controls.status = f"Running Algorithm 2… step {state.t}"

    # ------------------------------------------------------------------ running
    def _ensure_sampler(self) -> bool:
        if self.sampler is None or self._dirty:
            if self.measurement is None:
                self._update_measurement()
            self.sampler = self.build_sampler()
            self._dirty = False
            self._hist_t, self._hist_sigma = [], []
        return self.sampler is not None

    def _advance(self) -> Any:
        was_running = np.asarray([s == "running" for s in self.sampler.status])
        state = self.sampler.step()
        sig = state.sigma.detach().to("cpu", torch.float64).numpy().copy()
        sig[~was_running] = np.nan
        self._hist_t.append(state.t)
        self._hist_sigma.append(sig)
        return state

    def step(self) -> None:
        if self.worker.running or not self._ensure_sampler():
            return
        if self.sampler.done:
            self.controls.status = "Finished. Change the problem or press Reset to run again."
            return
        t0 = time.perf_counter()
        state = self._advance()
        self._elapsed += time.perf_counter() - t0
        self._render_state(state)
        if self.sampler.done:
            self._finished()

    def play(self) -> None:
        if self.worker.running or not self._ensure_sampler():
            return
        if self.sampler.done:
            self.controls.status = "Finished. Change the problem or press Reset to run again."
            return
        sampler = self.sampler
        self._play_started = time.perf_counter()
        self.controls.running = True

        def work(stop: threading.Event, publish) -> None:
            while not stop.is_set() and not sampler.done and sampler is self.sampler:
                publish(self._advance())

        self.worker.period = self.render_period
        self.worker.start(work, on_done=self._play_done)

    def pause(self) -> None:
        self.worker.stop(wait=True)

    def reset(self) -> None:
        self._invalidate()

    def _play_done(self, error: BaseException | None) -> None:
        if self._play_started is not None:
            self._elapsed += time.perf_counter() - self._play_started
            self._play_started = None
        self.controls.running = False
        if error is not None:
            self.controls.status = f"⚠️ Algorithm 2 failed: {type(error).__name__}: {error}"
            notify(f"Algorithm 2 failed: {error}")
            return
        if self.sampler is None:
            return
        self._render_state(self.sampler.state)
        if self.sampler.done:
            self._finished()
        else:
            self.controls.status = f"Paused at step {self.sampler.t}."

    def _finished(self) -> None:
        self.controls.progress = 100
        best = max((v for k, v in self.metrics.items() if k != "pseudo-inverse"), default=None, key=lambda v: v[0])
        base = self.metrics.get("pseudo-inverse")
        gain = f" Best PSNR {best[0]:.2f} dB vs {base[0]:.2f} dB for the pseudo-inverse." if best and base else ""
        self.controls.status = (f"Finished after {self.sampler.t} steps ({elapsed_text(self._elapsed)}): "
                                f"{', '.join(sorted(set(self.sampler.status)))}.{gain}")

    # ------------------------------------------------------------------ downloads
    def _arrays(self) -> dict[str, Any]:
        arrays: dict[str, Any] = dict(original=self.image, pseudo_inverse=self.baseline,
                                      x_c=None if self.x_c is None else self.x_c.numpy())
        if isinstance(self.measurement, meas.Inpainting):
            arrays["observed_mask"] = self.measurement.mask[0].numpy()
        if self.sampler is not None:
            xh = self.sampler.state.x_hat.detach().cpu().numpy()[:, 0]
            arrays.update(samples=xh, mean=xh.mean(axis=0), t=np.asarray(self._hist_t),
                          sigma=np.stack(self._hist_sigma) if self._hist_sigma else np.zeros((0, 0)))
        return arrays

    def _png(self) -> io.BytesIO:
        a = self._arrays()
        panels: list[tuple] = [("original", a["original"])]
        if a.get("pseudo_inverse") is not None:
            panels.append(("pseudo-inverse", a["pseudo_inverse"]))
        if "observed_mask" in a:
            panels.insert(1, ("measured pixels", np.where(a["observed_mask"], a["original"], 0.0)))
        for j, s in enumerate(a.get("samples", [])):
            panels.append((f"sample {j + 1}", s))
        if "mean" in a:
            panels.append(("mean", a["mean"]))
        return png_bytes(panels, columns=min(len(panels), 4))

    def _npz(self) -> io.BytesIO:
        params = dict(model=self.picker.model, image=self.source.label, size=self.size, measurement=self.kind,
                      describe=None if self.measurement is None else self.measurement.describe(),
                      fraction=self.fraction, factor=self.factor, measurement_seed=self.measurement_seed,
                      beta=self.beta, h0=self.h0, sigma0=self.sigma0, sigma_L=self.sigma_L, samples=self.samples,
                      seed=self.seed, metrics={k: dict(psnr=v[0], ssim=v[1]) for k, v in self.metrics.items()})
        return npz_bytes(self._arrays(), params)

    def _basename(self) -> str:
        return f"inverse_{self.kind.split(' ')[0]}_{self.source.label}".replace(" ", "_").replace("#", "")

    # ------------------------------------------------------------------ layout
    def _build_all(self) -> None:
        self._build_canvas()
        self._invalidate()
        self._draw_tools.visible = self.kind == MEASUREMENTS[0]

    def sidebar(self) -> pn.Column:
        w = dict(sizing_mode="stretch_width")

        @pn.depends(self.param.kind)
        def measurement_params(kind: str) -> pn.viewable.Viewable:
            if kind in ("random pixels", "spectral low-pass", "random basis"):
                items = [pn.widgets.FloatSlider.from_param(self.param.fraction, label="p (fraction of values kept)", **w)]
                if kind != "spectral low-pass":
                    items.append(pn.widgets.IntInput.from_param(self.param.measurement_seed, label="Measurement seed", **w))
                return pn.Column(*items, **w)
            if kind == "super-resolution":
                return pn.widgets.RadioButtonGroup.from_param(self.param.factor, color="primary", variant="outline", **w)
            return pn.Spacer(height=0)

        return pn.Column(
            self.picker, self.source,
            pn.pane.Markdown("**Measurement**", margin=(10, 10, 0, 10)),
            pn.widgets.Select.from_param(self.param.kind, label="Measurement M", **w),
            measurement_params, self._draw_tools,
            pn.pane.Markdown("**Algorithm 2**", margin=(10, 10, 0, 10)),
            pn.widgets.FloatSlider.from_param(self.param.beta, label="β (fraction of noise removed per step)", **w),
            pn.widgets.FloatSlider.from_param(self.param.h0, label="h₀ (initial step size)", format="0.000", **w),
            pn.widgets.FloatSlider.from_param(self.param.sigma_L, label="σ_L (stop at this noise std)", format="0.000", **w),
            pn.Row(pn.widgets.IntInput.from_param(self.param.samples, label="Samples", **w),
                   pn.widgets.IntInput.from_param(self.param.seed, label="Seed", **w), **w),
            **w)

    def main(self) -> pn.Column:
        return pn.Column(
            pn.Card(self.controls, self._stats, self._alert, hide_header=True, sizing_mode="stretch_width"),
            pn.Row(pn.Column(self._canvas, visible=self.param.kind.rx() == MEASUREMENTS[0]),
                   pn.Column(self._describe, self._top, self._samples_box, sizing_mode="stretch_width"),
                   sizing_mode="stretch_width"),
            pn.Row(pn.Column(self._metrics_md, min_width=380), self._sigma_pane, sizing_mode="stretch_width"),
            downloads(self._png, self._npz, self._basename),
            explanation(EXPLANATION, title="How Algorithm 2 solves inverse problems"),
            sizing_mode="stretch_width")
