"""SamplerView: step the coarse-to-fine sampler (Kadkhodaie & Simoncelli 2021, Algorithm 1) live.

All the maths is :class:`explorer.Sampler`; this module only drives it (one step per click, or a
background thread for Play), shows y_t and x̂(y_t) for every chain, the measured σ_t against the
designed schedule (earlier runs stay overlaid for comparison), h_t, and a scrubber over the
recorded snapshots.
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
from explorer.sampling import predicted_sigmas, step_size

from .controls import RunControls
from .export import downloads, npz_bytes, png_bytes
from .models import ModelPicker
from .plots import CHAIN_COLORS, PLOT_PERIOD, LiveImage, predicted_steps
from .tasks import BackgroundWorker
from .text import elapsed_text, explanation, fmt_number, notify
from .theme import ACCENT, SIZES
from .toolview import ToolView

RUN_COLORS = ["#9aa5b1", "#c9a227", "#7fb77e", "#b07aa1", "#e8a07b", "#76b7b2"]
MAX_RUNS = 6
MAX_SNAPSHOTS = 400
SNAPSHOT_BYTES = 120e6

EXPLANATION = r"""
A denoiser trained to remove Gaussian noise carries a prior: by Miyasawa/Tweedie its residual is a
scaled score, $\hat x(y) - y = \sigma^2 \nabla_y \log p_\sigma(y)$. The sampler climbs that score
from pure noise, removing a fraction $\beta h_t$ of the noise at each step and injecting fresh noise
so that the effective noise level falls on the designed schedule:

$$d_t = \hat x(y_{t-1}) - y_{t-1},\qquad \sigma_t = \frac{\|d_t\|}{\sqrt N},\qquad h_t = \frac{h_0 t}{1 + h_0 (t-1)}$$

$$y_t = y_{t-1} + h_t d_t + \gamma_t z_t,\qquad \gamma_t = \sigma_t\sqrt{(1-\beta h_t)^2 - (1-h_t)^2},\qquad z_t\sim\mathcal N(0, I)$$

