"""Toy2DView: the teaching picture in the plane — a prior on a curve, the noisy density p_σ, the
denoiser's arrows y → x̂(y), and the coarse-to-fine sampler's trajectories, animated.

The state (parameters, results, frames) is :class:`~explorer.ui.toy2d_state.Toy2DState`; this module
draws it. The plane is one bokeh figure; the animation runs in the browser: every run's full paths go
to the page once, and each frame only slices them there (no server round trip per frame).
"""
from __future__ import annotations

import io
from typing import Any

import holoviews as hv
import numpy as np
import panel as pn
import param
from bokeh.models import ColorBar, ColumnDataSource, HoverTool, Label, LinearColorMapper
from bokeh.palettes import Viridis256
from bokeh.plotting import figure

from .controls import bounded_input
from .export import downloads, npz_bytes
from .tasks import LatestTask
from .text import alert, explanation, notify, show_alert
from .toolview import ToolView
from .toy2d_state import EXTENT, Toy2DState, density_result, trajectory_result

PLOT_PX = 540
#: the plane's borders around its PLOT_PX² frame: axis (left), colour bar and its labels up to "−5000" (right),
#: title (top), axis and toolbar (bottom). The figure's outer size is fixed to frame + borders, so no parent
#: layout can squeeze the frame (then bokeh drew the colour bar beyond the figure, under the toolbar and the
#: player beside it).
BORDERS = dict(left=60, right=120, top=30, bottom=80)
PLANE_WIDTH = PLOT_PX + BORDERS["left"] + BORDERS["right"]
FPS = 10
CHAIN_COLORS = ["#e41a1c", "#ff7f00", "#ffff33", "#4daf4a", "#f781bf", "#a65628", "#984ea3", "#ffffff",
                "#66c2a5", "#fc8d62", "#8da0cb", "#e78ac3"]
ARROW_COLOR = "#ff9f1c"

EXPLANATION = r"""
The prior is the uniform distribution on a closed curve \\(r(\theta) = r_0(1 + a\cos k\theta)\\) in the plane
(\\(x_1, x_2\\)). Adding Gaussian noise blurs it into the density

$$p_\sigma(y) = \int p(x) \mathcal{N}(y; x, \sigma^2 I) dx ,$$

the **heat map**. The least-squares denoiser is the posterior mean, and by Miyasawa/Tweedie it points up
the gradient of the log density:

$$\hat x(y) = \mathbb{E}[x \mid y] = y + \sigma^2 \nabla_y \log p_\sigma(y).$$

The **orange arrows** go from noisy points \\(y = x + \sigma z\\) (hollow circles) to \\(\hat x(y)\\) (dots): for small
\\(\sigma\\) they land on the curve, for large \\(\sigma\\) they collapse towards the centre of mass of the nearby curve.
The **coloured paths** are the coarse-to-fine sampler (Algorithm 1 of Kadkhodaie & Simoncelli, 2021): from
\\(y_0 \sim \mathcal N(0, \sigma_0^2 I)\\) each step moves \\(y_t = y_{t-1} + h_t d_t + \gamma_t z_t\\) with
\\(d_t = \hat x(y_{t-1}) - y_{t-1}\\), and the chains settle on the curve as their noise level \\(\sigma_t\\) falls,
\\(\sigma_{t+1} \approx (1 - \beta h_t)\sigma_t\\). Smaller \\(\beta\\) removes less noise per step and injects more
(wandering paths, better coverage of the curve, **more steps**); \\(\beta = 1\\) is deterministic.

In 2-D one point says little about its own noise level: \\(\sigma_t^2 = \lVert d_t\rVert^2/N\\) with \\(N = 2\\) is a
two-degree-of-freedom guess, and a chain that lands near the curve by luck would "converge" after one step.
So the chains are run as **one \\(2B\\)-dimensional image** (B points from the product prior): \\(\sigma_t\\)
averages \\(\lVert d_t\rVert^2\\) over all chains, they stop together, and the MMSE denoiser is told the sampler's
tracked noise level (a blind one cannot estimate it from one point).
"""


