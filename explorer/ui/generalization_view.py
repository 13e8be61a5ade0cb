"""GeneralizationView: do two denoisers trained on disjoint sets of N digits generate the same images?

Kadkhodaie, Guth, Simoncelli & Mallat, "Generalization in diffusion models arises from
geometry-adaptive harmonic representations", ICLR 2024 (issue #16). All the computing is
:mod:`explorer.ui.generalization_state` (:class:`GeneralizationState`, no widgets) on top of
:mod:`explorer.generalization`; this module draws it: one seed's samples of A, B and the empirical
denoiser of A beside their nearest training digits, and the sweep over seeds and N (median cosines,
training vs held-out PSNR).
"""
from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable
from typing import Any

import holoviews as hv
import numpy as np
import panel as pn

from explorer.generalization import MEMORIZED
from explorer.scheduler import Priority

from .controls import bounded_input
from .export import downloads, npz_bytes, png_bytes
from .generalization_state import (EXPLANATION, MODELS, PSNR_SIGMA, SWEEP_STEP, GeneralizationState,
                                   sample_note, verdict_text)
from .plots import gray_image
from .tasks import BackgroundWorker, LatestTask
from .text import alert, elapsed_text, explanation, notify, show_alert
from .toolview import ToolView

IMAGE_PX = 184
PLOT_H = 300
REDRAW_S = 2.0  # the sweep's plots are redrawn at most this often while it runs
N_RANGE = (0.6, 8000.0)  # the x-range of the plots: the paper's N = 1 … 4750, whatever is available
A_COLOR, B_COLOR, E_COLOR, GRAY = "#1f77b4", "#d62728", "#2ca02c", "#666666"
BOX = {"border": "1px solid #d8dee4", "border-radius": "6px", "padding": "2px 6px", "background": "#fbfcfd"}



def _cos(value: float) -> str:
    return f"cos = {value:.3f}" if np.isfinite(value) else "cos = —"