The dashed curve is the schedule $\bar\sigma_t = \sigma_0\prod_{s\le t}(1-\beta h_s)$; the solid curves are the
measured $\sigma_t$ of each chain. Smaller $\beta$ injects more noise and needs more steps (and gives
better samples); $\beta = 1$ is deterministic. A chain stops when $\sigma_t \le \sigma_L$.
(Kadkhodaie & Simoncelli, *Solving linear inverse problems using the prior implicit in a denoiser*, 2021.)
"""


class SamplerView(ToolView):
    """Step the coarse-to-fine sampler (Algorithm 1) and watch y_t, x̂(y_t), σ_t and h_t live.

    Parameters set the next run: changing any of them while a run is under way stops it and starts
    a fresh one (the old run's σ_t curve stays overlaid). ``step()``, ``play()``, ``pause()``,
    ``reset()`` are the buttons; ``sampler`` is the live :class:`explorer.Sampler`.
    """

    title = "Coarse-to-fine sampler"

    beta = param.Number(default=0.5, bounds=(0.01, 1.0), step=0.01, doc="β: fraction of the noise removed per step")
    h0 = param.Number(default=0.01, bounds=(0.001, 0.5), step=0.001, doc="h₀: initial step size")
    sigma0 = param.Number(default=1.0, bounds=(0.05, 2.0), step=0.05, doc="σ₀: initial noise level")
    sigma_L = param.Number(default=0.01, bounds=(0.002, 0.2), step=0.001, doc="σ_L: stop when σ_t ≤ σ_L")
    seed = param.Integer(default=0, bounds=(0, None), doc="Seed of the initial and injected noise")
    size = param.Selector(objects=SIZES, default=64, doc="Image size (pixels per side)")
    batch = param.Integer(default=2, bounds=(1, 8), doc="Number of chains sampled together")
    max_steps = param.Integer(default=2000, bounds=(1, 100_000), doc="Stop a chain after this many steps")
    scrub = param.Integer(default=0, bounds=(0, 1), doc="Index of the recorded snapshot shown")
    render_period = param.Integer(default=100, bounds=(20, 2000), doc="Milliseconds between page updates while playing")

    def __init__(self, model: str | None = None, **params: Any):
        super().__init__(**params)
        self.picker = ModelPicker(model=model)
        self.controls = RunControls()
        self.sampler: explorer.Sampler | None = None
        self.runs: list[dict[str, Any]] = []  # finished / abandoned runs kept for the σ_t overlay
        self.worker = BackgroundWorker(self._render_state, period=self.render_period, name="sampler")
        self._step_lock = threading.RLock()
        self._hist_t: list[int] = []
        self._hist_sigma: list[np.ndarray] = []
        self._hist_h: list[float] = []
        self._elapsed = 0.0
        self._compute = 0.0
        self._play_started: float | None = None
        self._play_t0 = 0
        self._scrubbing = False
        self.energy: list[float] | None = None
        self._shown_t = -1
        self._plots_at = 0.0

        self._stats = pn.pane.Markdown("", sizing_mode="stretch_width", css_classes=["explorer-number"], margin=(0, 10))
        self._chain_table = pn.pane.Markdown("", sizing_mode="stretch_width", margin=(0, 10))
        self._grid = pn.Column(sizing_mode="stretch_width", margin=0)
        self._sigma_pane = pn.pane.HoloViews(None, sizing_mode="stretch_width", min_height=300, linked_axes=False)
        self._h_pane = pn.pane.HoloViews(None, sizing_mode="stretch_width", min_height=180, linked_axes=False)
        self._scrubber = pn.widgets.IntSlider.from_param(self.param.scrub, name="Recorded snapshot",
                                                         sizing_mode="stretch_width", disabled=True)
        self._scrub_label = pn.pane.Markdown("", margin=(0, 10), styles={"color": "#555"})
        self._clear_runs = pn.widgets.Button(label="Clear earlier runs", color="light", width=160)
        self._clear_runs.on_click(lambda _e: self.clear_runs())
        self._keep = pn.widgets.Button(label="Keep the samples for the other tools", color="primary",
                                       variant="outline", sizing_mode="stretch_width",
                                       description="Save x̂ of every chain to the sample shelf: any tool's image "
                                                   "source can then open it (Image → sample)")
        self._keep.on_click(lambda _e: self.keep_samples())

        self.controls.on("step", self.step)
        self.controls.on("play", self.play)
        self.controls.on("pause", self.pause)
        self.controls.on("reset", self.reset)
        self.picker.param.watch(lambda _e: self._params_changed(), "model")
        self.reset(archive=False)

    # ------------------------------------------------------------------ model and run set-up
    @property
    def handle(self) -> Any:
        return self.picker.handle

    @property
    def shape(self) -> tuple[int, int, int, int]:
        h = self.picker.handle
        return (int(self.batch), int(getattr(h, "channels", 1) if h is not None else 1), int(self.size), int(self.size))

    def _snapshot_every(self) -> int:
        b, c, hh, ww = self.shape
        per = 2 * b * c * hh * ww * 4
        budget = max(2, min(MAX_SNAPSHOTS, int(SNAPSHOT_BYTES // per)))
        total = min(self.max_steps, predicted_steps(self.sigma0, self.h0, self.beta, self.sigma_L, self.max_steps))
        return max(1, math.ceil(total / budget))

    def run_params(self) -> dict[str, Any]:
        """The parameters that define the current run (also written into the NPZ)."""
        return dict(model=self.picker.model, beta=self.beta, h0=self.h0, sigma0=self.sigma0, sigma_L=self.sigma_L,
                    seed=self.seed, size=self.size, batch=self.batch, max_steps=self.max_steps)

    def reset(self, archive: bool = True) -> None:
        """Stop any run, keep its σ_t curve (if it made steps), and set up a fresh sampler."""
        self.worker.stop(wait=True)
        if archive:
            self._archive()
        self.sampler = None
        self._hist_t, self._hist_sigma, self._hist_h = [], [], []
        self._elapsed = self._compute = 0.0
        self.energy = None
        self._shown_t = -1
        handle = self.picker.handle
        if handle is None:
            self.controls.status = f"⚠️ {self.picker.error}"
            self._build_panes()
            return
        try:
            self.sampler = explorer.Sampler(
                handle, shape=self.shape, beta=float(self.beta), h0=float(self.h0), sigma0=float(self.sigma0),
                sigma_L=float(self.sigma_L), seed=int(self.seed), max_steps=int(self.max_steps),
                snapshot_every=self._snapshot_every())
        except ValueError as e:
            self.controls.status = f"⚠️ {e}"
            notify(str(e))
            self._build_panes()
            return
        self._build_panes()
        self._render_state(self.sampler.state)
        self.controls.progress = 0
        self.controls.status = (f"Ready: {self.batch} chain(s) of {self.size}×{self.size}, "
                                f"≈{predicted_steps(self.sigma0, self.h0, self.beta, self.sigma_L, self.max_steps)} "
                                "steps predicted. Press Step or Play.")

    def _archive(self) -> None:
        if self.sampler is None or not self._hist_t:
            return
        sig = np.stack(self._hist_sigma)  # (T, B)
        steps = int(np.isfinite(sig).any(axis=1).sum())
        self.runs.append(dict(t=np.asarray(self._hist_t), sigma=sig, beta=self.sampler.beta, h0=self.sampler.h0,
                              steps=steps, label=f"β={self.sampler.beta:g}, h₀={self.sampler.h0:g}: {steps} steps"))
        self.runs = self.runs[-MAX_RUNS:]

    def clear_runs(self) -> None:
        self.runs = []
        self._build_sigma_plot()
        self._push_plots()

    @param.depends("beta", "h0", "sigma0", "sigma_L", "seed", "size", "batch", "max_steps", watch=True)
    def _params_changed(self) -> None:
        self.reset(archive=True)

    # ------------------------------------------------------------------ stepping
    def _advance(self) -> Any:
        """One sampler step (thread-safe), recording σ_t and h_t."""
        with self._step_lock:
            was_running = np.asarray([s == "running" for s in self.sampler.status])
            t0 = time.perf_counter()
            state = self.sampler.step()
            self._compute += time.perf_counter() - t0
            if state.t > (self._hist_t[-1] if self._hist_t else 0):
                sig = state.sigma.detach().to("cpu", torch.float64).numpy().copy()
                sig[~was_running] = np.nan  # stopped chains: no new measurement
                self._hist_t.append(state.t)
                self._hist_sigma.append(sig)
                self._hist_h.append(float(state.h))
            return state

    def step(self) -> None:
        """Advance every running chain by one step and show it."""
        if self.sampler is None or self.worker.running:
            return
        if self.sampler.done:
            self.controls.status = "All chains have stopped. Reset (or change a parameter) to start again."
            return
        t0 = time.perf_counter()
        state = self._advance()
        self._elapsed += time.perf_counter() - t0
        self._render_state(state)
        if self.sampler.done:
            self._finished()

    def play(self) -> None:
        """Run to the end on a background thread, showing a snapshot every ``render_period`` ms."""
        if self.sampler is None or self.worker.running or self.sampler.done:
            if self.sampler is not None and self.sampler.done:
                self.controls.status = "All chains have stopped. Reset (or change a parameter) to start again."
            return
        self._play_started, self._play_t0 = time.perf_counter(), self.sampler.t
        self.controls.running = True
        sampler = self.sampler

        def work(stop: threading.Event, publish) -> None:
            while not stop.is_set() and not sampler.done and sampler is self.sampler:
                publish(self._advance())

        self.worker.period = self.render_period
        self.worker.start(work, on_done=self._play_done)

    def pause(self) -> None:
        """Stop the background run after the current step (the run can be continued with Play)."""
        self.worker.stop(wait=True)

    def _play_done(self, error: BaseException | None) -> None:
        if self._play_started is not None:
            self._elapsed += time.perf_counter() - self._play_started
            self._play_started = None
        self.controls.running = False
        if error is not None:
            self.controls.status = f"⚠️ The run failed: {type(error).__name__}: {error}"
            notify(f"The run failed: {error}")
            return
        if self.sampler is not None:
            self._render_state(self.sampler.state, force=True)
            if self.sampler.done:
                self._finished()
            else:
                self.controls.status = f"Paused at step {self.sampler.t}. " + self._rate_text()

    def _finished(self) -> None:
        self.energy = self.energy_of_samples()
        self._render_state(self.sampler.state, force=True)
        counts = {s: self.sampler.status.count(s) for s in set(self.sampler.status)}
        self.controls.status = ("Finished: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
                                + f" after {self.sampler.t} steps. " + self._rate_text())
        self.controls.progress = 100

    def _rate_text(self) -> str:
        if self._compute <= 0 or not self._hist_t:
            return ""
        return f"{len(self._hist_t) / self._compute:.1f} steps/s of denoiser compute."

    # ------------------------------------------------------------------ energy hook
    def energy_model(self) -> Any:
        """Hook: an energy model for the current image size (a handle with ``.nll(x)`` → −log p), or None.

        Looks for an energy model's catalog card (one with an ``energy`` section, or whose ``kind`` / ``type``
        is "energy") whose ``size`` (or
        training patch) matches; only handles that really have ``nll`` are used. Override or
        monkeypatch this to plug a specific energy model in.
        """
        try:
            for card in explorer.catalog():
                kind = card.get("kind") or card.get("type")
                size = card.get("size") or (card.get("training") or {}).get("patch")
                if (kind == "energy" or "energy" in card) and size == self.size:
                    h = explorer.load(card["name"])
                    if hasattr(h, "nll"):
                        return h
        except Exception:
            return None
        return None

    def energy_of_samples(self) -> list[float | None] | None:
        """−log p(x̂) of each finished sample under :meth:`energy_model` (None without one), the continuous
        density on [0,1]^d in nats (samples are not 8-bit images). A chain that did not converge gets None:
        a diverged chain's x̂ is far outside the data (its "energy" is a meaningless huge number) and one
        stopped at the step limit is not a sample of the prior."""
        model = self.energy_model()
        if model is None or self.sampler is None:
            return None
        try:
            with torch.no_grad():
                nll = model.nll(self.sampler.state.x_hat)
            values = [float(v) for v in torch.as_tensor(nll).flatten().tolist()]
        except Exception as e:
            notify(f"Energy model failed: {e}")
            return None
        status = list(self.sampler.status)
        return [v if j < len(status) and status[j] == "converged" and math.isfinite(v) else None
                for j, v in enumerate(values)]

    def energy_cell(self, j: int, status: str) -> str:
        """The −log p(x̂) table cell of chain j: its energy, or a dash with the reason when it has none."""
        v = self.energy[j] if self.energy and j < len(self.energy) else None
        if v is not None:
            return f"{v:.1f}"
        return f"— (not converged: {status})" if status != "converged" else "—"

    # ------------------------------------------------------------------ display
    def _image_size_px(self) -> int:
        return int(max(110, min(220, 760 // max(1, int(self.batch)))))

    def _build_panes(self) -> None:
        """(Re)build the image grid and plots for the current batch size and runs."""
        n, b, px = int(self.size), int(self.batch), self._image_size_px()
        self._y_panes = [LiveImage((n, n), f"chain {i + 1}: y_t", size=px) for i in range(b)]
        self._x_panes = [LiveImage((n, n), f"chain {i + 1}: x̂(y_t)", size=px) for i in range(b)]
        cols = [pn.Column(self._y_panes[i], self._x_panes[i], margin=0) for i in range(b)]
        self._grid[:] = [pn.FlexBox(*cols, margin=0)]
        self._build_sigma_plot()
        self._h_pipe = hv.streams.Pipe(data=self._h_data())
        self._h_pane.object = hv.DynamicMap(self._h_plot, streams=[self._h_pipe])
        self._scrubber.disabled = True
        self.param.scrub.bounds = (0, 1)  # a slider needs start < end (Bokeh E-1021); it is disabled until 2 snapshots exist
        self._scrubbing = True
        try:
            self.scrub = 0
        finally:
            self._scrubbing = False
        self._scrub_label.object = ""

    def _predicted(self) -> tuple[np.ndarray, np.ndarray]:
        steps = min(int(self.max_steps), predicted_steps(self.sigma0, self.h0, self.beta, self.sigma_L,
                                                         self.max_steps) + 5)
        pred = predicted_sigmas(float(self.sigma0), float(self.h0), float(self.beta), steps).numpy()
        # row t of the sampler's sigmas (iteration t+1) estimates σ̄_t: plot σ̄_{t-1} at iteration t
        return np.arange(1, steps + 2), pred

    def _sigma_data(self) -> dict[str, Any]:
        # the worker thread may append while we read: use the common length
        n = min(len(self._hist_t), len(self._hist_sigma))
        t = np.asarray(self._hist_t[:n], dtype=float)
        sig = np.stack(self._hist_sigma[:n]) if n else np.zeros((0, int(self.batch)))
        return dict(t=t, sigma=sig, now=float(t[-1]) if t.size else 0.0)

    def _build_sigma_plot(self) -> None:
        self._sigma_pipe = hv.streams.Pipe(data=self._sigma_data())
        runs = list(self.runs)
        pt, pred = self._predicted()
        sigma_L = float(self.sigma_L)
        b = int(self.batch)

        def plot(data: dict[str, Any]) -> hv.Overlay:
            layers = []
            for k, run in enumerate(runs):
                color = RUN_COLORS[k % len(RUN_COLORS)]
                for j in range(run["sigma"].shape[1]):
                    layers.append(hv.Curve((run["t"], run["sigma"][:, j]), "iteration t", "σ_t",
                                           label=run["label"] if j == 0 else "").opts(
                        color=color, line_width=1.5, alpha=0.55, show_legend=j == 0))
            layers.append(hv.Curve((pt, pred), "iteration t", "σ_t", label="predicted σ̄ₜ").opts(
                color="black", line_dash="dashed", line_width=1.5))
            for j in range(b):
                s = data["sigma"][:, j] if data["sigma"].size else np.zeros(0)
                layers.append(hv.Curve((data["t"], s), "iteration t", "σ_t",
                                       label=f"chain {j + 1} (β={self.beta:g})").opts(
                    color=CHAIN_COLORS[j % len(CHAIN_COLORS)], line_width=2.2))
            layers.append(hv.HLine(sigma_L, label="σ_L").opts(color="#888", line_dash="dotted", line_width=1))
            return hv.Overlay(layers).opts(
                logy=True, xlabel="iteration t", ylabel="σ_t (noise std, [0,1] units, log scale)",
                title="Effective noise level σ_t against the designed schedule", legend_position="top_right",
                responsive=True, min_height=300, toolbar="right", tools=["hover"], show_grid=True,
                ylim=(max(sigma_L * 0.5, 1e-4), float(self.sigma0) * 1.6), framewise=False,
                xlim=(0, max(len(pt), max((len(r["t"]) for r in runs), default=0)) + 1))

        self._sigma_pane.object = hv.DynamicMap(plot, streams=[self._sigma_pipe])

    def _h_data(self) -> dict[str, Any]:
        n = min(len(self._hist_t), len(self._hist_h))
        return dict(t=np.asarray(self._hist_t[:n], dtype=float), h=np.asarray(self._hist_h[:n], dtype=float))

    def _h_plot(self, data: dict[str, Any]) -> hv.Overlay:
        steps = min(int(self.max_steps), predicted_steps(self.sigma0, self.h0, self.beta, self.sigma_L,
                                                         self.max_steps) + 5)
        ts = np.arange(1, steps + 1)
        sched = np.array([step_size(int(t), float(self.h0)) for t in ts])
        return (hv.Curve((ts, sched), "iteration t", "h_t", label="schedule h₀t/(1+h₀(t−1))").opts(
                    color="black", line_dash="dashed", line_width=1.2)
                * hv.Curve((data["t"], data["h"]), "iteration t", "h_t", label="this run").opts(
                    color=ACCENT, line_width=2.2)).opts(
            xlabel="iteration t", ylabel="step size h_t", title="Step size h_t", responsive=True, min_height=180,
            legend_position="bottom_right", show_grid=True, toolbar=None, ylim=(0, 1.05), framewise=False)

    def _push_plots(self) -> None:
        self._sigma_pipe.send(self._sigma_data())
        self._h_pipe.send(self._h_data())

    def _show_images(self, y: np.ndarray, x_hat: np.ndarray) -> None:
        for i in range(min(len(self._y_panes), y.shape[0])):
            self._y_panes[i].update(y[i, 0])
            self._x_panes[i].update(x_hat[i, 0])

    def _render_state(self, state: Any, force: bool = False) -> None:
        """Show a sampler state (called on the event loop: directly, or by the worker's periodic flush)."""
        if state is None or (state.t == self._shown_t and not force):
            return
        self._shown_t = state.t
        y = state.y.detach().to("cpu", torch.float32).numpy()
        xh = state.x_hat.detach().to("cpu", torch.float32).numpy()
        playing = self.worker.running and not force
        now = time.perf_counter()
        with pn.io.hold():
            self._show_images(y, xh)
            # the HoloViews plots cost far more than the images: refresh them at most every PLOT_PERIOD s
            if not playing or now - self._plots_at >= PLOT_PERIOD:
                self._push_plots()
                self._plots_at = now
            self._update_stats(state)
            if not playing:
                self._update_scrubber(follow=True)

    def _update_stats(self, state: Any) -> None:
        sig = state.sigma.detach().cpu().numpy()
        running = self.worker.running and self._play_started is not None
        wall = self._elapsed + (time.perf_counter() - self._play_started if running and self._play_started else 0.0)
        lo = math.log(self.sigma0) - math.log(self.sigma_L)
        frac = (math.log(self.sigma0) - math.log(max(float(np.nanmax(sig)), 1e-12))) / lo if lo > 0 else 0
        self.controls.progress = int(np.clip(100 * frac, 0, 100)) if state.t else 0
        rate = f" · {len(self._hist_t) / self._compute:.1f} steps/s" if self._compute > 0 and self._hist_t else ""
        self._stats.object = (f"**step t = {state.t}** · wall time {elapsed_text(wall)}{rate} · "
                              f"h_t = {fmt_number(state.h)} (step size) · "
                              f"max σ_t = {fmt_number(float(np.nanmax(sig)))} (noise std, [0,1] units)")
        if running:
            self.controls.status = f"Running… step {state.t}"
        rows = ["| chain | σ_t (noise std) | γ_t (injected noise std) | status | steps |"
                + (" −log p(x̂) (nats, density on [0,1]^d; converged chains only) |" if self.energy else ""),
                "|---|---|---|---|---|" + ("---|" if self.energy else "")]
        gam = state.gamma.detach().cpu().numpy()
        for j in range(len(sig)):
            row = f"| {j + 1} | {fmt_number(float(sig[j]))} | {fmt_number(float(gam[j]))} | {state.status[j]} | " \
                  f"{self._chain_steps(j)} |"
            if self.energy:
                row += f" {self.energy_cell(j, state.status[j])} |"
            rows.append(row)
        self._chain_table.object = "\n".join(rows)

    def _chain_steps(self, j: int) -> int:
        if not self._hist_sigma:
            return 0
        col = np.stack(self._hist_sigma)[:, j] if len(self._hist_sigma) < 4000 else np.array([s[j] for s in self._hist_sigma])
        return int(np.isfinite(col).sum())

    # ------------------------------------------------------------------ scrubber
    def snapshots(self) -> list[tuple[int, Any, Any]]:
        return [] if self.sampler is None else self.sampler.result().snapshots

    def _update_scrubber(self, follow: bool) -> None:
        snaps = self.snapshots()
        n = len(snaps)
        playing = self.worker.running
        self._scrubber.disabled = playing or n < 2
        self._scrubbing = True
        try:
            self.param.scrub.bounds = (0, max(n - 1, 1))
            if follow:
                self.scrub = max(n - 1, 0)
        finally:
            self._scrubbing = False
        if n:
            k = min(self.scrub, n - 1)
            self._scrub_label.object = (f"Snapshot {k + 1} of {n}: t = {snaps[k][0]} "
                                        f"(recorded every {self.sampler.snapshot_every} step(s))")

    @param.depends("scrub", watch=True)
    def _on_scrub(self) -> None:
        if self._scrubbing or self.worker.running:
            return
        snaps = self.snapshots()
        if not snaps:
            return
        i = int(np.clip(self.scrub, 0, len(snaps) - 1))
        t, y, xh = snaps[i]
        with pn.io.hold():
            self._show_images(y.float().numpy(), xh.float().numpy())
            self._scrub_label.object = (f"Snapshot {i + 1} of {len(snaps)}: t = {t} "
                                        f"(recorded every {self.sampler.snapshot_every} step(s))")

    # ------------------------------------------------------------------ downloads
    def _png(self) -> io.BytesIO:
        if self.sampler is None:
            return png_bytes([])
        st = self.sampler.state
        panels = []
        for j in range(st.y.shape[0]):
            panels.append((f"chain {j + 1} y_t, t={st.t}", st.y[j, 0].cpu().numpy()))
            panels.append((f"chain {j + 1} x_hat(y_t)", st.x_hat[j, 0].cpu().numpy()))
        return png_bytes(panels, columns=2)

    def _npz(self) -> io.BytesIO:
        arrays: dict[str, Any] = {}
        if self.sampler is not None:
            st = self.sampler.state
            arrays = dict(y=st.y, x_hat=st.x_hat, t=np.asarray(self._hist_t), sigma=self._sigma_data()["sigma"],
                          h=np.asarray(self._hist_h), predicted_sigma=self._predicted()[1],
                          status=np.asarray(st.status))
            if self.energy:  # NaN for the chains that did not converge (no energy)
                arrays["nll"] = np.asarray([np.nan if v is None else v for v in self.energy], dtype=np.float64)
        return npz_bytes(arrays, self.run_params())

    def keep_samples(self) -> list:
        """Put x̂(y_t) of every chain on the sample shelf (:mod:`explorer.ui.samples`) with the run's
        parameters, each chain's step count and −log p when an energy model scored it."""
        from .samples import keep_samples

        if self.sampler is None:
            return []
        with self._step_lock:
            x_hat = self.sampler.state.x_hat[:, 0].detach().cpu().numpy()
            t = int(self.sampler.t)
        chains = [dict(steps=self._chain_steps(j) or t) for j in range(len(x_hat))]
        if self.energy:
            for c, nll in zip(chains, self.energy):
                if nll is not None:  # no energy for a chain that did not converge
                    c["nll_nats"] = float(nll)
        try:
            paths = keep_samples(x_hat, self.run_params(), chains)
        except (OSError, ValueError) as e:
            notify(f"The samples could not be kept: {e}")
            return []
        notify(f"Kept {len(paths)} sample(s): open them in any tool with Image → sample.", kind="success")
        return paths

    def _basename(self) -> str:
        return f"sampler_{self.picker.model}_beta{self.beta:g}_seed{self.seed}"

    # ------------------------------------------------------------------ layout
    def sidebar(self) -> pn.Column:
        w = dict(sizing_mode="stretch_width")
        return pn.Column(
            self.picker,
            pn.pane.Markdown("**Schedule**", margin=(10, 10, 0, 10)),
            pn.widgets.FloatSlider.from_param(self.param.beta, name="β (fraction of noise removed per step)", **w),
            pn.widgets.FloatSlider.from_param(self.param.h0, name="h₀ (initial step size)", format="0.000", **w),
            pn.widgets.FloatSlider.from_param(self.param.sigma0, name="σ₀ (initial noise std)", **w),
            pn.widgets.FloatSlider.from_param(self.param.sigma_L, name="σ_L (stop at this noise std)", format="0.000", **w),
            pn.pane.Markdown("**Chains**", margin=(10, 10, 0, 10)),
            pn.Row(pn.widgets.Select.from_param(self.param.size, name="Image size", **w),
                   pn.widgets.IntInput.from_param(self.param.batch, name="Chains", **w), **w),
            pn.Row(pn.widgets.IntInput.from_param(self.param.seed, name="Seed", **w),
                   pn.widgets.IntInput.from_param(self.param.max_steps, name="Max steps", **w), **w),
            pn.pane.Markdown("Changing a setting starts a new run; the old run's σ_t stays on the plot.",
                             styles={"color": "#666", "font-size": "0.85em"}),
            sizing_mode="stretch_width")

    def main(self) -> pn.Column:
        return pn.Column(
            pn.Card(self.controls, self._stats, hide_header=True, sizing_mode="stretch_width"),
            pn.Row(
                pn.Column(self._grid, self._chain_table, self._scrubber, self._scrub_label, self._keep,
                          sizing_mode="stretch_width", min_width=260),
                pn.Column(self._sigma_pane, self._h_pane, self._clear_runs, sizing_mode="stretch_width", min_width=380),
                sizing_mode="stretch_width"),
            downloads(self._png, self._npz, self._basename),
            explanation(EXPLANATION, title="How the coarse-to-fine sampler works"),
            sizing_mode="stretch_width")
