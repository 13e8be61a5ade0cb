"""Toy2DView: the teaching picture in the plane — a prior on a curve, the noisy density p_σ, the
denoiser's arrows y → x̂(y), and the coarse-to-fine sampler's trajectories, animated.

All the maths is :mod:`explorer.toy2d` (``CurvePrior``, ``CurveMMSE``, ``plane_grid``,
``CurvePrior.log_density``, ``ascent_trajectories``); this module draws it.
"""
from __future__ import annotations

import io
import threading
from collections.abc import Callable
from typing import Any

import holoviews as hv
import numpy as np
import panel as pn
import param
import torch

from explorer.toy2d import CurveMMSE, CurvePrior, ascent_trajectories, plane_grid

from .export import downloads, npz_bytes
from .tasks import LatestTask
from .text import alert, explanation, fmt_number, notify, show_alert
from .toolview import ToolView

EXTENT = 2.0
PRIOR_POINTS = 1024
MAX_FRAMES = 150
PLOT_PX = 540
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
The **coloured paths** are the coarse-to-fine sampler (Algorithm 1 of Kadkhodaie & Simoncelli, 2021) using a
*blind* MMSE denoiser: from \\(y_0 \sim \mathcal N(0, \sigma_0^2 I)\\) each step moves \\(y_t = y_{t-1} + h_t d_t + \gamma_t z_t\\)
with \\(d_t = \hat x(y_{t-1}) - y_{t-1}\\), and the chains settle on the curve as their noise level \\(\sigma_t\\) falls.
Smaller \\(\beta\\) injects more noise (wandering paths, better coverage of the curve); \\(\beta = 1\\) is deterministic.
"""


class Toy2DView(ToolView):
    """The 2-D teaching picture: curve prior, p_σ heat map, denoiser arrows and animated sampler paths.

    Parameters: the curve (``lobes``, ``amplitude``), the noise level ``sigma`` of the heat map and the
    arrows, ``n_arrows``, ``log_scale``, the sampler (``beta``, ``h0``, ``sigma0``, ``sigma_L``,
    ``chains``, ``seed``) and ``frame`` (the animation frame, driven by a Player). Results:
    ``density`` (R, R) (p_σ on the grid), ``xs`` (R,), ``noisy`` / ``denoised`` (n, 2), ``trajectories``.
    """

    title = "Denoising and sampling in 2-D"

    sigma = param.Number(default=0.2, bounds=(0.03, 1.0), step=0.01, doc="σ of the heat map and the arrows")
    lobes = param.Integer(default=5, bounds=(0, 9), doc="Number of lobes k of the curve")
    amplitude = param.Number(default=0.3, bounds=(0.0, 0.6), step=0.05, doc="Lobe amplitude a")
    n_arrows = param.Integer(default=40, bounds=(0, 300), doc="Number of noisy points (arrows)")
    log_scale = param.Boolean(default=False, doc="Show log p_σ instead of p_σ")
    resolution = param.Integer(default=121, bounds=(31, 301), doc="Grid points per side of the heat map")
    beta = param.Number(default=0.5, bounds=(0.02, 1.0), step=0.01, doc="β: fraction of the noise removed per step")
    h0 = param.Number(default=0.05, bounds=(0.005, 0.5), step=0.005, doc="h₀: initial step size")
    sigma0 = param.Number(default=1.0, bounds=(0.2, 2.0), step=0.05, doc="σ₀: initial noise std")
    sigma_L = param.Number(default=0.01, bounds=(0.002, 0.2), step=0.002, doc="σ_L: stop at this noise std")
    chains = param.Integer(default=8, bounds=(1, 64), doc="Number of sampler chains")
    seed = param.Integer(default=0, bounds=(0, None), doc="Seed of the points, the noise and the chains")
    frame = param.Integer(default=0, bounds=(0, 1), doc="Animation frame")

    def __init__(self, **params: Any):
        super().__init__(**params)
        self.prior: CurvePrior | None = None
        self.xs: np.ndarray = np.zeros(0)
        self.density: np.ndarray | None = None
        self.log_density: np.ndarray | None = None
        self.clean: np.ndarray = np.zeros((0, 2))
        self.noisy: np.ndarray = np.zeros((0, 2))
        self.denoised: np.ndarray = np.zeros((0, 2))
        self.trajectories: Any = None
        self._frames = np.zeros(1, dtype=int)
        self._alert = alert()
        self._info = pn.pane.Markdown("", css_classes=["explorer-number"], margin=(0, 10), sizing_mode="stretch_width")
        self._traj_info = pn.pane.Markdown("", css_classes=["explorer-number"], margin=(0, 10),
                                           sizing_mode="stretch_width")

        self._heat_pipe = hv.streams.Pipe(data=None)
        self._curve_pipe = hv.streams.Pipe(data=np.zeros((0, 2)))
        self._arrow_pipe = hv.streams.Pipe(data=(np.zeros((0, 2)), np.zeros((0, 2))))
        self._path_pipe = hv.streams.Pipe(data=None)
        plane = (hv.DynamicMap(self._heat_plot, streams=[self._heat_pipe])
                 * hv.DynamicMap(self._curve_plot, streams=[self._curve_pipe])
                 * hv.DynamicMap(self._arrow_plot, streams=[self._arrow_pipe])
                 * hv.DynamicMap(self._path_plot, streams=[self._path_pipe]))
        self._plane_pane = pn.pane.HoloViews(plane.opts(
            hv.opts.Overlay(frame_width=PLOT_PX, frame_height=PLOT_PX, xlim=(-EXTENT, EXTENT),
                            ylim=(-EXTENT, EXTENT), xlabel="x₁", ylabel="x₂", toolbar="right", show_legend=False,
                            title="")), linked_axes=False, margin=(0, 5))
        self._sigma_pipe = hv.streams.Pipe(data=None)
        self._sigma_pane = pn.pane.HoloViews(hv.DynamicMap(self._sigma_plot, streams=[self._sigma_pipe]),
                                             linked_axes=False, sizing_mode="stretch_width", min_height=260)
        self._player = pn.widgets.Player.from_param(self.param.frame, name="Animation of the sampler steps", interval=100,
                                                    loop_policy="once", show_loop_controls=False,
                                                    sizing_mode="stretch_width", height=80)

        self.density_task = LatestTask(self._compute_density, self._render_density, self._on_error, name="toy2d-density")
        self.traj_task = LatestTask(self._compute_traj, self._render_traj, self._on_error, name="toy2d-paths")
        self._new_curve()

    # ------------------------------------------------------------------ requests
    @param.depends("lobes", "amplitude", watch=True)
    def _new_curve(self) -> None:
        try:
            self.prior = CurvePrior(r0=1.0, a=float(self.amplitude), lobes=int(self.lobes), n_points=PRIOR_POINTS)
        except ValueError as e:
            show_alert(self._alert, str(e))
            return
        pts = self.prior.points.numpy()
        self._curve_pipe.send(np.vstack([pts, pts[:1]]))
        self.update_density()
        self.update_trajectories()

    @param.depends("sigma", "n_arrows", "resolution", "log_scale", watch=True)
    def update_density(self) -> None:
        """Recompute p_σ on the grid and the arrows (on a worker thread when served)."""
        self.density_task.submit(dict(prior=self.prior, sigma=float(self.sigma), n=int(self.n_arrows),
                                      resolution=int(self.resolution), seed=int(self.seed), log=bool(self.log_scale)))

    @param.depends("beta", "h0", "sigma0", "sigma_L", "chains", watch=True)
    def update_trajectories(self) -> None:
        """Run the sampler's chains from scratch (on a worker thread when served)."""
        self.traj_task.submit(dict(prior=self.prior, beta=float(self.beta), h0=float(self.h0),
                                   sigma0=float(self.sigma0), sigma_L=float(self.sigma_L), chains=int(self.chains),
                                   seed=int(self.seed)))

    @param.depends("seed", watch=True)
    def _reseed(self) -> None:
        self.update_density()
        self.update_trajectories()

    # ------------------------------------------------------------------ computation (worker threads)
    def _compute_density(self, req: dict[str, Any], stop: threading.Event, publish: Callable[[Any], None]) -> None:
        prior, sigma = req["prior"], req["sigma"]
        xs, _, grid = plane_grid(EXTENT, req["resolution"])
        logp = prior.log_density(grid, sigma)  # (R, R), row i = x₂ = xs[i]
        g = torch.Generator().manual_seed(req["seed"])
        x = prior.sample(req["n"], g) if req["n"] else torch.zeros(0, 2, dtype=torch.float64)
        y = x + sigma * torch.randn(x.shape, generator=g, dtype=torch.float64)
        mmse = CurveMMSE(prior, blind=False)
        with torch.no_grad():
            xhat = mmse(y, torch.full((len(y),), sigma, dtype=torch.float64)) if len(y) else y.clone()
        publish(dict(req=req, xs=xs.numpy(), logp=logp.numpy(), clean=x.numpy(), noisy=y.numpy(), denoised=xhat.numpy()))

    def _compute_traj(self, req: dict[str, Any], stop: threading.Event, publish: Callable[[Any], None]) -> None:
        denoiser = CurveMMSE(req["prior"])  # blind: the sampler estimates σ_t from the residual
        tr = ascent_trajectories(denoiser, req["chains"], h0=req["h0"], beta=req["beta"], sigma0=req["sigma0"],
                                 sigma_L=req["sigma_L"], seed=req["seed"], max_steps=3000)
        publish(dict(req=req, traj=tr))

    def _on_error(self, e: BaseException) -> None:
        show_alert(self._alert, f"{type(e).__name__}: {e}")
        notify(str(e))

    # ------------------------------------------------------------------ display (event loop)
    def _render_density(self, msg: dict[str, Any]) -> None:
        req = msg["req"]
        self.xs, self.log_density = msg["xs"], msg["logp"]
        self.density = np.exp(self.log_density)
        self.clean, self.noisy, self.denoised = msg["clean"], msg["noisy"], msg["denoised"]
        show_alert(self._alert, "")
        with pn.io.hold():
            self._heat_pipe.send((self.log_density if req["log"] else self.density, req["log"], req["sigma"]))
            self._arrow_pipe.send((self.noisy, self.denoised))
            dx = float(self.xs[1] - self.xs[0])
            mass = float(self.density.sum() * dx * dx)
            moved = (np.linalg.norm(self.denoised - self.noisy, axis=1).mean() if len(self.noisy) else float("nan"))
            self._info.object = (f"σ = {fmt_number(self.sigma)} (noise std) · ∫p_σ over the square = {mass:.3f} "
                                 f"(grid {len(self.xs)}×{len(self.xs)}) · mean arrow length ‖x̂(y) − y‖ = "
                                 f"{fmt_number(moved)} · {len(self.noisy)} noisy points")

    def _render_traj(self, msg: dict[str, Any]) -> None:
        tr = msg["traj"]
        self.trajectories = tr
        T = tr.paths.shape[0] - 1
        self._frames = np.unique(np.linspace(0, T, min(T + 1, MAX_FRAMES)).round().astype(int))
        self.param.frame.bounds = (0, max(1, len(self._frames) - 1))
        self._player.end = max(1, len(self._frames) - 1)
        steps = tr.steps.numpy()
        counts = {s: tr.status.count(s) for s in set(tr.status)}
        self._traj_info.object = (f"**{len(steps)} chains**, {int(steps.min())}–{int(steps.max())} steps "
                                  f"(β = {fmt_number(self.beta)}, h₀ = {fmt_number(self.h0)}) · "
                                  + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
        with pn.io.hold():
            self._sigma_pipe.send(tr)
            if self.frame == 0:
                self._show_frame()
            else:
                self.frame = 0
            self._player.direction = 1  # play the new run

    @param.depends("frame", watch=True)
    def _show_frame(self) -> None:
        tr = self.trajectories
        if tr is None:
            return
        t = int(self._frames[min(int(self.frame), len(self._frames) - 1)])
        self._path_pipe.send((tr.paths[: t + 1].numpy(), t, tr.paths.shape[0] - 1))

    def _heat_plot(self, data: Any) -> hv.Image:
        if data is None:
            return hv.Image(np.zeros((2, 2)), bounds=(-EXTENT, -EXTENT, EXTENT, EXTENT), kdims=["x₁", "x₂"])
        z, log, sigma = data
        label = "log p_σ(y)" if log else "p_σ(y)"
        # grid values sit at the cell centres: the R points of linspace(−e, e, R) span R cells of width dx
        half = EXTENT / (z.shape[0] - 1)
        b = EXTENT + half
        # row 0 of the array is x₂ = −extent; hv.Image puts row 0 at the top, so flip
        img = hv.Image(np.flipud(z), bounds=(-b, -b, b, b), kdims=["x₁", "x₂"],
                       vdims=[hv.Dimension("p", label=label)])
        lo = float(np.percentile(z, 5)) if log else 0.0
        return img.opts(cmap="viridis", colorbar=True, clim=(lo, float(z.max())), tools=["hover"],
                        title=f"p_σ for σ = {fmt_number(sigma)}, denoiser arrows y → x̂(y), sampler paths",
                        colorbar_opts={"title": label})

    @staticmethod
    def _curve_plot(data: np.ndarray) -> hv.Path:
        return hv.Path([data], kdims=["x₁", "x₂"]).opts(color="white", line_width=2.5, alpha=0.9)

    @staticmethod
    def _arrow_plot(data: tuple[np.ndarray, np.ndarray]) -> hv.Overlay:
        y, xh = data
        seg = hv.Segments((y[:, 0], y[:, 1], xh[:, 0], xh[:, 1]), kdims=["x₁", "x₂", "x₁_end", "x₂_end"]).opts(
            color=ARROW_COLOR, line_width=1.6, alpha=0.95)
        tails = hv.Points(y, kdims=["x₁", "x₂"]).opts(marker="circle", size=6, fill_alpha=0, line_color=ARROW_COLOR,
                                                     line_width=1.5)
        heads = hv.Points(xh, kdims=["x₁", "x₂"]).opts(marker="circle", size=5, color=ARROW_COLOR,
                                                      line_color="black", line_width=0.5)
        return seg * tails * heads

    @staticmethod
    def _path_plot(data: Any) -> hv.Overlay:
        # before the first run: one placeholder chain far outside the view (empty colour-mapped paths fail)
        paths, t, T = data if data is not None else (np.full((2, 1, 2), 10 * EXTENT), 0, 0)
        B = paths.shape[1]
        lines = hv.Path([{"x₁": paths[:, b, 0], "x₂": paths[:, b, 1], "chain": b} for b in range(B)],
                        kdims=["x₁", "x₂"], vdims=["chain"]).opts(
            color="chain", cmap=CHAIN_COLORS[:max(B, 2)] if B <= len(CHAIN_COLORS) else "Set1", line_width=1.5,
            alpha=0.9)
        now = hv.Points((paths[-1, :, 0], paths[-1, :, 1], np.arange(B)), kdims=["x₁", "x₂"], vdims=["chain"]).opts(
            color="chain", cmap=CHAIN_COLORS[:max(B, 2)] if B <= len(CHAIN_COLORS) else "Set1", size=9,
            line_color="black", line_width=1)
        label = hv.Text(-EXTENT + 0.08, EXTENT - 0.12, f"sampler step t = {t} of {T}" if data is not None else "", halign="left").opts(
            text_color="white", text_font_size="11pt")
        return lines * now * label

    def _sigma_plot(self, data: Any) -> hv.Overlay:
        tr = data
        if tr is None:
            s = np.ones((2, 1))
        else:
            s = tr.sigmas.numpy()
        t = np.arange(1, s.shape[0] + 1, dtype=float)
        B = s.shape[1]
        cmap = CHAIN_COLORS[:max(B, 2)] if B <= len(CHAIN_COLORS) else "Set1"
        paths = hv.Path([{"iteration t": t, "σ_t": s[:, b], "chain": b} for b in range(B)],
                        kdims=["iteration t", "σ_t"], vdims=["chain"]).opts(color="chain", cmap=cmap, line_width=1.8,
                                                                            framewise=True)
        floor = hv.HLine(float(self.sigma_L)).opts(color="#555", line_dash="dotted")
        return (paths * floor).opts(
            logy=True, xlabel="iteration t", ylabel="σ_t (noise std, log scale)",
            title="Noise level σ_t of each chain (dotted: σ_L)", responsive=True, min_height=260, show_grid=True,
            toolbar=None, show_legend=False, framewise=True, xlim=(1, max(2, len(t))),
            ylim=(float(self.sigma_L) / 2, max(float(np.nanmax(s)) if np.isfinite(s).any() else 1.0, 1.0) * 1.5))

    # ------------------------------------------------------------------ downloads
    def _png(self) -> io.BytesIO:
        """The figure as drawn by bokeh is interactive; the PNG is a matplotlib-free raster of the plane."""
        from PIL import Image, ImageDraw

        size = 720
        z = self.density if self.density is not None else np.zeros((2, 2))
        zz = np.flipud(z / max(float(z.max()), 1e-12))
        from .plots import to_rgb

        base = Image.fromarray(to_rgb(zz)).resize((size, size), Image.Resampling.BILINEAR)
        draw = ImageDraw.Draw(base)

        def px(p: np.ndarray) -> tuple[float, float]:
            return ((p[0] + EXTENT) / (2 * EXTENT) * size, (EXTENT - p[1]) / (2 * EXTENT) * size)

        if self.prior is not None:
            pts = self.prior.points.numpy()
            draw.line([px(p) for p in np.vstack([pts, pts[:1]])], fill=(255, 255, 255), width=2)
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

    def _npz(self) -> io.BytesIO:
        arrays: dict[str, Any] = dict(grid=self.xs, density=self.density, curve=None if self.prior is None
                                      else self.prior.points, noisy=self.noisy, denoised=self.denoised,
                                      clean=self.clean)
        if self.trajectories is not None:
            arrays.update(paths=self.trajectories.paths, path_sigmas=self.trajectories.sigmas,
                          path_end_denoised=self.trajectories.denoised)
        params = {k: getattr(self, k) for k in ("sigma", "lobes", "amplitude", "n_arrows", "resolution", "beta", "h0",
                                                "sigma0", "sigma_L", "chains", "seed")}
        params["extent"] = EXTENT
        return npz_bytes(arrays, params)

    def _basename(self) -> str:
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
            pn.Row(pn.widgets.IntInput.from_param(self.param.chains, name="Chains", **w),
                   pn.widgets.IntInput.from_param(self.param.seed, name="Seed", **w), **w),
            **w)

    def main(self) -> pn.Column:
        self.density_task.bind()
        self.traj_task.bind()
        return pn.Column(
            self._alert,
            pn.Row(pn.Column(self._plane_pane, self._info, width=PLOT_PX + 120),
                   pn.Column(self._player, self._traj_info, self._sigma_pane, sizing_mode="stretch_width",
                             min_width=300),
                   sizing_mode="stretch_width"),
            downloads(self._png, self._npz, self._basename),
            explanation(EXPLANATION, title="Denoising and sampling in the plane"),
            sizing_mode="stretch_width")
