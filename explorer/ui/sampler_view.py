"""SamplerView: step the coarse-to-fine sampler (Kadkhodaie & Simoncelli 2021, Algorithm 1) live.

The run is a :class:`~explorer.ui.sampler_state.SamplerRun` (``view.run``: parameters, the live
:class:`explorer.Sampler`, stepping, play/pause, histories); this module only wires it to widgets: y_t and
x̂(y_t) for every chain, the measured σ_t against the designed schedule (earlier runs stay overlaid for
comparison), h_t, and a scrubber over the recorded snapshots.
"""
from __future__ import annotations

import io
import time
from typing import Any

import numpy as np
import panel as pn
import param
import torch

from .controls import RunControls, bounded_input
from .export import downloads, npz_bytes, png_bytes
from .models import ModelPicker
from .plots import PLOT_PERIOD, LiveImage
from .run_plots import show_sigma, show_step_size, sigma_curves, step_size_curves
from .sampler_docs import SAMPLER_EXPLANATION as EXPLANATION
from .sampler_state import DEFAULT_SIZE, SamplerRun, follow_size, size_warning, sizes_for, training_size
from .tasks import BackgroundWorker
from .text import elapsed_text, explanation, fmt_number, notify, show_alert
from .toolview import ToolView

MAX_RUNS = 6
RUN_PARAMS = ["beta", "h0", "sigma0", "sigma_L", "seed", "size", "chains", "max_steps"]



