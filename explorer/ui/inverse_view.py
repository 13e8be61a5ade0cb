"""InverseView: linear inverse problems with the prior implicit in a denoiser (Algorithm 2), live.

Pick an image and a measurement (inpainting with a mask drawn on the image, random pixels,
super-resolution, spectral low-pass, compressive sensing); the view shows the measurement, the
pseudo-inverse baseline M x_c, and several samples of Algorithm 2 as they converge, their mean, and
PSNR/SSIM of each against the original. The problem and the run are an
:class:`~explorer.ui.inverse_state.InverseRun` (``view.run``); this module wires it to widgets. The mask
drawing is rasterised by the pure functions of :mod:`explorer.ui.mask`.
"""
from __future__ import annotations

import io
import time
from typing import Any

import holoviews as hv
import numpy as np
import panel as pn
import param
from .controls import RunControls, bounded_input
from .export import downloads, npz_bytes, png_bytes
from .inverse_state import INPAINTING, MEASUREMENTS, PROBLEM_PARAMS, InverseRun
from .inverse_uncertainty import EXPLANATION as UNCERTAINTY_TEXT
from .inverse_uncertainty import ReconstructionUncertainty
from .mask import ERASE, PAINT, Rect, Stroke, plot_to_pixel, preset_mask
from .models import ModelPicker
from .plots import PLOT_PERIOD, LiveImage, diverging_image, gray_image, image_element
from .run_plots import show_sigma, sigma_curves
from .sampler_docs import INVERSE_EXPLANATION as EXPLANATION
from .sampler_state import DEFAULT_SIZE, follow_size, size_warning, sizes_for, training_size
from .sources import ImageSource
from .tasks import BackgroundWorker
from .text import elapsed_text, explanation, fmt_number, notify, show_alert
from .toolview import ToolView

__all__ = ["InverseView", "MEASUREMENTS"]
HOLE_COLOR = "#e4572e"
CANVAS_PX = 360
PANEL_PX = 190
RUN_PARAMS = ["beta", "h0", "sigma0", "sigma_L", "chains", "seed", "max_steps"]