class GeneralizationView(ToolView):
    """The Generalization tool: samples of A and B from the same noise, their nearest training digits,
    and the sweep over seeds and N. ``state`` is the :class:`GeneralizationState` it shows; ``run()``
    samples the current seed (a worker thread when served, inline otherwise), ``sweep()`` adds
    ``SWEEP_STEP`` seeds to the sweep on the background ``worker`` (``worker.join()`` waits for it),
    ``png()`` / ``npz()`` are the downloads."""

    title = "Memorization vs generalization"

    def __init__(self, state: GeneralizationState | None = None, auto_run: bool = True, **params: Any):
        super().__init__(**params)
        self.state = state or GeneralizationState()
        self.error = ""
        sw = dict(sizing_mode="stretch_width")
        self._alert = alert()
        self._source = pn.pane.Markdown("", margin=(0, 10), styles={"color": "#555", "font-size": "0.9em"}, **sw)
        self._status = pn.pane.Markdown("", margin=(0, 10), styles={"color": "#555"}, **sw)
        self._progress = pn.indicators.Progress(value=0, max=100, height=12, bar_color="primary", margin=(4, 5), **sw)
        self._run_button = pn.widgets.Button(label="▶ Run this seed", color="primary", **sw)
        self._sweep_button = pn.widgets.Button(label=f"Sweep {SWEEP_STEP} seeds", color="primary",
                                               variant="outline", **sw)
        self._stop_button = pn.widgets.Button(label="■ Stop", color="warning", disabled=True, width=80)
        self._run_button.on_click(lambda _e: self.run())
        self._sweep_button.on_click(lambda _e: self.sweep())
        self._stop_button.on_click(lambda _e: self.stop())
        self._rescan_button = pn.widgets.Button(label="↻ Look again for pairs", color="light", **sw)
        self._rescan_button.on_click(lambda _e: self.rescan())
        self._pair_text = pn.pane.HTML("", margin=(0, 10), **sw)
        self._images = {k: pn.pane.HoloViews(None, linked_axes=False, margin=(0, 2)) for k in
                        ("A", "A_near", "B", "B_near", "empirical")}
        self._captions = {k: pn.pane.HTML("", margin=(2, 6, 4, 6), width=IMAGE_PX + 10,
                                          styles={"color": "#555", "font-size": "0.85em", "line-height": "1.3"})
                          for k in self._images}
        self._run_info = pn.pane.Markdown("", css_classes=["explorer-number"], margin=(0, 10), **sw)
        self._cos_plot = pn.pane.HoloViews(None, linked_axes=False, min_height=PLOT_H, **sw)
        self._psnr_plot = pn.pane.HoloViews(None, linked_axes=False, min_height=PLOT_H, **sw)
        self._sweep_text = pn.pane.Markdown("", margin=(0, 10), styles={"color": "#555"}, **sw)
        self.task = LatestTask(self._compute, self._render, self._on_error, self._on_done, name="generalization",
                               priority=Priority.STREAMING)
        self.worker = BackgroundWorker(self._render_sweep, period=400, name="generalization-sweep",
                                       priority=Priority.BULK)
        self._drawn_seeds, self._drawn_at = -1, 0.0
        self._results = pn.Column(sizing_mode="stretch_width", margin=0)  # hidden while there is no pair
        self.state.param.watch(lambda *_e: self.run(), ["N", "seed", "beta", "h0"])
        self.state.param.watch(lambda _e: self._settings_changed(), ["beta", "h0", "sigma_L", "max_steps"])
        self._show_source()
        self._draw_images()
        self._draw_sweep()
        if auto_run:
            self.run()

    # ------------------------------------------------------------------ one seed
    def run(self) -> None:
        """Sample the current N and seed (the newest request wins)."""
        if not self.state.available:
            self._no_pair()
            return
        show_alert(self._alert, "")
        self.error = ""
        self._progress.value = 0
        self._status.object = f"Sampling N = {self.state.N}, seed {self.state.seed}…"
        self.task.submit(None)

    def _compute(self, _req: Any, stop: threading.Event, publish: Callable[[Any], None]) -> None:
        try:
            result = self.state.run(progress=lambda f, text: publish(("progress", f, text)), stop=stop)
        except InterruptedError:  # superseded by a newer request
            return
        if result is not None:
            publish(("result", result))

    def _render(self, msg: tuple[Any, ...]) -> None:
        if msg[0] == "progress":
            self._progress.value = int(100 * msg[1])
            self._status.object = f"N = {self.state.N}, seed {self.state.seed}: {msg[2]}…"
            return
        r = msg[1]
        self._progress.value = 100
        self._status.object = (f"Done: N = {r.n}, seed {r.seed} in {elapsed_text(r.total_seconds)} "
                               f"(A {r.seconds['A']:.2f} s, B {r.seconds['B']:.2f} s, "
                               f"empirical {r.seconds['empirical']:.2f} s).")
        self._show_source()
        self._draw_images()

    def _on_error(self, e: BaseException) -> None:
        self.error = f"{type(e).__name__}: {e}"
        show_alert(self._alert, f"The run failed: {self.error}")
        self._status.object = ""
        notify(f"Generalization run failed: {e}")

    def _on_done(self) -> None:
        pass

    def rescan(self) -> None:
        """Look for pairs again (a pair that finished training, or was published, since the page opened)."""
        before = list(self.state.sizes)
        self.state.refresh()
        self._show_source()
        if not self.state.available:
            self._no_pair()
            return
        for b in (self._run_button, self._sweep_button):
            b.disabled = False
        self._results.visible = True
        show_alert(self._alert, "")
        self._draw_sweep()
        new = [n for n in self.state.sizes if n not in before]
        self._status.object = (f"New pairs: N = {', '.join(map(str, new))}." if new else
                               f"No new pairs (N ∈ {{{', '.join(map(str, self.state.sizes))}}}).")
        if self.state.result is None:
            self.run()

    def _settings_changed(self) -> None:
        if self.worker.running:
            self.worker.stop(wait=False)  # its seeds were sampled with the old settings
        self._draw_sweep()

    def _no_pair(self) -> None:
        show_alert(self._alert, self.state.message)
        self._results.visible = False
        self._status.object = ""
        for b in (self._run_button, self._sweep_button):
            b.disabled = True

    def _show_source(self) -> None:
        self._source.object = self.state.source_text()

    def _draw_images(self) -> None:
        r = self.state.result
        if r is None:
            blank = np.full((32, 32), 0.5, np.float32)
            titles = dict(A="x_A (sample of A)", A_near="A's nearest training digit", B="x_B (sample of B)",
                          B_near="B's nearest training digit", empirical="empirical (memorizes A)")
            for k, pane in self._images.items():
                pane.object = self._image(blank, titles[k])
                self._captions[k].object = ""
            self._pair_text.object = self._pair_html(None)
            self._run_info.object = ""
            return
        c, d = r.nearest_cos, r.nearest_digit
        shown = dict(A=(r.samples["A"], "x_A (sample of A)"),
                     A_near=(r.nearest["A"], f"A's nearest · {_cos(c['A'])}"),
                     B=(r.samples["B"], "x_B (sample of B)"),
                     B_near=(r.nearest["B"], f"B's nearest · {_cos(c['B'])}"),
                     empirical=(r.samples["empirical"], f"empirical · {_cos(c['empirical'])}"))
        for k, (img, title) in shown.items():
            self._images[k].object = self._image(img, title)
        self._captions["A"].object = sample_note(r, "A")
        own = lambda m: f"one of {m}'s {r.n}" if r.n > 1 else f"{m}'s only training digit"  # noqa: E731
        self._captions["A_near"].object = f"MNIST training digit #{d['A']}, {own('A')}"
        self._captions["B"].object = sample_note(r, "B")
        self._captions["B_near"].object = f"MNIST training digit #{d['B']}, {own('B')}"
        self._captions["empirical"].object = (sample_note(r, "empirical")
                                              + f"<br>nearest: A's digit #{d['empirical']}")
        self._pair_text.object = self._pair_html(r)
        s = r.settings
        self._run_info.object = (f"N = {r.n} training digits per model · seed {r.seed} · β = {s['beta']:g} · "
                                 f"h₀ = {s['h0']:g} · σ_L = {s['sigma_L']:g} · one 32×32 chain per model")

    @staticmethod
    def _image(array: np.ndarray, title: str) -> hv.Image:
        return gray_image(array, title=title, size=IMAGE_PX, fontsize={"title": "9pt"}, border=2)

    @staticmethod
    def _pair_html(r: Any) -> str:
        if r is None:
            value, verdict = "—", "Press <b>Run</b> to sample"
        else:
            value = f"{r.pair_cos:.3f}"
            verdict = verdict_text(r)
        return (f"<div style='display:flex;align-items:baseline;gap:14px'>"
                f"<span style='font-size:1.7em;font-weight:600;color:#0f3550;font-family:ui-monospace,monospace'>"
                f"cos(x_A, x_B) = {value}</span>"
                f"<span style='color:#444'>similarity of the samples of A and B from the same noise "
                f"(mean-subtracted cosine; 1 = the same image).<br>{verdict}.</span></div>")

    # ------------------------------------------------------------------ the sweep
    def sweep(self) -> None:
        """Add ``SWEEP_STEP`` seeds to the sweep over every N (background thread, progress, Stop)."""
        if not self.state.available:
            self._no_pair()
            return
        if self.worker.running:
            return
        count = SWEEP_STEP
        self._sweep_button.disabled = True
        self._stop_button.disabled = False
        self._progress.value = 0
        start = self.state.sweep_seed_count
        self._status.object = f"Sweep: seeds {start}–{start + count - 1} for N ∈ {{{', '.join(map(str, self.state.sizes))}}}…"
        self.worker.start(lambda stop, publish: self.state.extend_sweep(
            count, progress=lambda f, text: publish((f, text)), stop=stop), on_done=self._sweep_done)

    def stop(self) -> None:
        """Stop the sweep after the current seed (what was computed stays)."""
        self.worker.stop(wait=False)
        self.task.cancel()

    def _render_sweep(self, msg: tuple[float, str]) -> None:
        self._progress.value = int(100 * msg[0])
        self._status.object = f"Sweep: {msg[1]}…"
        total = sum(len(e.seeds) for e in self.state.sweep.values())
        if total != self._drawn_seeds and time.perf_counter() - self._drawn_at > REDRAW_S:
            self._draw_sweep()  # (drawing both plots costs the loop ~0.1 s: not after every seed)

    def _sweep_done(self, error: BaseException | None) -> None:
        self._sweep_button.disabled = False
        self._stop_button.disabled = True
        if error is not None:
            self.error = f"{type(error).__name__}: {error}"
            show_alert(self._alert, f"The sweep failed: {self.error}")
            notify(f"Sweep failed: {error}")
        elif self.worker.stop_event.is_set():
            self._status.object = (f"Sweep stopped after {elapsed_text(self.worker.last_seconds)}: what was computed "
                                   "is shown.")
        else:
            self._progress.value = 100
            self._status.object = (f"Sweep done: {self.state.sweep_seed_count} seeds for every N "
                                   f"({elapsed_text(self.worker.last_seconds)} for these {SWEEP_STEP}).")
        self._sweep_button.label = (f"Add {SWEEP_STEP} seeds" if self.state.sweep_seed_count
                                    else f"Sweep {SWEEP_STEP} seeds")
        self._show_source()
        self._draw_sweep()

    def _draw_sweep(self) -> None:
        t = self.state.sweep_table()
        self._drawn_seeds, self._drawn_at = (int(t["seeds"].sum()) if len(t["seeds"]) else 0), time.perf_counter()
        self._cos_plot.object = self._cosine_figure(t)
        self._psnr_plot.object = self._psnr_figure(t)
        s = self.state.settings()
        if len(t["N"]):
            counts = sorted(set(t["seeds"].tolist()))
            seeds = f"{counts[0]} seeds" if len(counts) == 1 else f"{counts[0]}–{counts[-1]} seeds"
            rows = zip(t["N"], t["memorized_A"], t["memorized_B"], t["diverged_A"], t["diverged_B"])
            memorized = "; ".join(f"N = {n}: A {a:.0%}, B {b:.0%}" + (
                f" (diverged chains: A {da:.0%}, B {db:.0%})" if da or db else "") for n, a, b, da, db in rows)
            self._sweep_text.object = (f"Sweep over {seeds} per N (seeds 0, 1, 2, …), β = {s['beta']:g}, "
                                       f"h₀ = {s['h0']:g}; changing β or h₀ starts a new sweep. Samples memorized "
                                       f"(nearest-training cos ≥ 0.95): {memorized}.")
        else:
            self._sweep_text.object = (f"No sweep yet: press **Sweep** to sample {SWEEP_STEP} seeds for every "
                                       f"available N at β = {s['beta']:g}, h₀ = {s['h0']:g}.")

    @staticmethod
    def _series(n: np.ndarray, y: np.ndarray, label: str, color: str, dash: str = "solid",
                marker: str = "circle") -> hv.Overlay:
        data = (np.asarray(n, float), np.asarray(y, float))
        line = hv.Curve(data, "N", "value", label=label).opts(color=color, line_dash=dash, line_width=2)
        dots = hv.Scatter(data, "N", "value", label=label).opts(color=color, marker=marker, size=8)
        return line * dots

    def _frame(self, overlay: hv.Overlay, title: str, ylabel: str, ylim: tuple[float, float]) -> hv.Overlay:
        return overlay.opts(
            logx=True, xlim=N_RANGE, ylim=ylim, xlabel="N (training digits per model, log scale)", ylabel=ylabel,
            title=title, show_grid=True, responsive=True, min_height=PLOT_H, legend_position="bottom_right",
            toolbar=None, fontsize={"title": "10.5pt", "labels": "10pt", "legend": "9pt"})

    def _cosine_figure(self, t: dict[str, np.ndarray]) -> hv.Overlay:
        counts = sorted(set(t["seeds"].tolist()))
        over = ("(no sweep yet)" if not counts else f"over {counts[0]} seeds" if len(counts) == 1
                else f"over {counts[0]}–{counts[-1]} seeds")
        lines = (self._series(t["N"], t["pair_cos"], "cos(x_A, x_B)", "#111111")
                 * self._series(t["N"], t["nearest_A"], "A: nearest training", A_COLOR, "dashed", "square")
                 * self._series(t["N"], t["nearest_B"], "B: nearest training", B_COLOR, "dashed", "triangle"))
        threshold = hv.HLine(MEMORIZED).opts(color=GRAY, line_dash="dotted", line_width=1.5)
        label = hv.Text(N_RANGE[0] * 1.15, MEMORIZED - 0.035, "memorization threshold 0.95", halign="left",
                        fontsize=8).opts(text_color=GRAY)
        lo = min(0.0, float(np.nanmin(np.r_[t["pair_cos"], t["nearest_A"], t["nearest_B"], 1.0]))) - 0.05
        return self._frame(lines * threshold * label, f"Median cosine {over}", "median cosine (mean-subtracted)",
                           (lo, 1.04))

    def _psnr_figure(self, t: dict[str, np.ndarray]) -> hv.Overlay:
        lines = (self._series(t["N"], t["psnr_train_A"], "A: training digits", A_COLOR)
                 * self._series(t["N"], t["psnr_held_A"], "A: held-out digits", A_COLOR, "dashed", "square")
                 * self._series(t["N"], t["psnr_train_B"], "B: training digits", B_COLOR)
                 * self._series(t["N"], t["psnr_held_B"], "B: held-out digits", B_COLOR, "dashed", "square"))
        vals = np.r_[t["psnr_train_A"], t["psnr_held_A"], t["psnr_train_B"], t["psnr_held_B"]]
        vals = vals[np.isfinite(vals)]
        ylim = (float(np.floor(vals.min() / 5) * 5 - 2), float(np.ceil(vals.max() / 5) * 5 + 2)) if vals.size \
            else (10.0, 40.0)
        return self._frame(lines, f"Denoising PSNR at σ = {PSNR_SIGMA:g} ([0, 1] units): training vs held-out",
                           "PSNR (dB)", ylim)

    # ------------------------------------------------------------------ downloads
    def png(self) -> io.BytesIO:
        """The image row of the current result, titled, with square pixels."""
        return png_bytes(self.state.image_panels(), min_size=192)

    def npz(self) -> io.BytesIO:
        """The current result's images, cosines and the sweep table, with the parameters."""
        return npz_bytes(self.state.arrays(), self.state.params())

    # ------------------------------------------------------------------ layout
    def sidebar(self) -> pn.Column:
        sw = dict(sizing_mode="stretch_width")
        st = self.state
        n_select = pn.widgets.Select.from_param(st.param.N, name="Training-set size N (digits per model)", **sw)
        return pn.Column(
            pn.pane.Markdown("**The pair**", margin=(0, 10)), n_select, self._source, self._rescan_button,
            pn.pane.Markdown("**Sampling (Algorithm 1, same noise for A, B, empirical)**", margin=(10, 10, 0, 10)),
            bounded_input(st, "seed", "Seed of the shared noise", **sw),
            pn.Row(bounded_input(st, "beta", "β", step=0.05, **sw), bounded_input(st, "h0", "h₀", step=0.005, **sw),
                   **sw),
            self._run_button,
            pn.pane.Markdown("**Sweep over seeds and every N**", margin=(10, 10, 0, 10)),
            pn.Row(self._sweep_button, self._stop_button, **sw),
            self._progress, self._status,
            pn.pane.Markdown("**Download the current result**", margin=(10, 10, 0, 10)),
            downloads(self.png, self.npz, self.state.basename),
            **sw)

    def main(self) -> pn.Column:
        self.task.bind()
        self.worker.bind()
        if not self.state.available:
            self._no_pair()
        sw = dict(sizing_mode="stretch_width")

        def group(title: str, color: str, *keys: str) -> pn.Column:
            return pn.Column(pn.pane.HTML(f"<b style='color:{color}'>{title}</b>", margin=(2, 6)),
                             pn.Row(*[pn.Column(self._images[k], self._captions[k], margin=0) for k in keys],
                                    margin=0), styles=BOX, margin=(0, 6, 0, 0))

        images = pn.Row(
            group("Model A (trained on set A)", A_COLOR, "A", "A_near"),
            group("Model B (trained on set B, disjoint from A)", B_COLOR, "B", "B_near"),
            group("Reference: memorizes A", E_COLOR, "empirical"), margin=(4, 5))
        self._results[:] = [self._pair_text, images, self._run_info,
                            pn.Row(self._cos_plot, self._psnr_plot, **sw), self._sweep_text]
        self._results.visible = self.state.available
        return pn.Column(
            self._alert, self._results,
            explanation(EXPLANATION, title="Memorization vs generalization (Kadkhodaie et al., ICLR 2024)"),
            **sw)


__all__ = ["GeneralizationView", "GeneralizationState", "MODELS"]