class SamplerView(ToolView):
    """Step the coarse-to-fine sampler (Algorithm 1) and watch y_t, x̂(y_t), σ_t and h_t live.

    ``run`` (a :class:`SamplerRun`) holds the settings of the next run (β, h₀, σ₀, σ_L, seed, size, chains,
    max_steps; ``batch=`` is accepted for ``chains``): changing one stops a run and starts a fresh one (the
    old run's σ_t curve stays overlaid). ``step()``, ``play()``, ``pause()``, ``reset()`` are the buttons.
    The image size follows the model's training size until another is chosen (``size_alert`` warns then).
    """

    title = "Coarse-to-fine sampler"

    scrub = param.Integer(default=0, bounds=(0, 1), doc="Index of the recorded snapshot shown")
    render_period = param.Integer(default=100, bounds=(20, 2000), doc="Milliseconds between page updates while playing")

    def __init__(self, model: str | None = None, **params: Any):
        if "batch" in params:
            params["chains"] = params.pop("batch")
        run_params = {k: params.pop(k) for k in list(params) if k in SamplerRun.param and k != "name"}
        super().__init__(**params)
        self.picker = ModelPicker(model=model)
        self.controls = RunControls()
        handle = self.picker.handle
        self.run = SamplerRun(size=run_params.pop("size", training_size(handle) or DEFAULT_SIZE), **run_params)
        self.run.param.size.objects = sizes_for(handle, tuple(self.run.param.size.objects))
        self.runs: list[dict[str, Any]] = []  # finished / abandoned runs kept for the σ_t overlay
        self.worker = BackgroundWorker(self._render_state, period=self.render_period, name="sampler")
        self._default_size = training_size(handle) or DEFAULT_SIZE
        self._shown_t = -1
        self._plots_at, self._scrubbing = 0.0, False

        self.stats = pn.pane.Markdown("", sizing_mode="stretch_width", css_classes=["explorer-number"], margin=(0, 10))
        self.size_alert = pn.pane.Alert("", alert_type="warning", visible=False, sizing_mode="stretch_width")
        self.chain_table = pn.pane.Markdown("", sizing_mode="stretch_width", margin=(0, 10))
        self.chain_images: list[tuple[LiveImage, LiveImage]] = []
        self._grid = pn.Column(sizing_mode="stretch_width", margin=0)
        self._sigma_pane = pn.Column(sizing_mode="stretch_width", min_height=300, margin=0)
        self._h_pane = pn.Column(sizing_mode="stretch_width", min_height=180, margin=0)
        self.scrubber = pn.widgets.IntSlider.from_param(self.param.scrub, name="Recorded snapshot",
                                                        sizing_mode="stretch_width", disabled=True)
        self.scrub_label = pn.pane.Markdown("", margin=(0, 10), styles={"color": "#555"})
        self._clear_runs = pn.widgets.Button(label="Clear earlier runs", color="light", width=160)
        self._clear_runs.on_click(lambda _e: self.clear_runs())
        self._keep = pn.widgets.Button(label="Keep the samples for the other tools", color="primary",
                                       variant="outline", sizing_mode="stretch_width",
                                       description="Save x̂ of every chain to the sample shelf: any tool's image "
                                                   "source can then open it (Image → sample)")
        self._keep.on_click(lambda _e: self.keep_samples())

        for kind in ("step", "play", "pause", "reset"):
            self.controls.on(kind, getattr(self, kind))
        self.picker.param.watch(lambda _e: self._model_changed(), "model")
        self.run.param.watch(lambda *_e: self._rebuild(self.reset), RUN_PARAMS)
        self.reset(archive=False)

    sampler = property(lambda self: self.run.sampler, doc="The live explorer.Sampler (None if unusable)")

    def _model_changed(self) -> None:
        """A new model: offer its training size, and follow it unless another size was chosen."""
        handle = self.picker.handle
        self.run.param.size.objects = sizes_for(handle, tuple(self.run.param.size.objects))
        size, self._default_size = follow_size(self.run.size, self._default_size, handle)
        if size != self.run.size:
            self.run.size = size  # resets
        else:
            self._rebuild(self.reset)

    # ------------------------------------------------------------------ run set-up and buttons
    def reset(self, archive: bool = True) -> None:
        """Stop any run, keep its σ_t curve (if it made steps), and set up a fresh sampler."""
        self.worker.stop(wait=True)
        if archive:
            self._archive()
        self._shown_t = -1
        handle = self.picker.handle
        self.run.reset(handle)
        show_alert(self.size_alert, size_warning(handle, self.run.size) if handle is not None else "")
        self._build_panes()
        self.controls.progress = 0
        if handle is None:
            self.controls.status = f"⚠️ {self.picker.error}"
            return
        if self.sampler is None:
            self.controls.status = f"⚠️ {self.run.error}"
            notify(self.run.error)
            return
        self._render_state(self.sampler.state)
        r = self.run
        self.controls.status = (f"Ready: {r.chains} chain(s) of {r.size}×{r.size}, "
                                f"≈{r.predicted_steps} steps predicted ({r.expected_time_text()}). Press Step or Play.")

    def _archive(self) -> None:
        record = self.run.record()
        if record is not None:
            self.runs = [*self.runs, record][-MAX_RUNS:]

    def clear_runs(self) -> None:
        self.runs = []
        self._build_sigma_plot()

    def step(self) -> None:
        """Advance every running chain by one step and show it."""
        state = None if self.done_message() else self.run.step()
        if state is not None:
            self._render_state(state)
            if self.sampler.done:
                self._finished()

    def done_message(self) -> bool:
        """True (and the status says so) when there is nothing to step."""
        if self.sampler is None or self.worker.running:
            return True
        if self.sampler.done:
            self.controls.status = "All chains have stopped. Reset (or change a parameter) to start again."
            return True
        return False

    def play(self) -> None:
        """Run to the end on a background thread, showing a snapshot every ``render_period`` ms."""
        if self.done_message():
            return
        self.controls.running = True
        self.worker.period = self.render_period
        self.run.play(start=self.worker.start, on_done=self._play_done)

    def pause(self) -> None:
        """Stop the background run after the current step (the run can be continued with Play)."""
        self.run.pause()
        self.worker.stop(wait=True)

    def _play_done(self, error: BaseException | None) -> None:
        self.controls.running = False
        if error is not None:
            self.controls.status = f"⚠️ The run failed: {type(error).__name__}: {error}"
            notify(f"The run failed: {error}")
        elif self.sampler is not None:
            self._render_state(self.sampler.state, force=True)
            if self.sampler.done:
                self._finished()
            else:
                self.controls.status = f"Paused at step {self.sampler.t}. " + self._rate_text()

    def _finished(self) -> None:
        try:
            self.run.score_energies()
        except Exception as e:
            notify(f"Energy model failed: {e}")
        self._render_state(self.sampler.state, force=True)
        self.controls.status = (f"Finished: {self.run.counts_text()} after {self.sampler.t} steps. "
                                + self._rate_text())
        self.controls.progress = 100

    def _rate_text(self) -> str:
        rate = self.run.rate()
        return f"{rate:.1f} steps/s of denoiser compute." if rate else ""

    # ------------------------------------------------------------------ display
    def _build_panes(self) -> None:
        """(Re)build the image grid and plots for the current number of chains and runs."""
        n, b = int(self.run.size), int(self.run.chains)
        px = int(max(130, min(220, 760 // max(1, b))))
        label = (lambda i, what: f"chain {i + 1}: {what}") if px >= 160 else (lambda i, what: f"{i + 1}: {what}")
        self.chain_images = [(LiveImage((n, n), label(i, "y_t"), size=px), LiveImage((n, n), label(i, "x̂(y_t)"), size=px))
                             for i in range(b)]
        self._grid[:] = [pn.Row(*[pn.Column(y, x, margin=0) for y, x in self.chain_images], margin=0, styles={"flex-wrap": "wrap"})]
        self._build_sigma_plot()
        self._build_h_plot()
        self.scrubber.disabled = True
        self._set_scrub(0)
        self.param.scrub.bounds = (0, 1)  # a slider needs start < end (Bokeh E-1021); disabled until 2 snapshots exist
        self.scrub_label.object = ""

    def _build_sigma_plot(self) -> None:
        """σ_t of every chain against the designed schedule σ̄_t, earlier runs overlaid, σ_L marked."""
        self._longest_run = max((len(r["t"]) for r in self.runs), default=0)
        beta = float(self.run.beta)
        self.sigma_plot = sigma_curves(self.run, "Noise level σ_t vs the designed schedule",
                                       "σ_t (noise std, [0,1] units, log scale)", lambda j: f"chain {j + 1} (β={beta:g})",
                                       earlier=list(self.runs), sigma_L=float(self.run.sigma_L), x_end=self._longest_run)
        # filled before it is on the page: a model outside the document changes without its lock
        show_sigma(self.sigma_plot, self.run, self.run.history(), self._longest_run)
        self._sigma_pane[:] = [self.sigma_plot]

    def _build_h_plot(self) -> None:
        """The step size h_t of this run against the schedule h₀t/(1 + h₀(t − 1))."""
        self.h_plot = step_size_curves(self.run)
        show_step_size(self.h_plot, self.run, self.run.history())
        self._h_pane[:] = [self.h_plot]

    def _push_plots(self) -> None:
        """Show the run's history so far on both plots (read once)."""
        hist = self.run.history()
        show_sigma(self.sigma_plot, self.run, hist, self._longest_run)
        show_step_size(self.h_plot, self.run, hist)

    def _show_images(self, y: np.ndarray, x_hat: np.ndarray) -> None:
        for (y_pane, x_pane), yi, xi in zip(self.chain_images, y, x_hat):
            y_pane.update(yi[0])
            x_pane.update(xi[0])

    def _render_state(self, state: Any, force: bool = False) -> None:
        """Show a sampler state (called on the event loop: directly, or by the worker's periodic flush)."""
        if state is None or (state.t == self._shown_t and not force):
            return
        self._shown_t = state.t
        playing = self.worker.running and not force
        now = time.perf_counter()
        with pn.io.hold():
            self._show_images(state.y.detach().to("cpu", torch.float32).numpy(),
                              state.x_hat.detach().to("cpu", torch.float32).numpy())
            # the plots and the chain table (markdown, rendered to HTML on the server) cost more than the
            # images and the step line: while playing, refresh them at most every PLOT_PERIOD s
            if not playing or now - self._plots_at >= PLOT_PERIOD:
                self._push_plots()
                self._update_chain_table(state)
                self._plots_at = now
            self._update_stats(state)
            if not playing:
                self._update_scrubber(follow=True)

    def _update_stats(self, state: Any) -> None:
        run = self.run
        self.controls.progress = run.progress(state)
        rate = f" · {run.rate():.1f} steps/s" if run.rate() else ""
        self.stats.object = (f"**step t = {state.t}** · wall time {elapsed_text(run.elapsed())}{rate} · "
                             f"h_t = {fmt_number(state.h)} (step size) · "
                             f"max σ_t = {fmt_number(run.max_sigma(state))} (noise std, [0,1] units)")
        if self.worker.running:
            self.controls.status = f"Running… step {state.t}"

    def _update_chain_table(self, state: Any) -> None:
        """σ_t, γ_t, status and steps of every chain (and −log p(x̂) with an energy model)."""
        run = self.run
        energy = bool(run.energy)
        rows = ["| chain | σ_t (noise std) | γ_t (injected noise std) | status | steps |"
                + (" −log p(x̂) (nats, density on [0,1]^d; converged chains only) |" if energy else ""),
                "|---|---|---|---|---|" + ("---|" if energy else "")]
        sig, gam, steps = state.sigma.detach().cpu().numpy(), state.gamma.detach().cpu().numpy(), run.chain_steps()
        rows += [f"| {j + 1} | {fmt_number(float(sig[j]))} | {fmt_number(float(gam[j]))} | {state.status[j]} | "
                 f"{steps[j]} |" + (f" {run.energy_cell(j)} |" if energy else "") for j in range(len(sig))]
        self.chain_table.object = "\n".join(rows)

    # ------------------------------------------------------------------ scrubber
    def snapshots(self) -> list[tuple[int, Any, Any]]:
        return self.run.snapshots()

    def _set_scrub(self, value: int) -> None:
        self._scrubbing = True
        try:
            self.scrub = value
        finally:
            self._scrubbing = False

    def _snapshot_text(self, k: int, n: int, t: int) -> str:
        return f"Snapshot {k + 1} of {n}: t = {t} (recorded every {self.sampler.snapshot_every} step(s))"

    def _update_scrubber(self, follow: bool) -> None:
        snaps = self.snapshots()
        n = len(snaps)
        self.scrubber.disabled = self.worker.running or n < 2
        self.param.scrub.bounds = (0, max(n - 1, 1))
        self._set_scrub(max(n - 1, 0) if follow else min(self.scrub, max(n - 1, 1)))
        if n:
            k = min(self.scrub, n - 1)
            self.scrub_label.object = self._snapshot_text(k, n, snaps[k][0])

    @param.depends("scrub", watch=True)
    def _on_scrub(self) -> None:
        snaps = self.snapshots()
        if self._scrubbing or self.worker.running or not snaps:
            return
        i = int(np.clip(self.scrub, 0, len(snaps) - 1))
        t, y, xh = snaps[i]
        with pn.io.hold():
            self._show_images(y.float().numpy(), xh.float().numpy())
            self.scrub_label.object = self._snapshot_text(i, len(snaps), t)

    # ------------------------------------------------------------------ downloads and the shelf
    def png(self) -> io.BytesIO:
        """The current y_t and x̂(y_t) of every chain as one PNG."""
        return png_bytes(self.run.png_panels(), columns=2)

    def npz(self) -> io.BytesIO:
        """y, x̂, the σ_t / h_t histories, the schedule, statuses and −log p (NaN without one) with the parameters."""
        arrays: dict[str, Any] = {}
        if self.sampler is not None:
            st, hist = self.sampler.state, self.run.history()
            arrays = dict(y=st.y, x_hat=st.x_hat, t=hist["t"].astype(int), sigma=hist["sigma"], h=hist["h"],
                          predicted_sigma=self.run.predicted_curve()[1], status=np.asarray(st.status))
            if self.run.energy:
                arrays["nll"] = np.asarray([np.nan if v is None else v for v in self.run.energy], dtype=np.float64)
        return npz_bytes(arrays, self.run.run_params(self.picker.model))

    def keep_samples(self) -> list:
        """Put x̂(y_t) of every chain on the sample shelf (:mod:`explorer.ui.samples`) with the run's
        parameters, each chain's step count and −log p when an energy model scored it."""
        from .samples import keep_samples

        if self.sampler is None:
            return []
        x_hat, t, steps = self.run.current_samples()
        chains = [dict(steps=steps[j] or t) for j in range(len(x_hat))]
        for c, nll in zip(chains, self.run.energy or []):
            if nll is not None:  # no energy for a chain that did not converge
                c["nll_nats"] = float(nll)
        try:
            paths = keep_samples(x_hat, self.run.run_params(self.picker.model), chains)
        except (OSError, ValueError) as e:
            notify(f"The samples could not be kept: {e}")
            return []
        notify(f"Kept {len(paths)} sample(s): open them in any tool with Image → sample.", kind="success")
        return paths

    def _basename(self) -> str:
        return f"sampler_{self.picker.model}_beta{self.run.beta:g}_seed{self.run.seed}"

    # ------------------------------------------------------------------ layout
    def sidebar(self) -> pn.Column:
        w, p = dict(sizing_mode="stretch_width"), self.run.param
        return pn.Column(
            self.picker,
            pn.pane.Markdown("**Schedule**", margin=(10, 10, 0, 10)),
            pn.widgets.FloatSlider.from_param(p.beta, name="β (fraction of noise removed per step)", **w),
            pn.widgets.FloatSlider.from_param(p.h0, name="h₀ (initial step size)", format="0.000", **w),
            pn.widgets.FloatSlider.from_param(p.sigma0, name="σ₀ (initial noise std)", **w),
            pn.widgets.FloatSlider.from_param(p.sigma_L, name="σ_L (stop at this noise std)", format="0.000", **w),
            pn.pane.Markdown("**Chains**", margin=(10, 10, 0, 10)),
            pn.Row(pn.widgets.Select.from_param(p.size, name="Image size", **w),
                   bounded_input(self.run, "chains", "Chains", **w), **w),
            pn.Row(bounded_input(self.run, "seed", "Seed", **w),
                   bounded_input(self.run, "max_steps", "Max steps", **w), **w),
            pn.pane.Markdown("Changing a setting starts a new run; the old run's σ_t stays on the plot.",
                             styles={"color": "#666", "font-size": "0.85em"}),
            sizing_mode="stretch_width")

    def main(self) -> pn.Column:
        return pn.Column(
            pn.Card(self.controls, self.stats, self.size_alert, hide_header=True, sizing_mode="stretch_width"),
            pn.Row(
                pn.Column(self._grid, self.chain_table, self.scrubber, self.scrub_label, self._keep,
                          sizing_mode="stretch_width", min_width=260),
                pn.Column(self._sigma_pane, self._h_pane, self._clear_runs, sizing_mode="stretch_width", min_width=380),
                sizing_mode="stretch_width"),
            downloads(self.png, self.npz, self._basename),
            explanation(EXPLANATION, title="How the coarse-to-fine sampler works"),
            sizing_mode="stretch_width")