class Toy2DView(ToolView, Toy2DState):
    """The 2-D teaching picture: curve prior, p_σ heat map, denoiser arrows and animated sampler paths.

    Parameters and results: :class:`~explorer.ui.toy2d_state.Toy2DState`. Buttons: ``first_button``,
    ``back_button``, ``play_button`` (▶ from frame 0 when at the end), ``pause_button``,
    ``next_button``, ``last_button``; ``player`` (the frame slider, :data:`FPS` frames per second).
    Downloads: :meth:`png` (a raster of the plane), :meth:`npz` (the arrays and parameters), :meth:`basename`.
    """

    title = "Denoising and sampling in 2-D"

    def __init__(self, **params: Any):
        self._alert = alert()
        self._info = pn.pane.Markdown("", css_classes=["explorer-number"], margin=(0, 10), sizing_mode="stretch_width")
        self._traj_info = pn.pane.Markdown("", css_classes=["explorer-number"], margin=(0, 10),
                                           sizing_mode="stretch_width")
        self.heat_source = ColumnDataSource(dict(image=[np.zeros((2, 2))]))
        self.curve_source = ColumnDataSource(dict(x=[], y=[]))
        self.arrow_source = ColumnDataSource(dict(x0=[], y0=[], x1=[], y1=[]))
        self.full_source = ColumnDataSource(dict(xs=[], ys=[], color=[]), name="toy2d-full-paths")
        self.path_source = ColumnDataSource(dict(xs=[], ys=[], color=[]), name="toy2d-paths")
        self.now_source = ColumnDataSource(dict(x=[], y=[], color=[]), name="toy2d-now")
        self.frame_source = ColumnDataSource(dict(t=[0]), name="toy2d-frames")
        self.step_label = Label(x=-EXTENT + 0.08, y=EXTENT - 0.2, text="", text_color="white", text_font_size="11pt",
                                name="toy2d-step")
        self._mapper = LinearColorMapper(palette=Viridis256, low=0, high=1)
        self.plane = self._plane_figure()
        self._sigma_pipe = hv.streams.Pipe(data=None)
        self.density_task = LatestTask(lambda req, _stop, publish: publish(density_result(req)), self._on_density,
                                       self._on_error, name="toy2d-density")
        self.traj_task = LatestTask(lambda req, _stop, publish: publish(trajectory_result(req)), self._on_traj,
                                    self._on_error, name="toy2d-paths")
        super().__init__(**params)
        self._sigma_pane = pn.pane.HoloViews(hv.DynamicMap(self._sigma_plot, streams=[self._sigma_pipe]),
                                             linked_axes=False, sizing_mode="stretch_width", min_height=260)
        self.player = pn.widgets.Player.from_param(self.param.frame, name="Sampler step (animation frame)",
                                                   interval=1000 // FPS, loop_policy="once", show_loop_controls=False,
                                                   visible_buttons=[], sizing_mode="stretch_width", height=60)
        self.player.jscallback(value=_FRAME_JS, args=dict(full=self.full_source, shown=self.path_source,
                                                          now=self.now_source, frames=self.frame_source,
                                                          label=self.step_label))
        b = dict(sizing_mode="stretch_width", min_width=50, margin=(2, 2))
        self.first_button = pn.widgets.Button(label="|◀ First", description="Go to the first step (t = 0)", **b)
        self.back_button = pn.widgets.Button(label="◀ Back", description="One frame back", **b)
        self.play_button = pn.widgets.Button(label="▶ Play", color="primary",
                                             description=f"Play the run at {FPS} frames/s (from t = 0 when at the end)", **b)
        self.pause_button = pn.widgets.Button(label="❚❚ Pause", description="Pause the animation", **b)
        self.next_button = pn.widgets.Button(label="Next ▶", description="One frame forward", **b)
        self.last_button = pn.widgets.Button(label="Last ▶|", description="Go to the last step (the chains' ends)", **b)
        for button, js in ((self.first_button, "p.direction = 0; p.value = p.start;"),
                           (self.back_button, "p.direction = 0; p.value = Math.max(p.start, p.value - 1);"),
                           (self.play_button, "if (p.value >= p.end) { p.value = p.start; } p.direction = 0; p.direction = 1;"),
                           (self.pause_button, "p.direction = 0;"),
                           (self.next_button, "p.direction = 0; p.value = Math.min(p.end, p.value + 1);"),
                           (self.last_button, "p.direction = 0; p.value = p.end;")):
            button.jscallback(clicks=js, args=dict(p=self.player))
        self._sync_player()
        self._show_curve()
        self._show_info()

    # ------------------------------------------------------------------ worker threads
    def submit_density(self, req: dict[str, Any]) -> None:
        self.density_task.submit(req)

    def submit_trajectories(self, req: dict[str, Any]) -> None:
        self.traj_task.submit(req)

    def _on_error(self, e: BaseException) -> None:
        self.error = f"{type(e).__name__}: {e}"
        notify(str(e))

    @param.depends("error", watch=True)
    def _show_error(self) -> None:
        show_alert(self._alert, self.error)

    # ------------------------------------------------------------------ display (event loop)
    def curve_changed(self) -> None:
        if hasattr(self, "curve_source"):
            self._show_curve()

    def _show_curve(self) -> None:
        pts = self.curve_points
        self.curve_source.data = dict(x=pts[:, 0], y=pts[:, 1])

    @param.depends("info", "chain_info", watch=True)
    def _show_info(self) -> None:
        self._info.object, self._traj_info.object = self.info, self.chain_info

    def _on_density(self, msg: dict[str, Any]) -> None:
        self.set_density(msg)
        self._show_heat()
        self.arrow_source.data = dict(x0=self.noisy[:, 0], y0=self.noisy[:, 1], x1=self.denoised[:, 0],
                                      y1=self.denoised[:, 1])

    def _show_heat(self) -> None:
        z = self.heat
        half = EXTENT / (z.shape[0] - 1)  # grid values sit at cell centres
        g = self.plane.renderers[0].glyph
        g.x = g.y = -EXTENT - half
        g.dw = g.dh = 2 * (EXTENT + half)
        self.heat_source.data = dict(image=[z])  # bokeh draws row 0 at the bottom: x₂ = xs[0] = −extent
        self._mapper.low = float(np.percentile(z, 5)) if self.log_scale else 0.0
        self._mapper.high = float(z.max())
        label = "log p_σ(y)" if self.log_scale else "p_σ(y)"
        self.plane.right[0].title = label
        self.plane.title.text = f"{label} for σ = {self.sigma:g}, denoiser arrows y → x̂(y), sampler paths"

    def _on_traj(self, msg: dict[str, Any]) -> None:
        self.set_trajectories(msg)
        self._sync_player()
        P = self.trajectories.paths.numpy()
        colors = [_chain_color(b, P.shape[1]) for b in range(P.shape[1])]
        self.full_source.data = dict(xs=[P[:, b, 0] for b in range(P.shape[1])],
                                     ys=[P[:, b, 1] for b in range(P.shape[1])], color=colors)
        self.frame_source.data = dict(t=self.frames)
        self._draw_frame()
        self._sigma_pipe.send(self.trajectories)
        if hasattr(self, "player"):
            self.player.direction = 1  # play the new run

    def _sync_player(self) -> None:
        if hasattr(self, "player"):
            self.player.end = max(1, self.last_frame)

    def _draw_frame(self) -> None:
        """The current frame drawn from Python (a new run; the browser draws the others itself)."""
        paths, t, T = self.frame_data()
        colors = [_chain_color(b, paths.shape[1]) for b in range(paths.shape[1])]
        self.path_source.data = dict(xs=[paths[:, b, 0] for b in range(paths.shape[1])],
                                     ys=[paths[:, b, 1] for b in range(paths.shape[1])], color=colors)
        self.now_source.data = dict(x=paths[-1, :, 0], y=paths[-1, :, 1], color=colors)
        self.step_label.text = f"sampler step t = {t} of {T}"

    def _plane_figure(self) -> figure:
        fig = figure(frame_width=PLOT_PX, frame_height=PLOT_PX, width=PLANE_WIDTH,
                     height=PLOT_PX + BORDERS["top"] + BORDERS["bottom"], x_range=(-EXTENT, EXTENT),
                     y_range=(-EXTENT, EXTENT), x_axis_label="x₁", y_axis_label="x₂", toolbar_location="below",
                     match_aspect=True, tools="pan,wheel_zoom,box_zoom,reset,save", title="p_σ(y)",
                     **{f"min_border_{side}": px for side, px in BORDERS.items()})
        img = fig.image(image="image", x=-EXTENT, y=-EXTENT, dw=2 * EXTENT, dh=2 * EXTENT, source=self.heat_source,
                        color_mapper=self._mapper)
        fig.add_tools(HoverTool(renderers=[img], tooltips=[("x₁", "$x{0.00}"), ("x₂", "$y{0.00}"), ("p", "@image")]))
        fig.add_layout(ColorBar(color_mapper=self._mapper, title="p_σ(y)"), "right")
        fig.line("x", "y", source=self.curve_source, color="white", line_width=2.5, alpha=0.9)
        fig.segment("x0", "y0", "x1", "y1", source=self.arrow_source, color=ARROW_COLOR, line_width=1.6, alpha=0.95)
        fig.scatter("x0", "y0", source=self.arrow_source, size=6, fill_alpha=0, line_color=ARROW_COLOR, line_width=1.5)
        fig.scatter("x1", "y1", source=self.arrow_source, size=5, color=ARROW_COLOR, line_color="black",
                    line_width=0.5)
        fig.multi_line("xs", "ys", source=self.path_source, color="color", line_width=1.5, alpha=0.9)
        fig.scatter("x", "y", source=self.now_source, size=9, color="color", line_color="black", line_width=1)
        fig.add_layout(self.step_label)
        fig.grid.visible = False
        return fig

    def _sigma_plot(self, data: Any) -> hv.Overlay:
        s = np.ones((2, 1)) if data is None else data.sigmas.numpy()[:, :1]  # pooled: one σ_t for all chains
        t = np.arange(1, s.shape[0] + 1, dtype=float)
        curve = hv.Curve((t, s[:, 0]), "iteration t", "σ_t").opts(color="#e41a1c", line_width=1.8, framewise=True)
        floor = hv.HLine(float(self.sigma_L)).opts(color="#555", line_dash="dotted")
        return (curve * floor).opts(
            logy=True, xlabel="iteration t", ylabel="σ_t (noise std, log scale)",
            title="Noise level σ_t (dotted: σ_L)", responsive=True, min_height=260, show_grid=True,
            toolbar=None, show_legend=False, framewise=True, xlim=(1, max(2, len(t))),
            ylim=(float(self.sigma_L) / 2, max(float(np.nanmax(s)) if np.isfinite(s).any() else 1.0, 1.0) * 1.5))

    # ------------------------------------------------------------------ downloads
    def png(self) -> io.BytesIO:
        """A matplotlib-free raster of the plane (the bokeh figure itself is interactive)."""
        from PIL import Image, ImageDraw

        from .plots import to_rgb

        size = 720
        z = self.density if self.density is not None else np.zeros((2, 2))
        base = Image.fromarray(to_rgb(np.flipud(z / max(float(z.max()), 1e-12)))).resize((size, size),
                                                                                          Image.Resampling.BILINEAR)
        draw = ImageDraw.Draw(base)

        def px(p: np.ndarray) -> tuple[float, float]:
            return ((p[0] + EXTENT) / (2 * EXTENT) * size, (EXTENT - p[1]) / (2 * EXTENT) * size)

        draw.line([px(p) for p in self.curve_points], fill=(255, 255, 255), width=2)
        for a, b in zip(self.noisy, self.denoised):
            draw.line([px(a), px(b)], fill=(255, 159, 28), width=2)
        if self.trajectories is not None:
            P = self.trajectories.paths.numpy()
            for b in range(P.shape[1]):
                draw.line([px(p) for p in P[:, b]], fill=(228, 26, 28), width=1)
        buf = io.BytesIO()
        base.save(buf, format="PNG")
        buf.seek(0)
        return buf

    def npz(self) -> io.BytesIO:
        arrays: dict[str, Any] = dict(grid=self.xs, density=self.density, curve=self.prior.points, noisy=self.noisy,
                                      denoised=self.denoised, clean=self.clean)
        if self.trajectories is not None:
            arrays.update(paths=self.trajectories.paths, path_sigmas=self.trajectories.sigmas,
                          path_end_denoised=self.trajectories.denoised)
        return npz_bytes(arrays, self.parameters())

    def basename(self) -> str:
        return f"toy2d_sigma{self.sigma:g}_beta{self.beta:g}_h0{self.h0:g}_seed{self.seed}"

    # ------------------------------------------------------------------ layout
    def sidebar(self) -> pn.Column:
        w = dict(sizing_mode="stretch_width")
        return pn.Column(
            pn.pane.Markdown("**The prior: a curve**", margin=(0, 10)),
            pn.widgets.IntSlider.from_param(self.param.lobes, name="Lobes k", **w),
            pn.widgets.FloatSlider.from_param(self.param.amplitude, name="Lobe amplitude a", **w),
            pn.pane.Markdown("**Noise and denoiser**", margin=(10, 10, 0, 10)),
            pn.widgets.FloatSlider.from_param(self.param.sigma, name="σ (noise std of the heat map and arrows)",
                                              format="0.00", throttled=True, **w),
            pn.widgets.IntSlider.from_param(self.param.n_arrows, name="Noisy points (arrows)", throttled=True, **w),
            pn.widgets.Checkbox.from_param(self.param.log_scale, name="Heat map of log p_σ", **w),
            pn.pane.Markdown("**Sampler (Algorithm 1)**", margin=(10, 10, 0, 10)),
            pn.widgets.FloatSlider.from_param(self.param.beta, name="β (fraction of noise removed per step)",
                                              throttled=True, **w),
            pn.widgets.FloatSlider.from_param(self.param.h0, name="h₀ (initial step size)", format="0.000",
                                              throttled=True, **w),
            pn.widgets.FloatSlider.from_param(self.param.sigma0, name="σ₀ (initial noise std)", throttled=True, **w),
            pn.widgets.FloatSlider.from_param(self.param.sigma_L, name="σ_L (stop at this noise std)",
                                              format="0.000", throttled=True, **w),
            pn.Row(bounded_input(self, "chains", "Chains", **w), bounded_input(self, "seed", "Seed", **w), **w),
            **w)

    def main(self) -> pn.Column:
        self.density_task.bind()
        self.traj_task.bind()
        w = dict(sizing_mode="stretch_width", margin=0)  # play/pause, then the steps: their labels fit a narrow column
        buttons = pn.Column(pn.Row(self.play_button, self.pause_button, **w),
                            pn.Row(self.first_button, self.back_button, self.next_button, self.last_button, **w), **w)
        return pn.Column(
            self._alert,
            pn.FlexBox(pn.Column(pn.pane.Bokeh(self.plane, margin=(0, 5)), self._info, width=PLANE_WIDTH + 10),
                       pn.Column(buttons, self.player, self._traj_info, self._sigma_pane, sizing_mode="stretch_width",
                                 styles={"flex": "1 1 300px"}),  # beside the plane, or below it in a narrow cell
                       flex_wrap="wrap", sizing_mode="stretch_width"),
            downloads(self.png, self.npz, self.basename),
            explanation(EXPLANATION, title="Denoising and sampling in the plane"),
            sizing_mode="stretch_width")


def _chain_color(b: int, n: int) -> str:
    return CHAIN_COLORS[b % len(CHAIN_COLORS)]


# one frame, in the browser: the full paths of the run sliced up to the frame's step t
_FRAME_JS = """
const T = full.data.xs.length ? full.data.xs[0].length - 1 : 0;
const k = Math.max(0, Math.min(cb_obj.value, frames.data.t.length - 1));
const t = frames.data.t[k];
const xs = full.data.xs.map(a => a.slice(0, t + 1));
const ys = full.data.ys.map(a => a.slice(0, t + 1));
shown.data = {xs: xs, ys: ys, color: full.data.color};
now.data = {x: xs.map(a => a[a.length - 1]), y: ys.map(a => a[a.length - 1]), color: full.data.color};
label.text = `sampler step t = ${t} of ${T}`;
"""