class InverseView(ToolView):
    """Solve a linear inverse problem with Algorithm 2 and compare samples to the pseudo-inverse.

    ``run`` (an :class:`InverseRun`) holds the problem (``kind``, ``fraction``, ``factor``,
    ``measurement_seed``, the drawn mask) and the run (β, h₀, σ₀, σ_L, ``chains``, seed, max_steps; ``samples=``
    is accepted for ``chains``). The mask is drawn on the image: ``tool`` 'brush' (radius ``brush_radius``
    pixels) or 'rectangle'; ``paint_mode`` 'hide pixels' adds to the holes, 'restore pixels' removes;
    :meth:`clear_mask`, :meth:`invert_mask`, :meth:`preset` edit it as a whole.
    """

    title = "Inverse problems (Algorithm 2)"

    tool = param.Selector(objects=["brush", "rectangle"], default="brush", doc="Drawing tool")
    paint_mode = param.Selector(objects=["hide pixels", "restore pixels"], default="hide pixels")
    brush_radius = param.Number(default=3.0, bounds=(0.5, 32.0), step=0.5, doc="Brush radius (pixels)")
    render_period = param.Integer(default=120, bounds=(20, 2000))

    def __init__(self, model: str | None = None, **params: Any):
        if "samples" in params:
            params["chains"] = params.pop("samples")
        source_params = {k: params.pop(k) for k in ("size", "builtin", "source", "synthetic") if k in params}
        run_params = {k: params.pop(k) for k in list(params) if k in InverseRun.param and k != "name"}
        super().__init__(**params)
        self.picker = ModelPicker(model=model)
        handle = self.picker.handle
        self._default_size = training_size(handle) or DEFAULT_SIZE
        source_params.setdefault("size", self._default_size)
        self.source = ImageSource(sizes=sizes_for(handle), **source_params)
        self.run = InverseRun(self.source.image, **run_params)
        self.controls = RunControls(play_label="▶ Run Algorithm 2")
        self.worker = BackgroundWorker(self._render_state, period=self.render_period, name="inverse")
        self._plots_at = 0.0

        self.alert = pn.pane.Alert("", alert_type="danger", visible=False, sizing_mode="stretch_width")
        self.size_alert = pn.pane.Alert("", alert_type="warning", visible=False, sizing_mode="stretch_width")
        self.stats = pn.pane.Markdown("", sizing_mode="stretch_width", css_classes=["explorer-number"], margin=(0, 10))
        self.description = pn.pane.Markdown("", sizing_mode="stretch_width", styles={"color": "#444"}, margin=(0, 10))
        self.metrics_table = pn.pane.Markdown("", sizing_mode="stretch_width", margin=(0, 10))
        self._canvas = pn.pane.HoloViews(None, margin=(0, 5), css_classes=["explorer-canvas"])
        # wrapping Rows, not pn.FlexBox: in apps/main.py its figures never finished, so later updates were dropped
        self._top, self._samples_box = (pn.Row(margin=0, sizing_mode="stretch_width", styles={"flex-wrap": "wrap"})
                                        for _ in range(2))
        self._sigma_pane = pn.Column(sizing_mode="stretch_width", min_height=220, margin=0)
        self._draw_tools = self._make_draw_tools()
        self.uncertainty = ReconstructionUncertainty(size=PANEL_PX)
        for kind in ("step", "play", "pause", "reset"):
            self.controls.on(kind, getattr(self, kind))
        self.picker.param.watch(lambda _e: self._model_changed(), "model")
        self.source.param.watch(self._image_changed, "image")
        self.run.param.watch(lambda *_e: self._rebuild(self.invalidate), PROBLEM_PARAMS + RUN_PARAMS)
        self._build_canvas()
        self.invalidate()

    # ------------------------------------------------------------------ set-up
    sampler = property(lambda self: self.run.sampler, doc="The live explorer.Sampler (None before a run)")

    image = property(lambda self: self.run.image, doc="The clean image")
    size = property(lambda self: self.run.size, doc="Its side in pixels")

    measurement = property(lambda self: self.run.measurement, doc="The operator M of the next run")

    @property
    def holes(self) -> np.ndarray:
        """Boolean (H, W): True where the inpainting mask hides a pixel."""
        return self.run.holes

    @property
    def error(self) -> str:
        """What went wrong with the problem or the last start ('' if nothing)."""
        return self.alert.object if self.alert.visible else ""

    def _set_error(self, text: str) -> None:
        show_alert(self.alert, text)
        if text:
            notify(text)

    def invalidate(self) -> None:
        """The problem changed: stop a run, recompute the measurement, forget the samples and their statistics."""
        self.worker.stop(wait=True)
        self.uncertainty.clear()
        self.run.update_measurement()
        self._set_error(self.run.problem_error)
        self.description.object = self.run.describe()
        handle = self.picker.handle
        show_alert(self.size_alert, size_warning(handle, self.size) if handle is not None else "")
        self.run.handle = handle
        self._refresh_static()
        self.stats.object = ""  # the last run's step, time and σ belong to the old problem
        self._draw_tools.visible = self.run.kind == INPAINTING
        self.controls.progress = 0
        r = self.run
        expected = r.expected_time()
        self.controls.status = (f"Ready: {r.chains} sample(s), ≈{r.predicted_steps} steps predicted"
                                + (f" ({expected})" if expected else "") + ". Press Step or Run.")

    def _model_changed(self) -> None:
        """A new model: offer its training size, and follow it unless another size was chosen."""
        handle = self.picker.handle
        self.source.param.size.objects = sizes_for(handle, tuple(self.source.param.size.objects))
        size, self._default_size = follow_size(self.source.size, self._default_size, handle)
        if size != self.source.size:
            self.source.size = size  # a new image: invalidates
        else:
            self._rebuild(self.invalidate)

    def _image_changed(self, event: param.parameterized.Event) -> None:
        self.run.set_image(self.source.image)
        self._rebuild(self._build_canvas)
        self._rebuild(self.invalidate)

    # ------------------------------------------------------------------ drawing
    def _make_draw_tools(self) -> pn.Column:
        w = dict(sizing_mode="stretch_width")
        tool = pn.widgets.RadioButtonGroup.from_param(self.param.tool, color="primary", variant="outline", **w)
        mode = pn.widgets.RadioButtonGroup.from_param(self.param.paint_mode, color="primary", variant="outline", **w)
        radius = pn.widgets.FloatSlider.from_param(self.param.brush_radius, label="Brush radius (pixels)", **w)
        buttons = []
        for label, action in (("Clear", self.clear_mask), ("Invert", self.invert_mask),
                              ("Square", lambda: self.preset("centre square"))):
            b = pn.widgets.Button(label=label, color="light", **w)
            b.on_click(lambda _e, a=action: a())
            buttons.append(b)
        return pn.Column(pn.pane.Markdown("**Draw the mask** (on the image; red = hidden)", margin=(10, 10, 0, 10)),
                         tool, mode, radius, pn.Row(*buttons, **w), **w)

    def _mask_edited(self) -> None:
        self._holes_pipe.send(self._holes_layer())
        if self.run.kind == INPAINTING:
            self.invalidate()

    def clear_mask(self) -> None:
        self.run.drawing.clear()
        self._mask_edited()

    def invert_mask(self) -> None:
        self.run.drawing.invert()
        self._mask_edited()

    def preset(self, kind: str) -> None:
        self.run.drawing.set(preset_mask(self.run.drawing.shape, kind))
        self._mask_edited()

    def _mode(self) -> str:
        return PAINT if self.paint_mode == "hide pixels" else ERASE

    def add_stroke(self, xs: Any, ys: Any) -> None:
        """A brush stroke in plot coordinates (what the FreehandDraw stream reports)."""
        cols, rows = plot_to_pixel(xs, ys, self.size)
        if cols.size:
            self.run.drawing.add(Stroke(list(cols), list(rows), float(self.brush_radius), self._mode()))
            self._mask_edited()

    def add_rect(self, x0: float, y0: float, x1: float, y1: float) -> None:
        """A rectangle in plot coordinates (what the BoundsXY stream reports)."""
        (c0, c1), (r0, r1) = plot_to_pixel([x0, x1], [y0, y1], self.size)
        self.run.drawing.add(Rect(c0, r0, c1, r1, self._mode()))
        self._mask_edited()

    def _on_freehand(self, data: dict[str, Any] | None = None, **_: Any) -> None:
        # num_objects=1: the stream holds the latest stroke (possibly still growing); painting is idempotent
        xs, ys = (data or {}).get("xs") or [], (data or {}).get("ys") or []
        if xs and list(xs[-1]):
            self.add_stroke(list(xs[-1]), list(ys[-1]))

    def _on_bounds(self, bounds: tuple[float, float, float, float] | None = None, **_: Any) -> None:
        if bounds is not None and self.tool == "rectangle":
            self.add_rect(*bounds)

    def _holes_layer(self) -> np.ndarray:
        return np.where(self.run.holes, 1.0, np.nan).astype(np.float32)

    @param.depends("tool", watch=True)
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
        self._canvas.object = (img * holes * path).opts(
            hv.opts.Overlay(active_tools=active, toolbar="right", xlim=(0, n), ylim=(0, n)))

    # ------------------------------------------------------------------ panels
    def _measurement_image(self) -> hv.Element:
        """What was measured, in picture form (titles short enough for the panel width)."""
        style, a, title = self.run.measurement_picture()
        if style in ("gray", "holes"):
            return gray_image(a, title, size=PANEL_PX, **({"clipping_colors": {"NaN": HOLE_COLOR}} if style == "holes" else {}))
        opts = dict(cmap="viridis", clim=(float(np.nanmin(a)), float(np.nanmax(a)))) if style == "log-dct" else {}
        return diverging_image(a, title, size=PANEL_PX, clipping_colors={"NaN": "#eeeeee"}, colorbar=False, **opts)

    def _refresh_static(self) -> None:
        """Original, measurement and pseudo-inverse panels (they change only with the problem)."""
        n, k = self.size, int(self.run.chains)
        panels = [pn.pane.HoloViews(self._measurement_image(), margin=(0, 4))]
        if self.run.baseline is not None:
            panels.append(pn.pane.HoloViews(gray_image(self.run.baseline, "Pseudo-inverse M x_c", size=PANEL_PX),
                                            margin=(0, 4)))
        if self.run.kind != INPAINTING:
            panels.insert(0, pn.pane.HoloViews(gray_image(self.image, "Original", size=PANEL_PX), margin=(0, 4)))
        self._top[:] = panels
        self.sample_images = [LiveImage((n, n), f"Sample {i + 1}: x̂(y_t)", size=PANEL_PX) for i in range(k)]
        self.mean_image = LiveImage((n, n), f"Mean of the {k} samples", size=PANEL_PX)
        items = list(self.sample_images) + ([self.mean_image] if k > 1 else [])
        self._samples_box[:] = [pn.Column(*[pn.Row(*items[i:i + 3], margin=0) for i in range(0, len(items), 3)], margin=0)]
        self._build_sigma_plot()
        self._update_metrics_table()

    def _build_sigma_plot(self) -> None:
        """σ_t of every sample against the designed schedule σ̄_t (the x-range grows with the run; the
        y-range never flips: σ_L > σ₀ is refused with a message)."""
        self.sigma_plot = sigma_curves(self.run, "Effective noise level σ_t", "σ_t (noise std, log)",
                                       lambda j: f"sample {j + 1}", min_height=220, width=2)
        self._push_sigma()  # before it is on the page: a model outside the document changes without its lock
        self._sigma_pane[:] = [self.sigma_plot]

    def _push_sigma(self) -> None:
        show_sigma(self.sigma_plot, self.run, self.run.history())

    def _update_metrics_table(self) -> None:
        rows = ["| image | PSNR (dB, vs original) | SSIM (vs original) |", "|---|---|---|"]
        rows += [f"| {k} | {fmt_number(p, 4)} | {s:.3f} |" for k, (p, s) in self.run.metrics.items()]
        self.metrics_table.object = "\n".join(rows) if self.run.metrics else ""

    def _render_state(self, state: Any) -> None:
        """Show a sampler state (on the event loop)."""
        if state is None:
            return
        now = time.perf_counter()
        with pn.io.hold():
            xh = self.run.score(state)
            for pane, x in zip(self.sample_images, xh):
                pane.update(x)
            if xh.shape[0] > 1:
                self.mean_image.update(xh.mean(axis=0))
            self._update_metrics_table()
            if not self.worker.running or now - self._plots_at >= PLOT_PERIOD:
                self._push_sigma()
                self._plots_at = now
            self.controls.progress = self.run.progress(state)
            self.stats.object = (f"**step t = {state.t}** · wall time {elapsed_text(self.run.elapsed())} · "
                                 f"max σ_t = {fmt_number(self.run.max_sigma(state))} (noise std, [0,1] units) · "
                                 f"h_t = {fmt_number(state.h)}")
            if self.worker.running:
                self.controls.status = f"Running Algorithm 2… step {state.t}"

    # ------------------------------------------------------------------ running
    def _ready(self) -> bool:
        """A sampler to step (built on first use after a change); False, with the reason shown, if none."""
        if self.worker.running:
            return False
        if self.sampler is None:
            handle = self.picker.handle
            if self.run.build_for(handle) is None:
                self._set_error(self.picker.error if handle is None else self.run.error)
                return False
            self._set_error("")
        if self.sampler.done:
            self.controls.status = "Finished. Change the problem or press Reset to run again."
            return False
        return True

    def step(self) -> None:
        if self._ready():
            self._render_state(self.run.step())
            if self.sampler.done:
                self._finished()

    def play(self) -> None:
        if self._ready():
            self.controls.running = True
            self.worker.period = self.render_period
            self.run.play(start=self.worker.start, on_done=self._play_done)

    def pause(self) -> None:
        self.run.pause()
        self.worker.stop(wait=True)

    def reset(self) -> None:
        self.invalidate()

    def _play_done(self, error: BaseException | None) -> None:
        self.controls.running = False
        if error is not None:
            self.controls.status = f"⚠️ Algorithm 2 failed: {type(error).__name__}: {error}"
            notify(f"Algorithm 2 failed: {error}")
        elif self.sampler is not None:
            self._render_state(self.sampler.state)
            if self.sampler.done:
                self._finished()
            else:
                self.controls.status = f"Paused at step {self.sampler.t}."

    def _finished(self) -> None:
        self.controls.progress = 100
        self.controls.status = self.run.finished_text(elapsed_text(self.run.elapsed()))
        self.uncertainty.submit(self.run, self.picker.handle)

    # ------------------------------------------------------------------ downloads
    def png(self) -> io.BytesIO:
        panels = self.run.png_panels()
        return png_bytes(panels, columns=min(len(panels), 4))

    def npz(self) -> io.BytesIO:
        return npz_bytes({**self.run.arrays(), **self.uncertainty.arrays()}, self.run.run_params(self.picker.model, self.source.label))

    def _basename(self) -> str:
        return f"inverse_{self.run.kind.split(' ')[0]}_{self.source.label}".replace(" ", "_").replace("#", "")

    # ------------------------------------------------------------------ layout
    def sidebar(self) -> pn.Column:
        w, p = dict(sizing_mode="stretch_width"), self.run.param
        fraction = pn.widgets.FloatSlider.from_param(p.fraction, label="p (fraction of values kept)", **w)
        seed = bounded_input(self.run, "measurement_seed", "Measurement seed", **w)
        factor = pn.widgets.RadioButtonGroup.from_param(p.factor, color="primary", variant="outline", **w)

        @pn.depends(p.kind)
        def measurement_params(kind: str) -> pn.viewable.Viewable:
            if kind in ("random pixels", "spectral low-pass", MEASUREMENTS[-1]):
                return pn.Column(fraction, *([seed] if kind != "spectral low-pass" else []), **w)
            return factor if kind == "super-resolution" else pn.Spacer(height=0)

        return pn.Column(
            self.picker, self.source,
            pn.pane.Markdown("**Measurement**", margin=(10, 10, 0, 10)),
            pn.widgets.Select.from_param(p.kind, label="Measurement M", **w),
            measurement_params, self._draw_tools,
            pn.pane.Markdown("**Algorithm 2**", margin=(10, 10, 0, 10)),
            pn.widgets.FloatSlider.from_param(p.beta, label="β (fraction of noise removed per step)", **w),
            pn.widgets.FloatSlider.from_param(p.h0, label="h₀ (initial step size)", format="0.000", **w),
            pn.widgets.FloatSlider.from_param(p.sigma_L, label="σ_L (stop at this noise std)", format="0.000", **w),
            pn.Row(bounded_input(self.run, "chains", "Chains", **w), bounded_input(self.run, "seed", "Seed", **w), **w),
            **w)

    def main(self) -> pn.Column:
        self.uncertainty.bind()
        return pn.Column(
            pn.Card(self.controls, self.stats, self.alert, self.size_alert, hide_header=True, sizing_mode="stretch_width"),
            pn.Row(pn.Column(self._canvas, visible=self.run.param.kind.rx() == INPAINTING),
                   pn.Column(self.description, self._top, self._samples_box, sizing_mode="stretch_width"),
                   sizing_mode="stretch_width"),
            pn.Row(pn.Column(self.metrics_table, min_width=380), self._sigma_pane, sizing_mode="stretch_width"),
            self.uncertainty.layout, downloads(self.png, self.npz, self._basename),
            explanation(EXPLANATION + UNCERTAINTY_TEXT, title="How Algorithm 2 solves inverse problems"),
            sizing_mode="stretch_width")
